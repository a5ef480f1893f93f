"""The bad-input battery (issue 15): files from others run no code, every bad input gets one line.

Each case below is a named entry of :data:`CASES` (category, and what the library did before issue
15: ``clean`` one-line error, ``traceback``, ``silent`` wrong behaviour or ``lost`` data). A case
asserts the exit code (CLI: ``error: ...`` on one line, exit 2) or the exception type and its
one-line message (API), and that nothing was lost or executed. ``test_battery_covers_every_case``
checks that every listed case is a parameter of a test here; ``python tests/test_bad_inputs.py``
prints the counts of the behaviour before issue 15, ``python tests/test_bad_inputs.py --now`` runs the
battery and adds how many cases pass now (``now_clean``) and its wall time.

Ctrl-C cases send a real SIGINT to a child process or to its whole process group.
"""

from __future__ import annotations

import importlib
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_worlds import tiny_episodes

from cswm_lib import CswmError

KINDS = ("clean", "traceback", "silent", "lost", "executed", "misleading", "missing")
#: case id -> (category, behaviour before issue 15: one of KINDS; "executed" = a file ran code,
#: "misleading" = a one-line error whose message pointed at the wrong thing, "missing" = an absent flag)
CASES: dict[str, tuple[str, str]] = {}


def case(name: str, category: str, before: str) -> str:
    assert before in KINDS and name not in CASES
    CASES[name] = (category, before)
    return name


def one_line(err: BaseException | str) -> str:
    text = str(err)
    assert text and "\n" not in text.strip(), f"not one line: {text!r}"
    assert "weights_only=False" not in text and "Traceback" not in text
    return text


def cli(main, argv, capsys, code: int = 2) -> str:
    """Run a CLI ``main(argv)`` in-process; return its one error line (exit ``code``)."""
    with pytest.raises(SystemExit) as ex:
        main([str(a) for a in argv])
    assert ex.value.code == code
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "no message on stderr"
    line = err[-1]
    assert line.startswith("error: ") or code == 130, line
    return one_line(line)


# ------------------------------------------------------------------------------------------------
# checkpoints: crafted pickles run no code


