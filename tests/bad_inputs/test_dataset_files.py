"""Dataset files whose keys are right but whose values are not: `train` refuses each in one line that
names the file and the field, and changes nothing (no run folder, no temp file, the dataset as it was).

Each file is a good dataset of ours (or of the original layout) with one thing made wrong, the way a
buggy converter, another program or a crafted file would.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from tiny_worlds import tiny_episodes

from .common import _h5, _train_main, api_refused, case, h5_edit, refused, snapshot, train_argv, unchanged


def _replace(name: str, value):
    def edit(f):
        del f[name]
        f[name] = value

    return edit


def _attr(key: str, value):
    def edit(f):
        f.attrs[key] = value

    return edit


def _declared_but_empty(f):  # frames declared for 8 episodes, only 2 written (HDF5 fills zeros)
    frames = f["frames"][()]
    del f["frames"], f["actions"]
    ds = f.create_dataset("frames", (8, *frames.shape[1:]), np.uint8, chunks=(1, *frames.shape[1:]))
    ds[:2] = frames
    f["actions"] = np.zeros((8, frames.shape[1] - 1), np.int64)
    ids = f["state_ids"][()]
    del f["state_ids"]
    f["state_ids"] = np.zeros((8, *ids.shape[1:]), np.int64)
    f.attrs["num_episodes"] = 8


def _huge(f):  # 10^10 episodes declared in a file of a few KB
    del f["frames"], f["actions"]
    f.create_dataset("frames", (10**10, 5, 3, 50, 50), np.uint8, chunks=(1, 5, 3, 50, 50))
    f.create_dataset("actions", (10**10, 4), np.int64, chunks=(1, 4))


def _middle_frame_changed(f):  # content changed after it was written (hash no longer matches)
    f["frames"][1, 2, 0, 0, 0] = 255 - f["frames"][1, 2, 0, 0, 0]


#: case -> (class, edit of a good v1 dataset, what the error line names)
V1 = {
    "train on a dataset whose state ids are floats (0.2, 0.7)": (
        "silent_wrong",
        _replace("state_ids", np.full((2, 5, 4), 0.2)),
        "'/state_ids' must be integers",
    ),
    "train on a dataset whose num_actions attribute is a string": (
        "traceback",
        _attr("num_actions", "eight"),
        "attribute 'num_actions' must be a whole number",
    ),
    "train on a dataset whose num_actions attribute is a list": (
        "traceback",
        _attr("num_actions", [1, 2]),
        "attribute 'num_actions'",
    ),
    "train on a dataset whose atari attribute is the string 'False'": (
        "misleading_message",
        _attr("atari", "False"),
        "attribute 'atari' must be true or false",
    ),
    "train on a dataset that declares 8 episodes but stores 2": (
        "silent_wrong",
        _declared_but_empty,
        "not all of it is stored",
    ),
    "train on a 10^10-episode dataset of a few KB": ("traceback", _huge, "more than this library loads"),
    "train on a dataset whose num_episodes attribute disagrees with its frames": (
        "silent_wrong",
        _attr("num_episodes", 10**10),
        "attribute 'num_episodes' says 10000000000",
    ),
    "train on a dataset whose episode_length attribute disagrees with its frames": (
        "silent_wrong",
        _attr("episode_length", 7),
        "attribute 'episode_length' says 7",
    ),
    "train on a dataset whose frames are float": (
        "traceback",
        _replace("frames", np.zeros((2, 5, 3, 50, 50), np.float32)),
        "'/frames' must be uint8",
    ),
    "train on a dataset whose actions are float": (
        "silent_wrong",
        _replace("actions", np.full((2, 4), 0.5)),
        "'/actions'",
    ),
    "train on a dataset whose format_version is a string": (
        "traceback",
        _attr("format_version", "1"),
        "format_version '1' is not supported",
    ),
    "train on a dataset whose '/frames' is a group": (
        "traceback",
        lambda f: (f.__delitem__("frames"), f.create_group("frames")),
        "'/frames' is a Group",
    ),
    "train on a dataset whose frames have 0 channels": (
        "traceback",
        _replace("frames", np.zeros((2, 5, 0, 50, 50), np.uint8)),
        "'/frames' must be uint8",
    ),
    "train on a dataset whose state ids do not match its frames": (
        "traceback",
        _replace("state_ids", np.zeros((2, 3, 4), np.int64)),
        "'/state_ids' [2, 3, 4]",
    ),
    "train on a dataset whose middle frames changed after it was written": (
        "silent_wrong",
        _middle_frame_changed,
        "does not match the hash written when it was made",
    ),
    "train on a dataset whose seed attribute is a string": (
        "silent_wrong",
        _attr("seed", "one"),
        "attribute 'seed' must be a whole number",
    ),
}
V1_CASES = [pytest.param(case(n, k), edit, want, id=n) for n, (k, edit, want) in V1.items()]




@pytest.mark.parametrize(("name", "edit", "want"), V1_CASES)
def test_train_refuses_a_dataset_with_a_bad_value_in_one_line_naming_it(name, edit, want, tmp_path, capsys):
    data = h5_edit(_h5(tmp_path, "d.h5", T=4), edit)
    before = snapshot(tmp_path)
    refused(_train_main, train_argv(data, tmp_path / "runs"), capsys, "d.h5", want)
    unchanged(before, tmp_path)


def _original(path: Path, episodes: list[dict]) -> Path:
    with h5py.File(path, "w") as f:
        for i, ep in enumerate(episodes):
            g = f.create_group(str(i))
            for k, v in ep.items():
                g[k] = v
    return path


def _ep(T=4, side=50, ids=None):
    obs = np.zeros((T + 1, 3, side, side), np.float32)
    ep = {"obs": obs[:-1], "next_obs": obs[1:], "action": np.arange(T) % 4}
    if ids is not None:
        ep["state_ids"], ep["next_state_ids"] = ids[:-1], ids[1:]
    return ep


ORIGINAL = {
    "train on an original-layout file whose episodes differ in frame shape": (
        "traceback",
        lambda: [_ep(), _ep(side=60)],
        "same frame shape",
    ),
    "train on an original-layout file whose obs are 3-D": (
        "traceback",
        lambda: [{**_ep(), "obs": np.zeros((4, 50, 50)), "next_obs": np.zeros((4, 50, 50))}],
        "must both be [T, C, H, W]",
    ),
    "train on an original-layout file whose state ids are fractional": (
        "silent_wrong",
        lambda: [_ep(ids=np.full((5, 4), 0.5))],
        "must be whole numbers",
    ),
    "train on an original-layout file whose actions are 2-D": (
        "traceback",
        lambda: [{**_ep(), "action": np.zeros((4, 2), np.int64)}],
        "action must be [T]",
    ),
}
ORIGINAL_CASES = [pytest.param(case(n, k), make, want, id=n) for n, (k, make, want) in ORIGINAL.items()]


@pytest.mark.parametrize(("name", "make", "want"), ORIGINAL_CASES)
def test_train_refuses_a_bad_original_layout_file_in_one_line(name, make, want, tmp_path, capsys):
    data = _original(tmp_path / "orig.h5", make())
    before = snapshot(tmp_path)
    refused(_train_main, train_argv(data, tmp_path / "runs"), capsys, "orig.h5", want)
    unchanged(before, tmp_path)


@pytest.mark.parametrize("name", [case("build Episodes with fractional state ids", "silent_wrong")])
def test_episodes_with_fractional_state_ids_are_refused_not_truncated(name):
    from cswm_lib.data.episodes import Episodes

    e = tiny_episodes(E=2, T=4)
    ids = e.state_ids.astype(float)
    ids[0, 1, 0] = 0.2  # truncated to 0, it would merge with a state whose id holds 0 there
    api_refused(lambda: Episodes(e.frames, e.actions, ids), "state_ids must be whole numbers", "0.2")
