"""train: bad settings are one line; an interrupted run resumes bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_worlds import tiny_episodes

from .common import (
    Child,
    _episodes,
    _h5,
    _leftovers,
    _train,
    _train_main,
    _write,
    api_cases,
    case,
    cli,
    run_api_case,
    train_argv,
)

TRAIN_INTERRUPTS = [case("Ctrl-C to the process group during training", "lost_or_overwritten")]


@pytest.mark.parametrize("name", TRAIN_INTERRUPTS)
def test_ctrl_c_during_training_resumes_bit_identically(name, tmp_path):
    from cswm_lib.data.hdf5 import save_episodes
    from cswm_lib.train import TrainConfig, read_log, train
    from cswm_lib.utils import torch_threads

    data = save_episodes(tiny_episodes(E=4, T=8), tmp_path / "tiny.h5")
    flags = dict(
        dataset=data, save_folder=tmp_path, name="cut", hidden_dim=16, num_objects=2, batch_size=8, seed=3
    )
    argv = [x for k, v in flags.items() for x in (f"--{k.replace('_', '-')}", v)]
    # one torch thread on both sides: float sums depend on the thread count, and earlier tests may
    # have changed this process's
    child = Child(
        "cswm_lib.train",
        *argv,
        "--epochs",
        2000,
        "--device",
        "cpu",
        "--no-progress",
        env={"OMP_NUM_THREADS": "1"},
    )
    folder = tmp_path / "cut"
    # log.jsonl is written before state.pt at the end of an epoch: 3 rows mean state.pt holds >= 2 epochs
    child.wait_for(lambda: (folder / "log.jsonl").is_file() and len(read_log(folder)) >= 3)
    assert child.interrupt(group="group" in name) == 130
    assert _leftovers(tmp_path) == []
    done = torch.load(folder / "state.pt", weights_only=True)["epoch"]
    assert 2 <= done < 2000
    kw = dict(flags, dataset=str(data), save_folder=str(tmp_path), device="cpu", progress=False)
    with torch_threads(1):
        train(TrainConfig(**{**kw, "epochs": done + 1}))  # the same run, resumed
        train(TrainConfig(**{**kw, "name": "whole", "epochs": done + 1}))  # never interrupted
    a, b = (torch.load(tmp_path / n / "last.pt", weights_only=True) for n in ("cut", "whole"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["loss"] for r in read_log(folder)] == [r["loss"] for r in read_log(tmp_path / "whole")]


API = [  # (what the user does, class it guards against, call(tmp_path, trained), message)
    (
        "learning rate 0",
        "traceback",
        lambda t, m: _train(t, tiny_episodes(), learning_rate=0.0),
        "--learning-rate must be > 0",
    ),
    (
        "learning rate nan",
        "traceback",
        lambda t, m: _train(t, tiny_episodes(), learning_rate=float("nan")),
        "must be a finite number",
    ),
    ("sigma 0", "traceback", lambda t, m: _train(t, tiny_episodes(), sigma=0.0), "sigma must be > 0"),
    (
        "negative hinge",
        "silent_wrong",
        lambda t, m: _train(t, tiny_episodes(), hinge=-1.0),
        "hinge must be >= 0",
    ),
    (
        "device='cuda' without CUDA (API)",
        "traceback",
        lambda t, m: _train(t, tiny_episodes(), device="cuda"),
        "CUDA is not available",
    ),
    (
        "device='mps' (API)",
        "traceback",
        lambda t, m: _train(t, tiny_episodes(), device="mps"),
        "not supported here",
    ),
    (
        "epochs = 1.5 (API)",
        "traceback",
        lambda t, m: _train(t, tiny_episodes(), epochs=1.5),
        "--epochs must be a whole number",
    ),
    (
        "num_objects too small for the actions",
        "traceback",
        lambda t, m: _train(t, tiny_episodes(K=2), num_objects=1),
        "has 8 actions but --action-dim x --num-objects",
    ),
    (
        "negative actions",
        "misleading_message",
        lambda t, m: _train(t, _episodes(actions=-np.ones((2, 4), np.int64))),
        "has negative actions",
    ),
    (
        "unknown encoder",
        "traceback",
        lambda t, m: _train(t, tiny_episodes(), encoder="huge"),
        "unknown encoder",
    ),
    ("epochs 0", "traceback", lambda t, m: _train(t, tiny_episodes(), epochs=0), "--epochs must be >= 1"),
    (
        "unknown strategy",
        "traceback",
        lambda t, m: _train(t, tiny_episodes(), strategy="x"),
        "unknown --strategy 'x'",
    ),
    (
        "beta outside [0, 1]",
        "silent_wrong",
        lambda t, m: _train(t, tiny_episodes(), beta=2.0),
        "is a probability",
    ),
]


@pytest.mark.parametrize(("name", "call", "pattern"), api_cases(API))
def test_a_bad_training_setting_is_one_line(name, call, pattern, tmp_path, trained):
    run_api_case(name, call, pattern, tmp_path, trained)


TRAIN_CLI = [
    case("--device gpu", "traceback"),
    case("--device tpu", "traceback"),
    case("--device mps", "traceback"),
    case("--beta with the baseline", "silent_wrong"),
    case("--beta with --strategy episodic", "silent_wrong"),
    case("--hinge -1", "silent_wrong"),
    case("--sigma 0", "traceback"),
    case("--learning-rate -1", "traceback"),
    case("missing --dataset", "traceback"),
    case("--custom-neg with --strategy baseline", "traceback"),
    case("resume on another dataset", "silent_wrong"),
    case("resume with a truncated state.pt", "traceback"),
    case("resume with another config", "traceback"),
    case("resume on another dataset at the same path", "silent_wrong"),
    case("a full disk during training", "traceback"),
    case("--gamma -1", "silent_wrong"),
    case("--hinge inf", "silent_wrong"),
    case("--save-folder is a file", "traceback"),
    case("--name escaping --save-folder", "silent_wrong"),
    case("--name ''", "silent_wrong"),
    case("--dataset is a folder", "misleading_message"),
    case("--epochs 1.5 on the command line", "traceback"),  # was: the 20-line usage, then the error
]


@pytest.mark.parametrize("name", TRAIN_CLI)
def test_train_refuses_bad_input_in_one_line_and_keeps_the_run(name, tmp_path, capsys, monkeypatch):
    import errno
    import json
    import os
    import shutil

    data = _h5(tmp_path)
    base = train_argv(data, tmp_path)
    extra = {
        "--device gpu": ["--device", "gpu"],
        "--device tpu": ["--device", "tpu"],
        "--device mps": ["--device", "mps"],
        "--beta with the baseline": ["--beta", "0.3"],
        "--beta with --strategy episodic": ["--strategy", "episodic", "--beta", "0.3"],
        "--hinge -1": ["--hinge", "-1"],
        "--sigma 0": ["--sigma", "0"],
        "--learning-rate -1": ["--learning-rate", "-1"],
        "missing --dataset": ["--dataset", tmp_path / "nope.h5"],
        "--custom-neg with --strategy baseline": ["--custom-neg", "--strategy", "baseline"],
        "--gamma -1": ["--gamma", "-1"],
        "--hinge inf": ["--hinge", "inf"],
        "--save-folder is a file": ["--save-folder", _write(tmp_path / "notes.txt", b"notes")],
        "--name escaping --save-folder": ["--name", "../escape"],
        "--name ''": ["--name", ""],
        "--dataset is a folder": ["--dataset", tmp_path],
        "--epochs 1.5 on the command line": ["--epochs", "1.5"],
    }
    want = {
        "--device gpu": "unknown device 'gpu'",
        "--device tpu": "device 'tpu'",
        "--device mps": "device 'mps' is not supported here",
        "--beta with the baseline": "has no effect without --custom-neg",
        "--beta with --strategy episodic": "has no effect with --strategy episodic",
        "--hinge -1": "hinge must be >= 0",
        "--sigma 0": "sigma must be > 0",
        "--learning-rate -1": "--learning-rate must be > 0",
        "missing --dataset": "dataset not found",
        "--custom-neg with --strategy baseline": "--custom-neg asks for dataset negatives",
        "--gamma -1": "--gamma must be >= 0 (it weighs the negative term)",
        "--hinge inf": "hinge must be a finite number, got inf",
        "--save-folder is a file": "notes.txt is a file, not a folder",
        "--name escaping --save-folder": "--name must name a folder inside --save-folder",
        "--name ''": "--name must name a folder inside --save-folder",
        "--dataset is a folder": "is a folder, not an HDF5 file",
        "--epochs 1.5 on the command line": "argument --epochs: invalid int value: '1.5' (see --help)",
    }
    folder = tmp_path / "run"
    if name in extra:
        before = sorted(tmp_path.rglob("*"))
        assert want[name] in cli(_train_main, base + extra[name], capsys)
        assert sorted(tmp_path.rglob("*")) == before and not (tmp_path.parent / "escape").exists()
        return
    _train_main([str(a) for a in base])  # a finished 1-epoch run to resume
    capsys.readouterr()
    config, state = (folder / "config.json").read_bytes(), (folder / "state.pt").read_bytes()
    if name == "resume on another dataset":
        other = _h5(tmp_path, "other.h5", seed=7)
        msg = cli(_train_main, base + ["--dataset", other, "--epochs", 2], capsys)
        assert "was trained on another dataset" in msg
        assert json.loads(config)["train"]["dataset"] == str(data)
    elif name == "resume on another dataset at the same path":
        shutil.copy(data, tmp_path / "kept.h5")
        _h5(tmp_path, data.name, seed=7)  # other episodes written over the same file name
        assert "was trained on another dataset" in cli(_train_main, base + ["--epochs", 2], capsys)
        assert (folder / "config.json").read_bytes() == config and (folder / "state.pt").read_bytes() == state
        # the fingerprint is of the content, not the path: the same episodes under another name resume
        _train_main([str(a) for a in base + ["--dataset", tmp_path / "kept.h5", "--epochs", 2]])
        assert torch.load(folder / "state.pt", weights_only=True)["epoch"] == 2
        return
    elif name == "a full disk during training":
        model = (folder / "model.pt").read_bytes()

        def full(obj, f, *a, **k):  # writes a little, then the disk is full
            Path(f).write_bytes(b"partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(f))

        monkeypatch.setattr(torch, "save", full)
        assert "No space left on device" in cli(_train_main, base + ["--epochs", 2], capsys)
        monkeypatch.undo()
        assert (folder / "model.pt").read_bytes() == model
        config = (folder / "config.json").read_bytes()  # names the longer budget asked for: rewritten
    elif name == "resume with a truncated state.pt":
        (folder / "state.pt").write_bytes(state[: len(state) // 3])
        msg = cli(_train_main, base + ["--epochs", 2], capsys)
        assert "state.pt is not a valid or trusted training state" in msg
        state = (folder / "state.pt").read_bytes()
    else:
        assert "another config" in cli(_train_main, base + ["--epochs", 2, "--hidden-dim", 32], capsys)
    assert (folder / "config.json").read_bytes() == config and (folder / "state.pt").read_bytes() == state
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("name", [case("atomic writes get the umask's mode", "silent_wrong")])
def test_atomic_writes_get_the_umasks_mode(name, tmp_path, trained):
    import os

    from cswm_lib.utils import write_json

    data = _h5(tmp_path, "eval.h5", E=4, T=4)
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
        os.umask(0o027)
        write_json(tmp_path / "b.json", {"x": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.json").stat().st_mode & 0o777 == 0o640
    assert (trained / "model.pt").stat().st_mode & 0o777 == 0o666 & ~old
    assert data.stat().st_mode & 0o777 == 0o666 & ~old  # an HDF5 dataset (EpisodeWriter / save_episodes)
