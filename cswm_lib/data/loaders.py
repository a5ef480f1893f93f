"""Training batches from :class:`~cswm_lib.data.episodes.Episodes`: whole-batch tensor gathers.

The original code wrapped float32/float64 arrays (obs and next_obs stored twice) in a torch
``Dataset`` read item by item by 4 DataLoader workers. Here the frames stay ONE uint8 tensor
``[E, T+1, C, H, W]`` (shared with the numpy array, no copy); a batch is two fancy-index gathers
(``frames[e, t]`` and ``frames[e, t+1]``) converted to float on the compute device. No workers,
no per-item Python.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import torch
from torch import Tensor

from cswm_lib.data.episodes import Episodes


class Batch(NamedTuple):
    """One minibatch of transitions. ``obs``/``next_obs`` float ``[B, C, H, W]`` in [0, 1] and
    ``action [B]`` on the device; ``episode``/``step`` int64 ``[B]`` on the CPU."""

    obs: Tensor
    action: Tensor
    next_obs: Tensor
    episode: Tensor
    step: Tensor


class TransitionBatches:
    """Shuffled minibatches over all ``E * T`` transitions of ``episodes``.

    Args:
        episodes: the dataset.
        batch_size: transitions per batch (the last batch of an epoch may be smaller, as with the
            original's DataLoader).
        device: where batches are produced. On CUDA the uint8 frames are moved to the GPU once
            when they fit (falling back to per-batch copies otherwise).
        shuffle: random order per epoch (needs a ``generator`` in :meth:`epoch` to be reproducible).
    """

    def __init__(
        self,
        episodes: Episodes,
        batch_size: int,
        device: torch.device | str = "cpu",
        shuffle: bool = True,
        drop_last: bool = False,
    ):
        self.device = torch.device(device)
        self.frames = torch.from_numpy(episodes.frames)  # uint8 [E, T+1, C, H, W]
        self.actions = torch.from_numpy(episodes.actions)  # int64 [E, T]
        if self.device.type == "cuda":
            try:
                self.frames = self.frames.to(self.device)
            except torch.OutOfMemoryError:
                pass
        self.num_episodes, self.episode_length = episodes.num_episodes, episodes.episode_length
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last

    @property
    def num_transitions(self) -> int:
        return self.num_episodes * self.episode_length

    def __len__(self) -> int:
        n, b = self.num_transitions, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def obs(self, episode: Tensor, step: Tensor) -> Tensor:
        """Float observations ``[*S, C, H, W]`` in [0, 1] on the device for index tensors of shape ``S``."""
        if self.frames.device != episode.device:
            episode, step = episode.to(self.frames.device), step.to(self.frames.device)
        x = self.frames[episode, step]
        return x.to(self.device, non_blocking=True).float().div_(255.0)

    def epoch(self, generator: torch.Generator | None = None) -> Iterator[Batch]:
        """Yield the batches of one pass over the data."""
        n = self.num_transitions
        order = torch.randperm(n, generator=generator) if self.shuffle else torch.arange(n)
        for chunk in order.split(self.batch_size):
            if self.drop_last and len(chunk) < self.batch_size:
                break
            e, t = chunk // self.episode_length, chunk % self.episode_length
            yield Batch(self.obs(e, t), self.actions[e, t].to(self.device), self.obs(e, t + 1), e, t)

    def __iter__(self) -> Iterator[Batch]:
        return self.epoch()
