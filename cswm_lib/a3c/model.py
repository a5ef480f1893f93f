"""A3C policies: the baby-a3c network for Atari frames and a small MLP for CartPole.

Both share one interface so the trainer and the collector need not care which one they drive::

    value [B, 1], logits [B, A], hx = policy(obs, hx)

``hx`` is the recurrent state ``[B, 256]`` of the Atari policy (a GRU cell); the MLP policy is
memoryless and passes ``hx`` through unchanged (it may be ``None``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ATARI_CROP = (35, 195)  # rows of the 210x160 RGB frame the baby-a3c agent looks at
ATARI_SIZE = 80  # the agent sees an 80x80 grey image


def atari_agent_obs(rgb: np.ndarray) -> np.ndarray:
    """The agent's view of an Atari frame: rows 35..195, grey (channel mean), 80x80, in [0, 1].

    ``rgb`` uint8 ``[210, 160, 3]`` -> float32 ``[1, 80, 80]``. The 160x160 crop is halved by
    averaging 2x2 blocks (baby-a3c used ``scipy.misc.imresize``, which also rescaled every frame's
    grey values to span 0..255 -- we keep the absolute brightness instead).
    """
    c = rgb[ATARI_CROP[0] : ATARI_CROP[1]].astype(np.float32)  # [160, 160, 3]
    grey = c[:, :, 0] + c[:, :, 1] + c[:, :, 2]
    # sum of each 2x2 block by strided slices (10x faster than reshape + mean), then / (12 * 255)
    block = grey[0::2, 0::2] + grey[1::2, 0::2] + grey[0::2, 1::2] + grey[1::2, 1::2]
    return (block * np.float32(1 / (12 * 255)))[None]


class AtariPolicy(nn.Module):
    """baby-a3c's ``NNPolicy``: four 3x3 stride-2 convs (ELU, 32 channels) 80->40->20->10->5,
    a GRU cell 800 -> 256, and linear critic (256 -> 1) and actor (256 -> A) heads.

    ``obs`` float ``[B, 1, 80, 80]``, ``hx`` float ``[B, 256]`` (zeros at an episode start).
    """

    def __init__(self, num_actions: int, channels: int = 1, hidden: int = 256):
        super().__init__()
        self.hidden = hidden
        self.convs = nn.ModuleList(
            [nn.Conv2d(channels if i == 0 else 32, 32, 3, stride=2, padding=1) for i in range(4)]
        )
        self.gru = nn.GRUCell(32 * 5 * 5, hidden)
        self.critic = nn.Linear(hidden, 1)
        self.actor = nn.Linear(hidden, num_actions)

    def initial_state(self, batch: int = 1) -> torch.Tensor:
        return torch.zeros(batch, self.hidden)

    def forward(self, obs: torch.Tensor, hx: torch.Tensor | None = None):
        x = obs
        for conv in self.convs:
            x = F.elu(conv(x))
        if hx is None:
            hx = torch.zeros(obs.shape[0], self.hidden, device=obs.device)
        hx = self.gru(x.flatten(1), hx)
        return self.critic(hx), self.actor(hx), hx


class MLPPolicy(nn.Module):
    """A memoryless two-layer tanh MLP with critic and actor heads (for CartPole-like tasks).

    ``obs`` float ``[B, obs_dim]``; ``hx`` is returned unchanged.
    """

    def __init__(self, obs_dim: int, num_actions: int, hidden: int = 64):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(obs_dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh())
        self.critic = nn.Linear(hidden, 1)
        self.actor = nn.Linear(hidden, num_actions)

    def initial_state(self, batch: int = 1) -> None:
        return None

    def forward(self, obs: torch.Tensor, hx: torch.Tensor | None = None):
        h = self.body(obs)
        return self.critic(h), self.actor(h), hx
