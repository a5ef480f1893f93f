"""Dataset statistics on hand-made state ids."""

import numpy as np

from cswm_lib.data.stats import (
    duplicate_fraction,
    duplicated,
    expected_duplicate_pairs,
    noop_stats,
    repeated_targets,
    seen_in,
)


def test_duplicates_and_membership():
    ids = np.array([[1, 2], [3, 4], [1, 2], [5, 6], [1, 2]])
    assert duplicated(ids).tolist() == [True, False, True, False, True]
    assert duplicate_fraction(ids) == 0.6
    assert seen_in(ids, np.array([[3, 4], [9, 9]])).tolist() == [False, True, False, False, False]
    assert expected_duplicate_pairs(3, 3) == 1.0


def test_repeated_targets_per_step():
    s = np.zeros((3, 3, 1), dtype=np.int64)  # [E=3, T+1=3, S=1]
    s[:, 1, 0] = [7, 7, 8]  # after 1 step, episodes 0 and 1 coincide
    s[:, 2, 0] = [1, 2, 3]
    assert repeated_targets(s, steps=(1, 2, 5)) == {1: 2 / 3, 2: 0.0}


def test_noop_stats_split():
    actions = np.array([[0, 9, 12, 5]])  # object 0 (immovable), 2, 3, 1 (immovable)
    pos = np.array([[0, 0], [0, 0], [0, 1], [0, 1], [0, 1]])  # changes only at step 1
    ids = np.repeat(pos[None], 1, 0)
    stats = noop_stats(actions, ids)
    assert stats["noop"] == 0.75 and stats["noop_immovable_action"] == 0.5 and stats["noop_blocked"] == 0.25
    assert stats["immovable_actions"] == 0.5
