"""The A3C agent's world: environments, the policy's input, policies, checkpoints and evaluation.

:mod:`cswm_lib.a3c.train` trains with these helpers, :mod:`cswm_lib.a3c.collect` plays with a
trained policy, and the book's chapters load and evaluate agents through them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cswm_lib.a3c.model import AtariPolicy, MLPPolicy, atari_agent_obs
from cswm_lib.envs.atari import ATARI_IDS
from cswm_lib.errors import CswmError
from cswm_lib.jsonl import read_jsonl
from cswm_lib.utils import get_device, load_tensors

# --------------------------------------------------------------------------------------------
# environments and policies


def is_atari(env_id: str) -> bool:
    return env_id in ATARI_IDS or env_id.startswith("ALE/")


def make_env(env_id: str) -> gym.Env:
    """A gymnasium env (``import cswm_lib`` registered the paper's Atari and block-pushing ids)."""
    try:
        return gym.make(env_id)
    except gym.error.Error as err:
        raise CswmError(f"unknown environment {env_id!r}: {err}") from None


def agent_obs(env_id: str, obs: np.ndarray) -> torch.Tensor:
    """The policy's input for one raw observation: ``[1, 1, 80, 80]`` for Atari, ``[1, obs_dim]`` else."""
    x = atari_agent_obs(obs) if is_atari(env_id) else np.asarray(obs, dtype=np.float32)
    return torch.from_numpy(x).unsqueeze(0)


def make_policy(env_id: str, env: gym.Env | None = None, hidden: int | None = None) -> nn.Module:
    """The baby-a3c network for Atari ids, a small MLP for vector observations."""
    close = env is None
    env = env or make_env(env_id)
    try:
        if not isinstance(env.action_space, gym.spaces.Discrete):
            raise CswmError(f"environment {env_id!r} has {type(env.action_space).__name__} actions; A3C "
                            "here needs a discrete action space")
        num_actions = int(env.action_space.n)
        space = env.observation_space
        if not is_atari(env_id) and not (isinstance(space, gym.spaces.Box) and len(space.shape) == 1):
            raise CswmError(f"A3C here trains on the Atari ids or on environments with flat vector "
                            f"observations; {env_id!r} has {space} observations")
        if is_atari(env_id):
            return AtariPolicy(num_actions, hidden=hidden or 256)
        return MLPPolicy(int(np.prod(env.observation_space.shape)), num_actions, hidden=hidden or 64)
    finally:
        if close:
            env.close()


# --------------------------------------------------------------------------------------------
# checkpoints and evaluation


def load_checkpoint(folder: str | Path) -> dict[str, Any]:
    """Read ``<folder>/checkpoint.pt`` (model + optimizer state, frames, running averages, config)."""
    path = Path(folder) / "checkpoint.pt"
    if not path.is_file():
        raise CswmError(f"no A3C checkpoint at {path}: train one with python -m cswm_lib.a3c.train")
    ckpt = load_tensors(path, "A3C checkpoint (checkpoint.pt)")
    keys = {"config", "model", "optimizer", "frames", "stats", "elapsed"}
    if not isinstance(ckpt, dict) or not keys <= set(ckpt) or not isinstance(ckpt["config"], dict):
        raise CswmError(f"{path} is not an A3C checkpoint of this library (expected the keys {sorted(keys)})")
    check_a3c_checkpoint(ckpt, path)
    return ckpt


def check_a3c_checkpoint(ckpt: dict[str, Any], path: Path) -> None:
    """The values of an A3C checkpoint: the config's env id and hidden size, frame count, averages."""
    cfg = ckpt["config"]
    hidden = cfg.get("hidden", "missing")
    problems = {
        "config.env_id": isinstance(cfg.get("env_id"), str),
        "config.hidden": hidden is None or (isinstance(hidden, int) and not isinstance(hidden, bool)
                                            and 1 <= hidden <= 65536),
        "frames": isinstance(ckpt["frames"], int) and not isinstance(ckpt["frames"], bool)
        and ckpt["frames"] >= 0,
        "elapsed": isinstance(ckpt["elapsed"], int | float) and not isinstance(ckpt["elapsed"], bool),
        "stats": isinstance(ckpt["stats"], dict),
        "model": isinstance(ckpt["model"], dict)
        and all(isinstance(v, torch.Tensor) for v in ckpt["model"].values()),
        "optimizer": isinstance(ckpt["optimizer"], dict),
    }
    bad = [k for k, ok in problems.items() if not ok]
    if bad:
        k = bad[0]
        value = cfg.get(k.split(".")[1], "missing") if k.startswith("config.") else ckpt[k]
        raise CswmError(f"{path}: {k} is not valid (got {type(value).__name__} {str(value)[:40]!r}); it is "
                        "not an A3C checkpoint of this library")


def load_policy(folder: str | Path, device: str | torch.device = "cpu",
                env_id: str | None = None) -> nn.Module:
    """The trained policy from ``<folder>/checkpoint.pt`` in eval mode; with ``env_id``, an agent
    trained on another game is refused (its weights may fit, its play would not)."""
    ckpt = load_checkpoint(folder)
    cfg = ckpt["config"]  # the A3CConfig of the run, as a dict
    if env_id is not None and cfg["env_id"] != env_id:
        raise CswmError(f"the agent in {folder} was trained on {cfg['env_id']}, not {env_id}: pass --agent "
                        "with an agent of this game")
    policy = make_policy(cfg["env_id"], hidden=cfg["hidden"])
    check_policy_weights(ckpt["model"], policy, Path(folder) / "checkpoint.pt", cfg["env_id"])
    policy.load_state_dict(ckpt["model"])
    return policy.to(get_device(str(device))).eval()


def check_policy_weights(state: dict, policy: nn.Module, path: Path, env_id: str) -> None:
    """``state`` has exactly ``policy``'s weights and shapes (else: an agent of another game or size)."""
    mine = policy.state_dict()
    for k, v in state.items():
        if k not in mine or v.shape != mine[k].shape:
            want = list(mine[k].shape) if k in mine else "no such weight"
            raise CswmError(f"{path}: weight {k} {list(v.shape)} does not fit a {env_id} policy ({want}): an "
                            "agent of another game or size")
    if set(mine) - set(state):
        raise CswmError(f"{path} lacks the weights {sorted(set(mine) - set(state))[:3]}")


def read_returns(folder: str | Path) -> list[dict[str, float]]:
    """The agent's returns while it trained (``curve.jsonl``): one dict per finished episode (frames,
    episode, return, length, ...)."""
    path = Path(folder) / "curve.jsonl"
    if not path.is_file():
        return []
    return read_jsonl(path, "A3C training curve")


@torch.no_grad()
def evaluate_policy(policy: nn.Module, env_id: str, episodes: int = 100, seed: int = 0, greedy: bool = False,
                    max_steps: int = 10_000) -> np.ndarray:
    """Play ``episodes`` episodes with ``policy`` (sampling, or argmax when ``greedy``); return ``[episodes]``
    undiscounted returns."""
    env = make_env(env_id)
    rng = np.random.default_rng(seed)
    returns = np.zeros(episodes)
    for e in range(episodes):
        obs, _ = env.reset(seed=seed + e)
        hx = policy.initial_state()
        for _ in range(max_steps):
            _, logits, hx = policy(agent_obs(env_id, obs), hx)
            probs = F.softmax(logits[0], dim=-1).double().numpy()
            action = int(probs.argmax()) if greedy else int(rng.choice(len(probs), p=probs / probs.sum()))
            obs, reward, terminated, truncated, _ = env.step(action)
            returns[e] += reward
            if terminated or truncated:
                break
    env.close()
    return returns
