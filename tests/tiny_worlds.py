"""Tiny synthetic block-pushing datasets for fast model/training tests (no environment needed)."""

from __future__ import annotations

import numpy as np

from cswm_lib.data.episodes import Episodes

COLOURS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], dtype=np.uint8)
MOVES = np.array([[-1, 0], [0, 1], [1, 0], [0, -1]])


def tiny_episodes(
    E: int = 6, T: int = 8, K: int = 2, seed: int = 0, channels: int = 3, grid: int = 5, cell: int = 10
) -> Episodes:
    """E episodes of T random pushes of K coloured squares on a grid x grid board (cell px each).

    Action a moves object a // 4 in direction a % 4 unless it leaves the board or hits another
    object. ``channels=6`` stacks (current, previous) frames like the Atari data.
    """
    rng = np.random.default_rng(seed)
    side = grid * cell
    frames = np.zeros((E, T + 1, channels, side, side), np.uint8)
    actions = rng.integers(0, 4 * K, (E, T))
    ids = np.zeros((E, T + 1, 2 * K), np.int64)
    for e in range(E):
        pos = rng.permutation(grid * grid)[:K]
        pos = np.stack([pos // grid, pos % grid], 1)
        prev = None
        for t in range(T + 1):
            img = np.zeros((3, side, side), np.uint8)
            for k, (r, c) in enumerate(pos):
                img[:, r * cell : (r + 1) * cell, c * cell : (c + 1) * cell] = COLOURS[k % 3][:, None, None]
            frames[e, t, :3] = img
            if channels == 6:
                frames[e, t, 3:] = img if prev is None else prev
            prev = img
            ids[e, t] = pos.ravel()
            if t < T:
                k, d = divmod(int(actions[e, t]), 4)
                new = pos[k] + MOVES[d]
                if (0 <= new).all() and (new < grid).all() and not (pos == new).all(1).any():
                    pos[k] = new
    return Episodes(frames, actions, ids, {"num_actions": 4 * K, "env_id": "tiny"})
