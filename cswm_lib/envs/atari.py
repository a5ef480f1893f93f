"""Atari Pong and Space Invaders as the paper used them, on gymnasium + ale-py.

ale-py >= 0.11 dropped the ``*Deterministic-v4`` ids; :func:`register_atari` registers them again
with the old settings (frameskip 4 for Pong, 3 for Space Invaders, no sticky actions, minimal action
set) so the paper's commands work unchanged.

Observations follow the paper's preprocessing: crop the game area (rows 35..190 for Pong, 30..200
for Space Invaders), resize to 50x50 with Lanczos (PIL's old ANTIALIAS), channels first, uint8.
Two consecutive frames are stacked into 6 channels, **(previous, current)** in every file this book
writes (the original random-policy generator stacked (current, previous), its A3C collector
(previous, current); we keep one order everywhere). The 128-byte console RAM is the state id.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from cswm_lib.errors import CswmError

IMG = 50


@dataclass(frozen=True)
class AtariGame:
    env_id: str
    game: str  # ale-py ROM name
    frameskip: int
    crop: tuple[int, int]  # rows kept of the 210x160 screen
    warmup: int  # random steps before recording (random-policy datasets)


GAMES = {
    g.env_id: g
    for g in (
        AtariGame("PongDeterministic-v4", "pong", 4, (35, 190), 58),
        AtariGame("SpaceInvadersDeterministic-v4", "space_invaders", 3, (30, 200), 50),
    )
}
ATARI_IDS = tuple(GAMES)


def game_info(game: str) -> AtariGame:
    """Look a game up by env id ("PongDeterministic-v4") or ROM name ("pong", "space_invaders")."""
    for g in GAMES.values():
        if game in (g.env_id, g.game) or game.lower().replace("_", "") == g.game.replace("_", ""):
            return g
    names = list(GAMES) + [g.game for g in GAMES.values()]
    raise CswmError(f"unknown Atari game {game!r}: expected one of {names}")


class CheckedActions(gym.Wrapper):
    """Refuses actions outside ``0 .. n-1`` with a one-line error: the ALE would index its action
    set with them (``-1`` silently plays the last action) or fail with a raw ``IndexError``."""

    def step(self, action):
        n = int(self.env.action_space.n)
        ok = isinstance(action, (int, np.integer)) and not isinstance(action, (bool, np.bool_))
        if isinstance(action, np.ndarray) and action.ndim == 0 and action.dtype.kind in "iu":
            ok, action = True, action.item()
        if not ok or not 0 <= action < n:
            game = self.env.spec.id if self.env.spec else "this game"
            raise CswmError(f"invalid action {action!r} for {game}: expected a whole number in 0..{n - 1}")
        return self.env.step(int(action))


def make_ale(**kwargs) -> gym.Env:
    """The gymnasium entry point of the paper's Atari ids: ale-py's env with checked actions."""
    from ale_py.env import AtariEnv

    return CheckedActions(AtariEnv(**kwargs))


def register_atari() -> None:
    """Register ``PongDeterministic-v4`` and ``SpaceInvadersDeterministic-v4`` (idempotent)."""
    for g in GAMES.values():
        if g.env_id in gym.registry:
            continue
        gym.register(
            id=g.env_id,
            entry_point="cswm_lib.envs.atari:make_ale",
            kwargs=dict(
                game=g.game,
                obs_type="rgb",
                frameskip=g.frameskip,
                repeat_action_probability=0.0,
                full_action_space=False,
                max_num_frames_per_episode=108_000,
            ),
            max_episode_steps=400_000 // g.frameskip,
        )


def preprocess_frame(rgb: np.ndarray, game: str) -> np.ndarray:
    """Raw screen uint8 ``[210, 160, 3]`` -> uint8 ``[3, 50, 50]``: game crop, Lanczos resize, CHW."""
    from PIL import Image

    top, bottom = game_info(game).crop
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise CswmError(f"expected an RGB screen [H, W, 3], got {list(rgb.shape)}")
    small = Image.fromarray(np.ascontiguousarray(rgb[top:bottom])).resize((IMG, IMG), Image.LANCZOS)
    return np.asarray(small, dtype=np.uint8).transpose(2, 0, 1).copy()


def stack_frames(previous: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Two ``[3, 50, 50]`` frames -> ``[6, 50, 50]`` in the book's order: (previous, current)."""
    return np.concatenate([previous, current], axis=0)


def get_ram(env: gym.Env) -> np.ndarray:
    """The console's 128-byte RAM, uint8 ``[128]`` (the Atari state id)."""
    return np.array(env.unwrapped.ale.getRAM(), dtype=np.uint8)


def random_episode(
    env: gym.Env,
    game: str,
    rng: np.random.Generator,
    seed: int | None = None,
    num_steps: int = 10,
    warmup: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """One random-policy episode the way the paper's data generator records it.

    Reset (with ``seed`` if given); ``warmup`` uniformly random actions (default 58 Pong / 50 Space
    Invaders); a no-op step; then ``num_steps`` random actions. Returns frames uint8
    ``[T+1, 6, 50, 50]`` (previous, current), actions int64 ``[T]``, RAM uint8 ``[T+1, 128]`` --
    or ``None`` if the game ended before the last recorded step.

    Without sticky actions the ALE is deterministic: the episode is a function of the actions
    alone (``seed`` does not change it; a seeded reset reloads the ROM, ~90 ms, so pass it once).
    """
    info = game_info(game)
    warmup = info.warmup if warmup is None else warmup
    n = env.action_space.n
    rgb, _ = env.reset(seed=seed)
    for _ in range(warmup):
        rgb, _, term, trunc, _ = env.step(int(rng.integers(n)))
        if term or trunc:
            return None
    previous = preprocess_frame(rgb, info.game)
    rgb, _, term, trunc, _ = env.step(0)
    current = preprocess_frame(rgb, info.game)
    frames, rams = [stack_frames(previous, current)], [get_ram(env)]
    actions = rng.integers(n, size=num_steps)
    for a in actions:
        if term or trunc:
            return None
        rgb, _, term, trunc, _ = env.step(int(a))
        previous, current = current, preprocess_frame(rgb, info.game)
        frames.append(stack_frames(previous, current))
        rams.append(get_ram(env))
    return np.stack(frames), actions.astype(np.int64), np.stack(rams)
