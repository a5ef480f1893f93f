"""A3C training and collection: interrupts leave resumable state; bad settings are one line."""

from __future__ import annotations

import importlib
import re

import numpy as np
import pytest

from .common import (
    Child,
    _a3c_load,
    _a3c_policy_on,
    _a3c_train,
    _collect,
    _leftovers,
    _partial,
    _torch_file,
    _write,
    api_cases,
    case,
    cli,
    run_api_case,
)


@pytest.mark.parametrize(
    "name", [case("Ctrl-C to the process group during A3C collection", "lost_or_overwritten")]
)
def test_ctrl_c_during_collection_saves_a_partial_that_the_next_run_uses(name, tmp_path):
    from cswm_lib.a3c.collect import CollectConfig, collect
    from cswm_lib.data.hdf5 import load_episodes

    kw = dict(
        env_id="SpaceInvadersDeterministic-v4",
        min_burnin=1,
        max_burnin=3,
        max_episodes=300,
        num_steps=2,
        eps=0.5,
        seed=5,
        agent="random",
        checkpoint_every=1000,
    )
    out = tmp_path / "cut.h5"
    argv = [x for k, v in kw.items() if k != "env_id" for x in (f"--{k.replace('_', '-')}", v)]
    child = Child("cswm_lib.a3c.collect", kw["env_id"], "--save-path", out, *argv)
    child.wait_for(lambda: re.search(rb"\| *[1-9]\d*/300", child.err) is not None)  # episodes are kept
    assert child.interrupt(group=True) == 130
    partial = tmp_path / "cut.h5.partial.npz"
    assert partial.is_file() and not out.exists() and _leftovers(tmp_path) == []
    kept = len(np.load(partial)["frames"])
    assert 1 <= kept < 300
    small = dict(kw, max_episodes=kept + 1, progress=False)  # the next run: continues from the partial
    import json

    with np.load(partial) as z:  # same parameters, except the length, so the partial applies
        attrs = json.loads(str(z["attrs"]))
    assert attrs["num_episodes"] == 300
    got = load_episodes(
        collect(CollectConfig(save_path=str(out), **kw | {"progress": False, "max_episodes": 300}))
    )
    assert len(got.frames) == 300 and not partial.exists()
    want = load_episodes(collect(CollectConfig(save_path=str(tmp_path / "whole.h5"), **small)))
    np.testing.assert_array_equal(got.frames[: kept + 1], want.frames)


A3C_INTERRUPTS = [
    case("Ctrl-C to the process group during A3C training", "lost_or_overwritten"),
    case("Ctrl-C to the main process of a 2-worker A3C training", "lost_or_overwritten"),
]


@pytest.mark.parametrize("name", A3C_INTERRUPTS)
def test_ctrl_c_during_a3c_training_leaves_a_resumable_checkpoint(name, tmp_path):
    a3c_train = importlib.import_module("cswm_lib.a3c.train")
    from cswm_lib.a3c.agent import load_checkpoint, read_returns

    child = Child(
        "cswm_lib.a3c.train",
        "CartPole-v1",
        "--folder",
        tmp_path,
        "--num-workers",
        2,
        "--max-frames",
        10_000_000,
        "--checkpoint-every",
        10_000_000,
        "--start-method",
        "fork",
        "--no-progress",
    )
    child.wait_for(lambda: (tmp_path / "curve.jsonl").is_file() and len(read_returns(tmp_path)) >= 5)
    assert child.interrupt(group="group" in name) == 130
    assert _leftovers(tmp_path) == []
    first = load_checkpoint(tmp_path)  # written on Ctrl-C
    assert first["frames"] > 0 and first["stats"]["episodes"] >= 5
    cfg = a3c_train.A3CConfig(
        env_id="CartPole-v1",
        num_workers=1,
        max_frames=first["frames"] + 300,
        checkpoint_every=10_000_000,
        folder=str(tmp_path),
        progress=False,
        start_method="fork",
    )
    a3c_train.train(cfg)
    second = load_checkpoint(tmp_path)
    assert second["frames"] >= first["frames"] + 300
    assert second["stats"]["episodes"] > first["stats"]["episodes"]
    curve = read_returns(tmp_path)
    assert [r["episode"] for r in curve] == list(range(1, len(curve) + 1))


API = [  # (what the user does, class it guards against, call(tmp_path, trained), message)
    (
        "truncated A3C checkpoint.pt",
        "traceback",
        lambda t, m: _a3c_load(_write(t / "checkpoint.pt", b"PK\x03\x04" + b"\0" * 40)),
        "is not a valid or trusted",
    ),
    (
        "A3C checkpoint.pt of another kind",
        "traceback",
        lambda t, m: _a3c_load(_torch_file(t / "checkpoint.pt", {"model": {}})),
        "is not an A3C checkpoint",
    ),
    ("no A3C checkpoint", "traceback", lambda t, m: _a3c_load(t / "checkpoint.pt"), "no A3C checkpoint"),
    (
        "corrupt partial collection",
        "traceback",
        lambda t, m: _partial(t),
        "is not a valid partial collection",
    ),
    (
        "collection with a non-Atari id",
        "traceback",
        lambda t, m: _collect(t, env_id="CartPole-v1"),
        "collection needs an Atari id",
    ),
    (
        "collection with min-burnin >= max-burnin",
        "traceback",
        lambda t, m: _collect(t, min_burnin=5, max_burnin=5),
        "need 0 <= --min-burnin < --max-burnin",
    ),
    ("collection with eps > 1", "traceback", lambda t, m: _collect(t, eps=1.5), "--eps must be in"),
    (
        "A3C load_policy(device='cuda') without CUDA",
        "traceback",
        lambda t, m: _a3c_policy_on(t, "cuda"),
        "CUDA is not available",
    ),
    (
        "A3C with 0 workers",
        "traceback",
        lambda t, m: _a3c_train(t, num_workers=0),
        "num_workers must be >= 1",
    ),
]


