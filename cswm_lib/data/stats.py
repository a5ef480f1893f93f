"""Dataset statistics the paper's arguments rest on: repeated states, no-op steps, duplicate starts.

All functions take ground-truth state ids (``Episodes.state_ids``, int ``[E, T+1, S]``).
"""

from __future__ import annotations

import numpy as np


def _row_keys(ids: np.ndarray) -> np.ndarray:
    """``[N, S]`` -> ``[N]`` integer label per row; equal rows get equal labels."""
    rows = np.ascontiguousarray(ids).reshape(len(ids), -1)
    return np.unique(rows, axis=0, return_inverse=True)[1].reshape(-1)


def duplicated(ids: np.ndarray) -> np.ndarray:
    """Bool ``[N]``: does row ``i`` of ``ids`` ``[N, S]`` occur at least twice?"""
    labels = _row_keys(ids)
    return np.bincount(labels)[labels] > 1


def duplicate_fraction(ids: np.ndarray) -> float:
    """Fraction of rows of ``[N, S]`` that equal some other row."""
    return float(duplicated(ids).mean()) if len(ids) else 0.0


def repeated_targets(state_ids: np.ndarray, steps: tuple[int, ...] = (1, 5, 10)) -> dict[int, float]:
    """For each ``L`` in ``steps``: fraction of episodes whose state after ``L`` steps also is the state
    after ``L`` steps of another episode -- the eval queries a perfect model cannot tell apart."""
    return {L: duplicate_fraction(state_ids[:, L]) for L in steps if L < state_ids.shape[1]}


def seen_in(ids: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Bool ``[N]``: does row ``i`` of ``ids`` ``[N, S]`` occur in ``reference`` ``[M, S]``?"""
    both = _row_keys(np.concatenate([ids, reference]))
    return np.isin(both[: len(ids)], both[len(ids):])


def noop_stats(
    actions: np.ndarray, state_ids: np.ndarray, immovable: tuple[int, ...] = (0, 1)
) -> dict[str, float]:
    """How often a random action changes nothing, in a block-pushing dataset.

    ``actions`` ``[E, T]``, ``state_ids`` ``[E, T+1, 2K]``. Returns the fraction of steps that are no-ops
    (state unchanged), split into actions addressed to ``immovable`` objects (``action // 4``) and
    blocked moves of movable objects (wall or another object in the way).
    """
    same = (state_ids[:, 1:] == state_ids[:, :-1]).all(-1)
    to_immovable = np.isin(actions // 4, immovable)
    return {
        "noop": float(same.mean()),
        "noop_immovable_action": float((same & to_immovable).mean()),
        "noop_blocked": float((same & ~to_immovable).mean()),
        "immovable_actions": float(to_immovable.mean()),
    }


def expected_duplicate_pairs(n: int, num_states: int) -> float:
    """Birthday estimate: expected number of equal pairs among ``n`` uniform draws from ``num_states``."""
    return n * (n - 1) / 2 / num_states
