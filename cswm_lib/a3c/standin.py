"""Stand-in burn-in policies that read the console RAM, and their quality against random play.

Section 4.3 collects its data after a burn-in played by a trained A3C agent
(:mod:`cswm_lib.a3c.collect`). At the ``cpu`` scale the A3C agents of chapter 07 play no better
than random, so a collection there may name a stand-in instead (``--policy track_ball``): a fixed
rule over the 128-byte RAM, labelled by its name in the dataset's attributes. The full scale keeps
A3C as published.

- ``track_ball`` (Pong): move the player's paddle toward the ball's height. RAM byte 54 holds the
  ball's y (0 while no ball is in play), byte 51 the player's paddle y, on the same scale (the
  ``atariari`` annotations of Anand et al. 2019, checked against the screen: both follow the
  rendered rows with slope ~1). RIGHT (2) moves the paddle up, LEFT (3) down.

Space Invaders has no stand-in: the rules tried did not beat random play by a margin that a 95 %
t-interval resolves. Over 20 full games each, epsilon-greedy with ``eps = 0.5``: firing always
returned 173 (127 to 219), firing while sweeping between x = 40 and 110 (RAM byte 28) 206 (134 to
277), uniformly random actions 152 (96 to 209).

A policy's ``act(ram)`` returns the action it would play; ``reset()`` starts an episode. Collection
plays it epsilon-greedily like the agent (``cswm_lib.a3c.collect.collect_episode``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cswm_lib import checks
from cswm_lib.errors import CswmError
from cswm_lib.verdict import t_interval

PONG = "PongDeterministic-v4"


class RamPolicy:
    """A rule that picks an action from the console RAM; ``name`` labels it in code, CLI and records."""

    name = ""
    env_id = ""

    def reset(self) -> None:
        """Forget the previous episode (the rules here keep no state)."""

    def act(self, ram: np.ndarray) -> int:
        raise NotImplementedError


class TrackBall(RamPolicy):
    """Pong: move the paddle toward the ball; no-op while no ball is in play or when within ``dead`` rows."""

    name = "track_ball"
    env_id = PONG
    BALL_Y, PLAYER_Y = 54, 51  # RAM bytes
    NOOP, UP, DOWN = 0, 2, 3  # PongDeterministic-v4's minimal action set: RIGHT moves up, LEFT down

    def __init__(self, dead: int = 2):
        self.dead = dead

    def act(self, ram: np.ndarray) -> int:
        ball = int(ram[self.BALL_Y])
        if ball == 0:
            return self.NOOP
        gap = ball - int(ram[self.PLAYER_Y])
        if abs(gap) <= self.dead:
            return self.NOOP
        return self.DOWN if gap > 0 else self.UP


#: The stand-ins by name.
STANDINS: dict[str, type[RamPolicy]] = {TrackBall.name: TrackBall}


def make_standin(name: str, env_id: str) -> RamPolicy:
    """The stand-in ``name`` for game ``env_id``; a one-line :class:`CswmError` for an unknown name
    or another game's stand-in."""
    checks.choice(name, "stand-in policy", STANDINS)
    policy = STANDINS[name]()
    if policy.env_id != env_id:
        raise CswmError(f"stand-in policy {name!r} plays {policy.env_id}, not {env_id}")
    return policy


def episode_rng(seed: int, episode: int) -> np.random.Generator:
    """The generator of episode ``episode`` of a measurement: a function of (seed, episode) only."""
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(episode,)))


def play_returns(env_id: str, policy: RamPolicy | None, episodes: int, eps: float = 0.0, seed: int = 0,
                 max_steps: int | None = None) -> np.ndarray:
    """Undiscounted returns ``[episodes]`` of ``policy`` played epsilon-greedily (a uniformly random
    action with probability ``eps``; ``policy=None`` plays uniformly random actions throughout).

    An episode runs to the game's end, or for ``max_steps`` agent steps when given (then the return
    counts the points of those steps only). The ALE here has no sticky actions, so all randomness
    comes from the coin flips and random actions of :func:`episode_rng` ``(seed, episode)``."""
    from cswm_lib.a3c.agent import make_env

    env = make_env(env_id)
    n = int(env.action_space.n)
    out = np.zeros(episodes)
    try:
        for e in range(episodes):
            rng = episode_rng(seed, e)
            env.reset(seed=seed)
            if policy is not None:
                policy.reset()
            steps = 0
            while max_steps is None or steps < max_steps:
                explore = rng.random() < eps
                greedy = None if policy is None else policy.act(env.unwrapped.ale.getRAM())
                action = int(rng.integers(n)) if explore or greedy is None else greedy
                _, reward, term, trunc, _ = env.step(action)
                out[e] += reward
                steps += 1
                if term or trunc:
                    break
    finally:
        env.close()
    return out


def versus_random(env_id: str, name: str, episodes: int = 10, eps: float = 0.5, seed: int = 0,
                  max_steps: int | None = None, level: float = 0.95) -> dict[str, Any]:
    """Stand-in ``name`` (epsilon-greedy with ``eps``, as the burn-in plays it) against uniformly random
    actions, ``episodes`` each (see :func:`play_returns`). Returns per side (``name`` and ``"random"``)
    the ``returns``, their ``mean`` and ``level`` t-``interval``, and the settings played."""
    sides = {name: make_standin(name, env_id), "random": None}
    out: dict[str, Any] = dict(env_id=env_id, episodes=episodes, eps=eps, seed=seed, max_steps=max_steps,
                               level=level)
    for side, policy in sides.items():
        r = play_returns(env_id, policy, episodes, eps if policy is not None else 1.0, seed, max_steps)
        out[side] = dict(returns=r.tolist(), mean=float(r.mean()),
                         interval=[float(x) for x in t_interval(r, level)])
    return out