class _Payload:
    """Unpickling this calls ``open(marker, "w")``: proof of code execution is the marker file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _live(marker: Path, load) -> None:
    """Check that the payload really runs code with an unrestricted loader (so the test can fail)."""
    load()
    assert marker.exists()
    marker.unlink()


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    from cswm_lib.train import TrainConfig, train

    folder = tmp_path_factory.mktemp("ckpt")
    cfg = TrainConfig(
        dataset="tiny.h5",
        save_folder=str(folder),
        name="run",
        hidden_dim=16,
        num_objects=2,
        batch_size=8,
        epochs=1,
        progress=False,
        device="cpu",
    )
    return train(cfg, tiny_episodes(E=2, T=4))


CRAFTED = [
    case(f"crafted pickle in {n}", "checkpoints", b)
    for n, b in [
        ("state.pt", "executed"),
        ("A3C checkpoint.pt", "executed"),
        ("model.pt", "traceback"),
        ("metadata.pkl", "clean"),
    ]
]


@pytest.mark.parametrize("name", CRAFTED)
def test_crafted_pickles_are_refused_without_running_code(name, tmp_path, trained, capsys):
    import shutil

    a3c_collect = importlib.import_module("cswm_lib.a3c.collect")
    a3c_train = importlib.import_module("cswm_lib.a3c.train")
    from cswm_lib.checkpoint import load_model
    from cswm_lib.train import TrainConfig, train

    marker = tmp_path / "pwned"
    folder = tmp_path / "run"
    shutil.copytree(trained, folder)
    if name.endswith("metadata.pkl"):
        (folder / "config.json").unlink()
        data = pickle.dumps({"args": _Payload(marker)})
        (folder / "metadata.pkl").write_bytes(data)
        _live(marker, lambda: pickle.loads(data))
        with pytest.raises(CswmError) as err:
            load_model(folder)
    elif name.endswith("model.pt"):
        torch.save({"model": _Payload(marker)}, folder / "model.pt")
        _live(marker, lambda: torch.load(folder / "model.pt", weights_only=False))
        with pytest.raises(CswmError) as err:
            load_model(folder)
    elif name.endswith("state.pt"):
        state = torch.load(folder / "state.pt", weights_only=True)
        state["log"].append(_Payload(marker))
        torch.save(state, folder / "state.pt")
        _live(marker, lambda: torch.load(folder / "state.pt", weights_only=False))
        cfg = TrainConfig(
            dataset="tiny.h5",
            save_folder=str(tmp_path),
            name="run",
            hidden_dim=16,
            num_objects=2,
            batch_size=8,
            epochs=2,
            progress=False,
            device="cpu",
        )
        before = (folder / "model.pt").read_bytes()
        with pytest.raises(CswmError) as err:
            train(cfg, tiny_episodes(E=2, T=4))
        assert (folder / "model.pt").read_bytes() == before  # nothing was overwritten
    else:
        a3c = tmp_path / "a3c"
        a3c.mkdir()
        torch.save(
            {
                "config": {"env_id": "CartPole-v1"},
                "model": _Payload(marker),
                "optimizer": {},
                "frames": 0,
                "stats": {},
                "elapsed": 0.0,
            },
            a3c / "checkpoint.pt",
        )
        _live(marker, lambda: torch.load(a3c / "checkpoint.pt", weights_only=False))
        with pytest.raises(CswmError) as err:
            importlib.import_module("cswm_lib.a3c.agent").load_policy(a3c)
        msg = cli(
            a3c_collect.main,
            ["PongDeterministic-v4", "--save-path", tmp_path / "x.h5", "--agent", a3c, "--max-episodes", "1"],
            capsys,
        )
        assert "checkpoint.pt is not a valid or trusted" in msg
        msg = cli(
            a3c_train.main, ["CartPole-v1", "--folder", a3c, "--num-workers", "1", "--no-progress"], capsys
        )
        assert "checkpoint.pt is not a valid or trusted" in msg
        assert not (tmp_path / "x.h5").exists()
    assert "not a valid" in one_line(err.value) or "not allowed" in str(err.value)
    assert not marker.exists()


# ------------------------------------------------------------------------------------------------
# Ctrl-C: a real SIGINT to the main process or to the whole process group (a terminal's Ctrl-C)


class Child:
    """A CLI in its own session; stderr is collected by a thread so the test can wait for progress."""

    def __init__(self, module: str, *argv, env: dict[str, str] | None = None):
        import os
        import subprocess
        import sys
        import threading

        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, *map(str, argv)],
            start_new_session=True,
            env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.err = b""

        def pump():
            while chunk := self.proc.stderr.read1(4096):
                self.err += chunk

        self.thread = threading.Thread(target=pump, daemon=True)
        self.thread.start()

    def wait_for(self, ready, timeout: float = 60.0) -> None:
        import time

        end = time.monotonic() + timeout
        while not ready():
            assert self.proc.poll() is None, f"exited early: {self.err.decode()[-2000:]}"
            assert time.monotonic() < end, f"no progress marker: {self.err.decode()[-2000:]}"
            time.sleep(0.05)

    def interrupt(self, group: bool, timeout: float = 40.0) -> int:
        import os
        import signal
        import subprocess

        (os.killpg if group else os.kill)(self.proc.pid, signal.SIGINT)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise AssertionError(f"still running {timeout} s after SIGINT (hang)") from None
        self.thread.join(5)
        return rc


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".tmp"))


GENERATE_INTERRUPTS = [
    case("Ctrl-C to the main process of a 2-worker generate", "generation", "clean"),
    case("Ctrl-C to the process group of a 2-worker generate", "generation", "lost"),
    case("Ctrl-C to a 1-worker generate", "generation", "clean"),
]


@pytest.mark.parametrize("name", GENERATE_INTERRUPTS)
def test_ctrl_c_during_generation_keeps_the_old_file(name, tmp_path):
    out = _h5(tmp_path, "shapes.h5")  # the previous output, a dataset of ours
    previous = out.read_bytes()
    n = 4000 if "1-worker" in name else 400  # one worker: in-process chunks of 200 episodes, ~1 s each
    child = Child(
        "cswm_lib.data.generate",
        "--env-id",
        "ShapesTrain-v0",
        "--fname",
        out,
        "--num-episodes",
        n,
        "--num-workers",
        1 if "1-worker" in name else 2,
    )
    child.wait_for(lambda: re.search(rb"\| *[1-9]\d*/%d" % n, child.err) is not None)  # chunks are arriving
    assert child.interrupt(group="group" in name) == 130
    assert out.read_bytes() == previous
    assert _leftovers(tmp_path) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["shapes.h5"]
    assert child.err.decode().strip().splitlines()[-1] == "interrupted"


TRAIN_INTERRUPTS = [case("Ctrl-C to the process group during training", "training", "clean")]


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
    child = Child("cswm_lib.train", *argv, "--epochs", 2000, "--device", "cpu", "--no-progress",
                  env={"OMP_NUM_THREADS": "1"})
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


@pytest.mark.parametrize("name", [case("Ctrl-C to the process group during A3C collection", "A3C", "lost")])
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
    case("Ctrl-C to the process group during A3C training", "A3C", "lost"),
    case("Ctrl-C to the main process of a 2-worker A3C training", "A3C", "lost"),
]


@pytest.mark.parametrize("name", A3C_INTERRUPTS)
def test_ctrl_c_during_a3c_training_leaves_a_resumable_checkpoint(name, tmp_path):
    a3c_train = importlib.import_module("cswm_lib.a3c.train")
    from cswm_lib.a3c.agent import load_checkpoint, read_curve

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
    child.wait_for(lambda: (tmp_path / "curve.jsonl").is_file() and len(read_curve(tmp_path)) >= 5)
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
    curve = read_curve(tmp_path)
    assert [r["episode"] for r in curve] == list(range(1, len(curve) + 1))


# ------------------------------------------------------------------------------------------------
# API cases: each raises a one-line CswmError (type + message asserted) and leaves nothing behind


def _h5(tmp_path: Path, name: str = "d.h5", **kw) -> Path:
    from cswm_lib.data.hdf5 import save_episodes

    return save_episodes(tiny_episodes(**{"E": 2, "T": 4, **kw}), tmp_path / name)


def _original(tmp_path: Path, frames=None, actions=None) -> Path:
    import h5py

    path = tmp_path / "orig.h5"
    obs = np.zeros((5, 3, 50, 50), np.float32) if frames is None else frames
    with h5py.File(path, "w") as f:
        g = f.create_group("0")
        g["obs"], g["next_obs"] = obs[:-1], obs[1:]
        g["action"] = np.arange(4) if actions is None else actions
    return path


def _train(tmp_path: Path, episodes=None, **kw):
    from cswm_lib.train import TrainConfig, train

    base = dict(
        dataset=str(tmp_path / "d.h5"),
        save_folder=str(tmp_path),
        name="run",
        hidden_dim=16,
        num_objects=2,
        batch_size=8,
        epochs=1,
        progress=False,
        device="cpu",
    )
    return train(TrainConfig(**{**base, **kw}), episodes)


def _load_episodes(path):
    from cswm_lib.data.hdf5 import load_episodes

    return load_episodes(path)


def _episodes(**kw):
    from cswm_lib.data.episodes import Episodes

    e = tiny_episodes(E=2, T=4)
    return Episodes(**{"frames": e.frames, "actions": e.actions, **kw})


def _atari_step(action):
    import gymnasium as gym

    import cswm_lib.envs  # noqa: F401  (registers the paper's Atari ids)

    env = gym.make("PongDeterministic-v4")
    env.reset(seed=0)
    try:
        env.step(action)
    finally:
        env.close()


def _model_folder(tmp_path: Path, trained: Path) -> Path:
    import shutil

    return Path(shutil.copytree(trained, tmp_path / "ckpt"))


def _evaluate(tmp_path, trained, **kw):
    from cswm_lib.checkpoint import load_model
    from cswm_lib.evaluate import evaluate

    model = load_model(trained, "cpu")
    eps = tiny_episodes(E=4, T=4)
    return evaluate(model, eps, **{"num_steps": 1, **kw})


def _params(tmp_path: Path, text: str) -> dict:
    from cswm_lib.book import load_params

    path = tmp_path / "p.yaml"
    path.write_text(text)
    return load_params(path)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


API = [  # (case, category, before, call(tmp_path, trained), message pattern)
    (
        "0-episode dataset",
        "datasets",
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
        "datasets",
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
        "datasets",
        "silent",
        lambda t, m: _load_episodes(_original(t, frames=np.full((5, 3, 50, 50), np.nan, np.float32))),
        "NaN or inf values",
    ),
    (
        "float actions in an original-layout file",
        "datasets",
        "silent",
        lambda t, m: _load_episodes(_original(t, actions=np.array([0.0, 1.5, 2.0, 3.0]))),
        "actions must be whole numbers, got 1.5",
    ),
    (
        "float actions in Episodes",
        "datasets",
        "silent",
        lambda t, m: _episodes(actions=np.full((2, 4), 0.7)),
        "actions must be whole numbers",
    ),
    ("missing dataset file", "datasets", "clean", lambda t, m: _load_episodes(t / "nope.h5"), "not found"),
    ("dataset path is a folder", "datasets", "clean", lambda t, m: _load_episodes(t), "is a directory"),
    (
        "random bytes as a dataset",
        "datasets",
        "clean",
        lambda t, m: _load_episodes(_write(t / "x.h5", b"\x89HDF-not-really" * 50)),
        "not a valid HDF5 file",
    ),
    (
        "truncated dataset",
        "datasets",
        "clean",
        lambda t, m: _load_episodes(_write(t / "x.h5", _h5(t).read_bytes()[:3000])),
        "cannot read",
    ),
    (
        "HDF5 file of another layout",
        "datasets",
        "clean",
        lambda t, m: _load_episodes(_h5_foreign(t)),
        "is neither a cswm-book dataset",
    ),
    (
        "frames that are not uint8",
        "datasets",
        "clean",
        lambda t, m: _episodes(frames=np.zeros((2, 5, 3, 50, 50), np.float32)),
        "frames must be uint8",
    ),
    (
        "actions that do not match the frames",
        "datasets",
        "clean",
        lambda t, m: _episodes(actions=np.zeros((2, 7), np.int64)),
        "do not match frames",
    ),
    ("Atari step(-1)", "envs", "silent", lambda t, m: _atari_step(-1), r"invalid action -1 .* 0\.\.5"),
    ("Atari step(6)", "envs", "traceback", lambda t, m: _atari_step(6), "invalid action 6"),
    ("Atari step(2.5)", "envs", "traceback", lambda t, m: _atari_step(2.5), "invalid action 2.5"),
    ("Atari step(None)", "envs", "traceback", lambda t, m: _atari_step(None), "invalid action None"),
    ("block pushing step(99)", "envs", "clean", lambda t, m: _shapes_step(99), "invalid action 99"),
    (
        "unknown Atari game",
        "envs",
        "clean",
        lambda t, m: __import__("cswm_lib.envs.atari", fromlist=["x"]).game_info("tetris"),
        "unknown Atari game",
    ),
    (
        "learning rate 0",
        "training",
        "traceback",
        lambda t, m: _train(t, tiny_episodes(), learning_rate=0.0),
        "--learning-rate must be > 0",
    ),
    (
        "learning rate nan",
        "training",
        "traceback",
        lambda t, m: _train(t, tiny_episodes(), learning_rate=float("nan")),
        "must be a finite number",
    ),
    (
        "sigma 0",
        "training",
        "traceback",
        lambda t, m: _train(t, tiny_episodes(), sigma=0.0),
        "sigma must be > 0",
    ),
    (
        "negative hinge",
        "training",
        "silent",
        lambda t, m: _train(t, tiny_episodes(), hinge=-1.0),
        "hinge must be >= 0",
    ),
    (
        "device='cuda' without CUDA (API)",
        "training",
        "clean",
        lambda t, m: _train(t, tiny_episodes(), device="cuda"),
        "CUDA is not available",
    ),
    (
        "device='mps' (API)",
        "training",
        "traceback",
        lambda t, m: _train(t, tiny_episodes(), device="mps"),
        "not supported here",
    ),
    (
        "epochs = 1.5 (API)",
        "training",
        "traceback",
        lambda t, m: _train(t, tiny_episodes(), epochs=1.5),
        "--epochs must be a whole number",
    ),
    (
        "num_objects too small for the actions",
        "training",
        "clean",
        lambda t, m: _train(t, tiny_episodes(K=2), num_objects=1),
        "has 8 actions but --action-dim x --num-objects",
    ),
    (
        "negative actions",
        "training",
        "misleading",
        lambda t, m: _train(t, _episodes(actions=-np.ones((2, 4), np.int64))),
        "has negative actions",
    ),
    (
        "unknown encoder",
        "training",
        "clean",
        lambda t, m: _train(t, tiny_episodes(), encoder="huge"),
        "unknown encoder",
    ),
    (
        "epochs 0",
        "training",
        "clean",
        lambda t, m: _train(t, tiny_episodes(), epochs=0),
        "--epochs must be >= 1",
    ),
    (
        "unknown negatives",
        "training",
        "clean",
        lambda t, m: _train(t, tiny_episodes(), negatives="x"),
        "unknown --negatives",
    ),
    (
        "beta outside [0, 1]",
        "training",
        "silent",
        lambda t, m: _train(t, tiny_episodes(), beta=2.0),
        "is a probability",
    ),
    (
        "random bytes as model.pt",
        "checkpoints",
        "traceback",
        lambda t, m: _load_model(_corrupt(_model_folder(t, m), "model.pt")),
        "model.pt is not a valid or trusted",
    ),
    (
        "truncated model.pt",
        "checkpoints",
        "traceback",
        lambda t, m: _load_model(_truncate(_model_folder(t, m), "model.pt")),
        "model.pt is not a valid or trusted",
    ),
    (
        "config.json broken",
        "checkpoints",
        "traceback",
        lambda t, m: _load_model(_corrupt(_model_folder(t, m), "config.json")),
        "is not a valid config.json",
    ),
    (
        "config.json without model",
        "checkpoints",
        "traceback",
        lambda t, m: _load_model(_replace(_model_folder(t, m), "config.json", b'{"train": {}}')),
        "has no 'model' section",
    ),
    (
        "config.json with a bad model setting",
        "checkpoints",
        "clean",
        lambda t, m: _load_model(
            _replace(_model_folder(t, m), "config.json", b'{"model": {"encoder": "x"}}')
        ),
        "unknown encoder",
    ),
    ("no model.pt", "checkpoints", "clean", lambda t, m: _load_model(t), "no model.pt"),
    (
        "model.pt and config.json disagree",
        "checkpoints",
        "clean",
        lambda t, m: _load_model(m, num_objects=3),
        "was trained with num_objects = 2",
    ),
    (
        "garbage metadata.pkl",
        "checkpoints",
        "clean",
        lambda t, m: _load_model(_original_folder(_model_folder(t, m), b"garbage")),
        "not an original C-SWM",
    ),
    (
        "k = 0",
        "evaluation",
        "misleading",
        lambda t, m: _evaluate(t, m, ks=[0]),
        "ks must be >= 1, got 0",
    ),
    ("ks='15'", "evaluation", "traceback", lambda t, m: _evaluate(t, m, ks="15"), "ks must be a list"),
    (
        "num_steps=1.5",
        "evaluation",
        "traceback",
        lambda t, m: _evaluate(t, m, num_steps=1.5),
        "num_steps must be a whole number",
    ),
    (
        "num_steps beyond the episodes",
        "evaluation",
        "clean",
        lambda t, m: _evaluate(t, m, num_steps=9),
        "num_steps must be in 1..4",
    ),
    (
        "dedup without state ids",
        "evaluation",
        "clean",
        lambda t, m: _evaluate_no_ids(m),
        "needs ground-truth state ids",
    ),
    ("unknown mode", "evaluation", "clean", lambda t, m: _evaluate(t, m, mode="x"), "mode must be one of"),
    (
        "Hits@k beyond the candidates",
        "evaluation",
        "clean",
        lambda t, m: _evaluate(t, m, ks=[50]),
        "Hits@50 asked for",
    ),
    (
        "YAML holding just a string",
        "book runner",
        "misleading",
        lambda t, m: _params(t, "just a string\n"),
        "must hold a mapping",
    ),
    (
        "defaults: [1, 2]",
        "book runner",
        "traceback",
        lambda t, m: _params(t, "defaults: [1, 2]\n"),
        "'defaults' must map names",
    ),
    (
        "a chapter mapped to a scalar",
        "book runner",
        "traceback",
        lambda t, m: _params(t, "chapters:\n  04_model: 3\n"),
        "chapter '04_model' must map",
    ),
    (
        "missing parameter file",
        "book runner",
        "clean",
        lambda t, m: __import__("cswm_lib.book", fromlist=["x"]).load_params(t / "no.yaml"),
        "not found",
    ),
    ("invalid YAML", "book runner", "clean", lambda t, m: _params(t, "a: [1,\n"), "is not valid YAML"),
    (
        "unknown top-level key",
        "book runner",
        "clean",
        lambda t, m: _params(t, "scal: cpu\n"),
        "expected keys scale/defaults/chapters",
    ),
    (
        "truncated A3C checkpoint.pt",
        "A3C",
        "traceback",
        lambda t, m: _a3c_load(_write(t / "checkpoint.pt", b"PK\x03\x04" + b"\0" * 40)),
        "is not a valid or trusted",
    ),
    (
        "A3C checkpoint.pt of another kind",
        "A3C",
        "traceback",
        lambda t, m: _a3c_load(_torch_file(t / "checkpoint.pt", {"model": {}})),
        "is not an A3C checkpoint",
    ),
    ("no A3C checkpoint", "A3C", "clean", lambda t, m: _a3c_load(t / "checkpoint.pt"), "no A3C checkpoint"),
    (
        "corrupt partial collection",
        "A3C",
        "traceback",
        lambda t, m: _partial(t),
        "is not a valid partial collection",
    ),
    (
        "collection with a non-Atari id",
        "A3C",
        "clean",
        lambda t, m: _collect(t, env_id="CartPole-v1"),
        "collection needs an Atari id",
    ),
    (
        "collection with min-burnin >= max-burnin",
        "A3C",
        "clean",
        lambda t, m: _collect(t, min_burnin=5, max_burnin=5),
        "need 0 <= --min-burnin < --max-burnin",
    ),
    ("collection with eps > 1", "A3C", "clean", lambda t, m: _collect(t, eps=1.5), "--eps must be in"),
    (
        "A3C load_policy(device='cuda') without CUDA",
        "A3C",
        "traceback",
        lambda t, m: _a3c_policy_on(t, "cuda"),
        "CUDA is not available",
    ),
    (
        "A3C with 0 workers",
        "A3C",
        "clean",
        lambda t, m: _a3c_train(t, num_workers=0),
        "num_workers must be >= 1",
    ),
]
API_CASES = [(case(n, c, b), call, pat) for n, c, b, call, pat in API]


def _shapes_step(action):
    import gymnasium as gym

    import cswm_lib.envs  # noqa: F401

    env = gym.make("ShapesTrain-v0", disable_env_checker=True)
    env.reset(seed=0)
    env.unwrapped.step(action)


def _h5_foreign(tmp_path: Path) -> Path:
    import h5py

    with h5py.File(tmp_path / "foreign.h5", "w") as f:
        f["data"] = np.zeros(3)
    return tmp_path / "foreign.h5"


def _load_model(folder, **kw):
    from cswm_lib.checkpoint import load_model

    return load_model(folder, "cpu", **kw)


def _corrupt(folder: Path, name: str) -> Path:
    (folder / name).write_bytes(np.random.default_rng(0).bytes(4000))
    return folder


def _truncate(folder: Path, name: str) -> Path:
    data = (folder / name).read_bytes()
    (folder / name).write_bytes(data[: len(data) // 2])
    return folder


def _replace(folder: Path, name: str, data: bytes) -> Path:
    (folder / name).write_bytes(data)
    return folder


def _original_folder(folder: Path, data: bytes) -> Path:
    (folder / "config.json").unlink()
    (folder / "metadata.pkl").write_bytes(data)
    return folder


def _evaluate_no_ids(trained):
    from cswm_lib.checkpoint import load_model
    from cswm_lib.data.episodes import Episodes
    from cswm_lib.evaluate import evaluate

    e = tiny_episodes(E=4, T=4)
    return evaluate(load_model(trained, "cpu"), Episodes(e.frames, e.actions), 1, dedup="published")


def _a3c_load(path: Path):
    return importlib.import_module("cswm_lib.a3c.agent").load_checkpoint(path.parent)


def _a3c_policy_on(tmp_path: Path, device: str):
    a3c = importlib.import_module("cswm_lib.a3c.train")
    agent = importlib.import_module("cswm_lib.a3c.agent")
    cfg = a3c.A3CConfig(env_id="CartPole-v1", folder=str(tmp_path))
    policy = agent.make_policy("CartPole-v1")
    opt = importlib.import_module("cswm_lib.a3c.optim").SharedAdam(policy.parameters())
    a3c._save_checkpoint(tmp_path, cfg, policy, opt, 0, a3c._Stats(1), 0.0)
    return agent.load_policy(tmp_path, device)


def _torch_file(path: Path, obj) -> Path:
    torch.save(obj, path)
    return path


def _collect(tmp_path: Path, **kw):
    from cswm_lib.a3c.collect import CollectConfig, collect

    base = dict(
        env_id="PongDeterministic-v4",
        save_path=str(tmp_path / "c.h5"),
        max_episodes=1,
        agent="random",
        progress=False,
    )
    return collect(CollectConfig(**{**base, **kw}))


def _partial(tmp_path: Path):
    (tmp_path / "c.h5.partial.npz").write_bytes(b"PK\x03\x04 not a zip")
    return _collect(tmp_path, min_burnin=1, max_burnin=2, num_steps=1)


def _a3c_train(tmp_path: Path, **kw):
    a3c = importlib.import_module("cswm_lib.a3c.train")
    return a3c.train(a3c.A3CConfig(**{"env_id": "CartPole-v1", "folder": str(tmp_path), **kw}))


@pytest.mark.parametrize(("name", "call", "pattern"), API_CASES, ids=[c[0] for c in API_CASES])
def test_api_bad_input_is_one_line(name, call, pattern, tmp_path, trained):
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(CswmError, match=pattern) as err:
        call(tmp_path, trained)
    one_line(err.value)
    after = sorted(p.name for p in tmp_path.rglob("*"))
    made = set(after) - set(before)
    assert not {p for p in made if p.endswith(".tmp")}, made
    if name in ("0-episode dataset", "0-step dataset"):
        assert not (tmp_path / "run").exists()  # no folder holding only config.json


# ------------------------------------------------------------------------------------------------
# CLI cases: `error: ...` on one line, exit 2, nothing lost


def _generate_main(argv):
    from cswm_lib.data.generate import main

    return main(argv)


def _gen_argv(fname, *more):
    return ["--env-id", "ShapesEval-v0", "--fname", fname, "--num-episodes", 2, "--no-progress", *more]


GENERATE_CLI = [
    case("generate onto /dev/full", "generation", "lost"),
    case("generate onto an existing file that is not a dataset", "generation", "lost"),
    case("generate into a folder path", "generation", "traceback"),
    case("generate into a missing parent folder", "generation", "traceback"),
    case("generate into a read-only folder", "generation", "traceback"),
    case("generate on a full disk", "generation", "traceback"),
    case("generate with an unknown env id", "generation", "clean"),
    case("generate with --num-episodes 0", "generation", "clean"),
    case("generate with --num-workers 0", "generation", "clean"),
    case("generate an Atari id without --atari", "generation", "clean"),
]


@pytest.mark.parametrize("name", GENERATE_CLI)
def test_generate_cli_refusals(name, tmp_path, capsys, monkeypatch):
    import os
    import shutil

    out = tmp_path / "out.h5"
    if "/dev/full" in name:  # through a link and a pipe in tmp_path: a regression replaces only those
        import stat

        (tmp_path / "full").symlink_to("/dev/full")
        os.mkfifo(tmp_path / "pipe")
        for target in ("full", "pipe"):
            msg = cli(_generate_main, _gen_argv(tmp_path / target), capsys)
            assert "is not a regular file" in msg
        assert (tmp_path / "full").is_symlink() and stat.S_ISFIFO((tmp_path / "pipe").stat().st_mode)
    elif "not a dataset" in name:
        out.write_text("my notes, not a dataset")
        msg = cli(_generate_main, _gen_argv(out), capsys)
        assert "is not a dataset of ours; pass --overwrite" in msg
        assert out.read_text() == "my notes, not a dataset"
        _generate_main([str(a) for a in _gen_argv(out, "--overwrite")])  # asked for explicitly: replaced
        assert _load_episodes(out).num_episodes == 2
    elif "folder path" in name:
        assert "is a folder" in cli(_generate_main, _gen_argv(tmp_path), capsys)
    elif "missing parent" in name:
        msg = cli(_generate_main, _gen_argv(tmp_path / "no" / "x.h5"), capsys)
        assert "does not exist" in msg and not (tmp_path / "no").exists()
    elif "read-only" in name:  # tests run as root here, where chmod does not stop writes: ask os.access
        monkeypatch.setattr(os, "access", lambda path, mode: False)
        assert "permission denied" in cli(_generate_main, _gen_argv(out), capsys)
    elif "full disk" in name:
        usage = shutil.disk_usage(tmp_path)
        monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=10_000))
        argv = _gen_argv(out)
        argv[argv.index("--num-episodes") + 1] = 200_000
        with pytest.raises(SystemExit) as ex:
            _generate_main([str(a) for a in argv])
        assert ex.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[0].startswith("estimated size of out.h5: about") and len(err) == 2
        assert one_line(err[1]).startswith("error: not enough free disk space")
    elif "unknown env" in name:
        argv = _gen_argv(out)
        argv[1] = "Nope-v0"
        assert "Nope-v0" in cli(_generate_main, argv, capsys)
    elif "num-episodes 0" in name:
        argv = _gen_argv(out)
        argv[argv.index("--num-episodes") + 1] = 0
        assert "--num-episodes must be >= 1" in cli(_generate_main, argv, capsys)
    elif "num-workers" in name:
        assert "--num-workers must be >= 1" in cli(_generate_main, _gen_argv(out, "--num-workers", 0), capsys)
    else:
        argv = _gen_argv(out)
        argv[1] = "PongDeterministic-v4"
        assert "pass --atari" in cli(_generate_main, argv, capsys)
    assert _leftovers(tmp_path) == []
    if "not a dataset" not in name:
        assert not out.exists()


def _train_main(argv):
    from cswm_lib.train import main

    return main(argv)


TRAIN_CLI = [
    case("--device gpu", "training", "traceback"),
    case("--device tpu", "training", "traceback"),
    case("--device mps", "training", "traceback"),
    case("--beta with the baseline", "training", "silent"),
    case("--beta with --negatives episodic", "training", "silent"),
    case("--hinge -1", "training", "silent"),
    case("--sigma 0", "training", "traceback"),
    case("--learning-rate -1", "training", "traceback"),
    case("missing --dataset", "training", "clean"),
    case("--custom-neg with --negatives baseline", "training", "clean"),
    case("resume on another dataset", "training", "silent"),
    case("resume with a truncated state.pt", "training", "traceback"),
    case("resume with another config", "training", "clean"),
    case("resume on another dataset at the same path", "training", "silent"),
    case("a full disk during training", "training", "traceback"),
    case("--gamma -1", "training", "silent"),
    case("--hinge inf", "training", "silent"),
    case("--save-folder is a file", "training", "traceback"),
    case("--name escaping --save-folder", "training", "silent"),
    case("--name ''", "training", "silent"),
    case("--dataset is a folder", "training", "misleading"),
    case("--epochs 1.5 on the command line", "training", "clean"),  # was: the 20-line usage, then the error
]


@pytest.mark.parametrize("name", TRAIN_CLI)
def test_train_cli_refusals(name, tmp_path, capsys, monkeypatch):
    import errno
    import json
    import os
    import shutil

    data = _h5(tmp_path)
    base = [
        "--dataset",
        data,
        "--save-folder",
        tmp_path,
        "--name",
        "run",
        "--hidden-dim",
        16,
        "--num-objects",
        2,
        "--batch-size",
        8,
        "--epochs",
        1,
        "--no-progress",
        "--device",
        "cpu",
    ]
    extra = {
        "--device gpu": ["--device", "gpu"],
        "--device tpu": ["--device", "tpu"],
        "--device mps": ["--device", "mps"],
        "--beta with the baseline": ["--beta", "0.3"],
        "--beta with --negatives episodic": ["--negatives", "episodic", "--beta", "0.3"],
        "--hinge -1": ["--hinge", "-1"],
        "--sigma 0": ["--sigma", "0"],
        "--learning-rate -1": ["--learning-rate", "-1"],
        "missing --dataset": ["--dataset", tmp_path / "nope.h5"],
        "--custom-neg with --negatives baseline": ["--custom-neg", "--negatives", "baseline"],
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
        "--beta with --negatives episodic": "has no effect with --negatives episodic",
        "--hinge -1": "hinge must be >= 0",
        "--sigma 0": "sigma must be > 0",
        "--learning-rate -1": "--learning-rate must be > 0",
        "missing --dataset": "dataset not found",
        "--custom-neg with --negatives baseline": "--custom-neg asks for dataset negatives",
        "--gamma -1": "--gamma weighs the negative term, so it must be >= 0",
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
        assert "another config" in cli(_train_main, base + ["--epochs", 2, "--hidden-dim", 8], capsys)
    assert (folder / "config.json").read_bytes() == config and (folder / "state.pt").read_bytes() == state
    assert _leftovers(tmp_path) == []


OTHER_CLI = [
    case("evaluate: default --json of two settings", "evaluation", "lost"),
    case("evaluate --no-progress", "evaluation", "missing"),
    case("evaluate: missing checkpoint folder", "evaluation", "clean"),
    case("evaluate: 6-channel data for a 3-channel model", "evaluation", "clean"),
    case("atomic writes get the umask's mode", "training", "silent"),
    case("book run: relative --params from another folder", "book runner", "silent"),
    case("book run: unknown chapter", "book runner", "clean"),
    case("A3C train: unknown environment", "A3C", "clean"),
    case("collect: --check-dup-paths file missing", "A3C", "clean"),
]


@pytest.mark.parametrize("name", OTHER_CLI)
def test_other_cli_cases(name, tmp_path, capsys, monkeypatch, trained):
    import os

    from cswm_lib.evaluate import main as evaluate_main
    from cswm_lib.utils import cli_errors

    ev = cli_errors(evaluate_main)
    data = _h5(tmp_path, "eval.h5", E=4, T=4)
    monkeypatch.setenv("CSWM_RESULTS", str(tmp_path / "results"))
    if name.startswith("evaluate: default"):
        ev(["--save-folder", str(trained), "--dataset", str(data), "--no-progress", "--ks", "1"])
        ev(["--save-folder", str(trained), "--dataset", str(data), "--no-progress", "--ks", "1", "2"])
        files = sorted((tmp_path / "results" / "evaluate").glob("*.json"))
        assert len(files) == 2 and all(f.name.startswith("run_eval_global_") for f in files)
    elif name == "evaluate --no-progress":
        ev(["--save-folder", str(trained), "--dataset", str(data), "--no-progress", "--ks", "1"])
        assert "encode" not in capsys.readouterr().err
    elif "missing checkpoint" in name:
        msg = cli(ev, ["--save-folder", tmp_path / "nope", "--dataset", data], capsys)
        assert "checkpoint folder" in msg
    elif "6-channel" in name:
        six = _h5(tmp_path, "six.h5", E=4, T=4, channels=6)
        assert "checkpoint/dataset mismatch" in cli(ev, ["--save-folder", trained, "--dataset", six], capsys)
    elif "umask" in name:
        from cswm_lib.utils import write_json

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
    elif "relative --params" in name:
        from cswm_lib import book

        (tmp_path / "mine.yaml").write_text("scale: mine\nchapters: {}\n")
        seen = {}
        monkeypatch.setattr(book, "run", lambda params, out, *a, **k: seen.update(params=params, out=out))
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("CSWM_ROOT", str(Path(__file__).resolve().parents[1]))
        book.main(["run", "--params", "mine.yaml", "--out", "myruns"])
        assert seen == {"params": tmp_path / "mine.yaml", "out": tmp_path / "myruns"}
    elif "unknown chapter" in name:
        from cswm_lib import book

        monkeypatch.setenv("CSWM_ROOT", str(Path(__file__).resolve().parents[1]))
        (tmp_path / "p.yaml").write_text("scale: x\n")
        msg = cli(
            book.main,
            ["run", "--params", tmp_path / "p.yaml", "--chapters", "99_nope", "--out", tmp_path / "o"],
            capsys,
        )
        assert "unknown chapter" in msg
    elif "A3C train" in name:
        a3c = importlib.import_module("cswm_lib.a3c.train")
        assert "unknown environment" in cli(a3c.main, ["NoSuchEnv-v9", "--folder", tmp_path], capsys)
    else:
        col = importlib.import_module("cswm_lib.a3c.collect")
        msg = cli(
            col.main,
            [
                "PongDeterministic-v4",
                "--save-path",
                tmp_path / "c.h5",
                "--agent",
                "random",
                "--check-dup-paths",
                tmp_path / "none.h5",
            ],
            capsys,
        )
        assert "--check-dup-paths file not found" in msg
    assert _leftovers(tmp_path) == []


A3C_CLI = [
    case("A3C train: --folder is a file", "A3C", "traceback"),
    case("A3C train: --lr -1", "A3C", "traceback"),
    case("A3C train: an env with continuous actions", "A3C", "traceback"),
    case("A3C train: --start-method x", "A3C", "traceback"),
    case("A3C train: --max-frames nan", "A3C", "traceback"),
    case("A3C train: --max-frames 1.5", "A3C", "silent"),
    case("A3C train: --hidden 0", "A3C", "silent"),
    case("collect: --save-path is a folder", "A3C", "traceback"),
    case("collect: --save-path is a pipe or a link to a device", "A3C", "lost"),
    case("collect: --save-path is a file that is not a dataset", "A3C", "misleading"),
    case("collect: --checkpoint-every 0", "A3C", "traceback"),
]


@pytest.mark.parametrize("name", A3C_CLI)
def test_a3c_cli_refusals(name, tmp_path, capsys):
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


MORE_CLI = [
    case("evaluate: --json is a folder", "evaluation", "traceback"),
    case("evaluate: --json below a file", "evaluation", "traceback"),
    case("book run: params file is binary", "book runner", "traceback"),
    case("book run: params file is empty", "book runner", "silent"),
    case("book run: params path is a folder", "book runner", "misleading"),
    case("book run: --out is a file", "book runner", "traceback"),
    case("generate with an empty --fname", "generation", "traceback"),
]


@pytest.mark.parametrize("name", MORE_CLI)
def test_more_cli_refusals(name, tmp_path, capsys, monkeypatch, trained):
    """Refused before any work (no evaluation, no chapter run), with nothing written."""
    from cswm_lib import book
    from cswm_lib.evaluate import main as evaluate_main
    from cswm_lib.utils import cli_errors

    notes = _write(tmp_path / "notes.txt", b"my notes")
    monkeypatch.setenv("CSWM_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("CSWM_ROOT", str(Path(__file__).resolve().parents[1]))

    def no_work(*a, **k):
        raise AssertionError("the work started before the bad input was refused")

    monkeypatch.setattr(book, "run_chapter", no_work)
    if name.startswith("evaluate"):
        monkeypatch.setattr(importlib.import_module("cswm_lib.evaluate"), "evaluate", no_work)
        data = _h5(tmp_path, "eval.h5", E=4, T=4)
        target = tmp_path if "folder" in name else notes / "x.json"
        argv = ["--save-folder", trained, "--dataset", data, "--no-progress", "--ks", 1, "--json", target]
        msg = cli(cli_errors(evaluate_main), argv, capsys)
        assert ("is a folder" if "folder" in name else "notes.txt is a file, not a folder") in msg
    elif name.startswith("book"):
        text = {
            "book run: params file is binary": b"\x89HDF\r\n\x1a\n\xff\xfe",
            "book run: params file is empty": b"# nothing yet\n",
            "book run: --out is a file": b"scale: x\n",
        }
        path = _write(tmp_path / "p.yaml", text[name]) if name in text else tmp_path
        want = {
            "book run: params file is binary": "not a text file",
            "book run: params file is empty": "is empty",
            "book run: params path is a folder": "is a folder",
            "book run: --out is a file": "notes.txt is a file, not a folder",
        }[name]
        out = notes if "--out" in name else tmp_path / "o"
        argv = ["run", "--params", path, "--out", out, "--chapters", "01_setup"]
        assert want in cli(book.main, argv, capsys)
        assert not (tmp_path / "o").exists()
    else:
        monkeypatch.chdir(tmp_path)
        assert "is a folder" in cli(_generate_main, _gen_argv(""), capsys)
    assert notes.read_bytes() == b"my notes" and not (tmp_path / "results").exists()
    assert _leftovers(tmp_path) == []


# ------------------------------------------------------------------------------------------------
# the case list itself


def _used_cases() -> set[str]:
    used = set()
    for fn in list(globals().values()):
        for mark in getattr(fn, "pytestmark", []):
            if mark.name == "parametrize":
                used.update(v[0] if isinstance(v, tuple) else v for v in mark.args[1])
    return used


def test_battery_covers_every_case():
    """Every case of CASES is a parameter of a test in this file (so it ran, and passed, with it)."""
    missing = sorted(set(CASES) - _used_cases())
    assert not missing, f"cases without a test: {missing}"


def counts(now: dict[str, str] | None = None) -> dict[str, int]:
    """The battery's counts: cases, and per kind how many behaved so before issue 15 (``before_*``);
    with ``now`` (case -> "passed"/"failed", from a run of this file) how many pass now, that is give
    one line and lose or run nothing (``now_clean``), and how many do not (``now_failing``)."""
    before = {k: sum(1 for _, b in CASES.values() if b == k) for k in KINDS}
    out = {"cases": len(CASES), **{f"before_{k}": v for k, v in before.items()}}
    if now is not None:
        out["now_clean"] = sum(1 for c in CASES if now.get(c) == "passed")
        out["now_failing"] = len(CASES) - out["now_clean"]
    return out


def _run_battery() -> dict[str, str]:
    """Run this file under pytest; return each case's outcome ("passed" when every test using it passed)."""
    outcomes: dict[str, str] = {}

    class Collect:
        def pytest_runtest_logreport(self, report):
            if "[" in report.nodeid and (report.when == "call" or report.failed):
                name = report.nodeid[report.nodeid.index("[") + 1 : -1]
                if name in CASES and outcomes.get(name) != "failed":
                    outcomes[name] = "passed" if report.passed else "failed"

    pytest.main([__file__, "-q", "-p", "no:cacheprovider"], plugins=[Collect()])
    return outcomes


if __name__ == "__main__":
    import sys
    import time

    if "--now" in sys.argv:  # runs the whole battery (minutes; the Ctrl-C cases dominate)
        t0 = time.perf_counter()
        result = counts(_run_battery())
        print({**result, "wall_seconds": round(time.perf_counter() - t0, 1)})
    else:
        print(counts())
