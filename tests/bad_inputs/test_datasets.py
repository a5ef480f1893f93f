"""Datasets: bad files and arrays are one line, whether loaded or trained on."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_worlds import tiny_episodes

from .common import (
    _episodes,
    _h5,
    _h5_foreign,
    _load_episodes,
    _original,
    _train,
    _write,
    api_cases,
    run_api_case,
)

API = [  # (what the user does, class it guards against, call(tmp_path, trained), message)
    (
        "0-episode dataset",
        "traceback",
        lambda t, m: _train(
            t,
            tiny_episodes(E=2, T=4).__class__(
                np.zeros((0, 5, 3, 50, 50), np.uint8), np.zeros((0, 4), np.int64)
            ),
        ),
        "has 0 episodes of 4 steps: nothing to train on",
    ),
    (
        "0-step dataset",
        "traceback",
        lambda t, m: _train(
            t,
            tiny_episodes(E=2, T=4).__class__(
                np.zeros((2, 1, 3, 50, 50), np.uint8), np.zeros((2, 0), np.int64)
            ),
        ),
        "has 2 episodes of 0 steps",
    ),
    (
        "NaN frames in an original-layout file",
        "silent_wrong",
        lambda t, m: _load_episodes(_original(t, frames=np.full((5, 3, 50, 50), np.nan, np.float32))),
        "NaN or inf values",
    ),
    (
        "float actions in an original-layout file",
        "silent_wrong",
        lambda t, m: _load_episodes(_original(t, actions=np.array([0.0, 1.5, 2.0, 3.0]))),
        "actions must be whole numbers, got 1.5",
    ),
    (
        "float actions in Episodes",
        "silent_wrong",
        lambda t, m: _episodes(actions=np.full((2, 4), 0.7)),
        "actions must be whole numbers",
    ),
    ("missing dataset file", "traceback", lambda t, m: _load_episodes(t / "nope.h5"), "not found"),
    ("dataset path is a folder", "traceback", lambda t, m: _load_episodes(t), "is a directory"),
    (
        "random bytes as a dataset",
        "traceback",
        lambda t, m: _load_episodes(_write(t / "x.h5", b"\x89HDF-not-really" * 50)),
        "not a valid HDF5 file",
    ),
    (
        "truncated dataset",
        "traceback",
        lambda t, m: _load_episodes(_write(t / "x.h5", _h5(t).read_bytes()[:3000])),
        "cannot read",
    ),
    (
        "HDF5 file of another layout",
        "traceback",
        lambda t, m: _load_episodes(_h5_foreign(t)),
        "is neither a cswm-book dataset",
    ),
    (
        "frames that are not uint8",
        "traceback",
        lambda t, m: _episodes(frames=np.zeros((2, 5, 3, 50, 50), np.float32)),
        "frames must be uint8",
    ),
    (
        "actions that do not match the frames",
        "traceback",
        lambda t, m: _episodes(actions=np.zeros((2, 7), np.int64)),
        "do not match frames",
    ),
]


@pytest.mark.parametrize(("name", "call", "pattern"), api_cases(API))
def test_a_bad_dataset_is_one_line(name, call, pattern, tmp_path, trained):
    run_api_case(name, call, pattern, tmp_path, trained)