@pytest.mark.parametrize(("name", "call", "pattern"), api_cases(API))
def test_a_bad_a3c_setting_is_one_line(name, call, pattern, tmp_path, trained):
    run_api_case(name, call, pattern, tmp_path, trained)


A3C_CLI = [
    case("A3C train: --folder is a file", "traceback"),
    case("A3C train: --lr -1", "traceback"),
    case("A3C train: an env with continuous actions", "traceback"),
    case("A3C train: --start-method x", "traceback"),
    case("A3C train: --max-frames nan", "traceback"),
    case("A3C train: --max-frames 1.5", "silent_wrong"),
    case("A3C train: --hidden 0", "silent_wrong"),
    case("collect: --save-path is a folder", "traceback"),
    case("collect: --save-path is a pipe or a link to a device", "lost_or_overwritten"),
    case("collect: --save-path is a file that is not a dataset", "misleading_message"),
    case("collect: --checkpoint-every 0", "traceback"),
]


@pytest.mark.parametrize("name", A3C_CLI)
def test_a3c_refuses_bad_input_before_any_work(name, tmp_path, capsys):
    """Refused before any work: no folder made, no file replaced, no environment stepped."""
    import os
    import stat

    a3c_train = importlib.import_module("cswm_lib.a3c.train")
    col = importlib.import_module("cswm_lib.a3c.collect")
    notes = _write(tmp_path / "notes.txt", b"my notes")
    a3c = [
        "CartPole-v1",
        "--folder",
        tmp_path / "a3c",
        "--num-workers",
        1,
        "--max-frames",
        100,
        "--no-progress",
    ]
    out = tmp_path / "c.h5"
    collect = ["PongDeterministic-v4", "--save-path", out, "--agent", "random", "--max-episodes", 1]
    cases = {
        "A3C train: --folder is a file": (a3c_train.main, [*a3c, "--folder", notes], "notes.txt is a file"),
        "A3C train: --lr -1": (a3c_train.main, [*a3c, "--lr", -1], "need lr > 0"),
        "A3C train: an env with continuous actions": (
            a3c_train.main,
            ["Pendulum-v1", *a3c[1:]],
            "has Box actions; A3C here needs a discrete action space",
        ),
        "A3C train: --start-method x": (
            a3c_train.main,
            [*a3c, "--start-method", "x"],
            "unknown start_method",
        ),
        "A3C train: --max-frames nan": (
            a3c_train.main,
            [*a3c, "--max-frames", "nan"],
            "must be a whole number",
        ),
        "A3C train: --max-frames 1.5": (
            a3c_train.main,
            [*a3c, "--max-frames", 1.5],
            "must be a whole number",
        ),
        "A3C train: --hidden 0": (a3c_train.main, [*a3c, "--hidden", 0], "hidden must be >= 1"),
        "collect: --save-path is a folder": (col.main, [*collect, "--save-path", tmp_path], "is a folder"),
        "collect: --save-path is a file that is not a dataset": (
            col.main,
            [*collect, "--save-path", notes],
            "is not a dataset of ours; pass --overwrite",
        ),
        "collect: --checkpoint-every 0": (
            col.main,
            [*collect, "--checkpoint-every", 0],
            "--checkpoint-every must",
        ),
    }
    if "pipe" in name:  # a link to /dev/full and a pipe in tmp_path: a regression replaces only those
        (tmp_path / "full").symlink_to("/dev/full")
        os.mkfifo(tmp_path / "pipe")
        for target in ("full", "pipe"):
            assert "is not a regular file" in cli(
                col.main, [*collect, "--save-path", tmp_path / target], capsys
            )
        assert (tmp_path / "full").is_symlink() and stat.S_ISFIFO((tmp_path / "pipe").stat().st_mode)
    else:
        main, argv, want = cases[name]
        assert want in cli(main, argv, capsys)
    assert notes.read_bytes() == b"my notes"
    assert not (tmp_path / "a3c").exists() and not out.exists() and _leftovers(tmp_path) == []


A3C_MISC = [
    case("A3C train: unknown environment", "traceback"),
    case("collect: --check-dup-paths file missing", "traceback"),
]


@pytest.mark.parametrize("name", A3C_MISC)
def test_a3c_refuses_an_unknown_env_or_missing_file_in_one_line(name, tmp_path, capsys):
    if "A3C train" in name:
        a3c = importlib.import_module("cswm_lib.a3c.train")
        assert "unknown environment" in cli(a3c.main, ["NoSuchEnv-v9", "--folder", tmp_path], capsys)
    else:
        col = importlib.import_module("cswm_lib.a3c.collect")
        argv = [
            "PongDeterministic-v4",
            "--save-path",
            tmp_path / "c.h5",
            "--agent",
            "random",
            "--check-dup-paths",
            tmp_path / "none.h5",
        ]
        assert "--check-dup-paths file not found" in cli(col.main, argv, capsys)
    assert _leftovers(tmp_path) == []
