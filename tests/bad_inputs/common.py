"""Shared helpers of the bad-input battery (``tests/bad_inputs/``): the case registry, the one-line
checks, a child process that can be interrupted, and small builders of good and bad files.

Every case is registered with :func:`case` under a name that says what the user does, and a class
naming the kind of failure it guards against (:data:`CLASSES`); the test that runs it says what must
happen. ``python tests/test_bad_inputs.py`` prints the counts per class; ``--now`` runs the battery.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_worlds import tiny_episodes

from cswm_lib.errors import CswmError

#: the kinds of failure a case guards against
CLASSES = (
    "traceback",  # a raw Python traceback instead of one line
    "silent_wrong",  # exit 0 and a wrong result, or a bad input accepted without a word
    "lost_or_overwritten",  # an input or earlier output changed, a temporary file left behind
    "code_executed",  # a file from someone else ran code
    "hang",  # the command never ends
    "misleading_message",  # one line, but it names the wrong thing
    "missing_option",  # a flag the user needs does not exist
)
#: case name -> (class, test module); filled by :func:`case` as the test modules are imported
CASES: dict[str, str] = {}


def case(name: str, klass: str) -> str:
    assert klass in CLASSES, klass
    assert name not in CASES, f"duplicate case {name!r}"
    CASES[name] = klass
    return name


def api_cases(table: list[tuple]) -> list[tuple]:
    """``[(name, class, call, pattern)]`` -> pytest parameters ``(name, call, pattern)``, registered."""
    return [pytest.param(case(n, k), call, pat, id=n) for n, k, call, pat in table]


def run_api_case(name, call, pattern, tmp_path, trained) -> None:
    """``call`` raises a one-line :class:`CswmError` matching ``pattern`` and leaves no temp file."""
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(CswmError, match=pattern) as err:
        call(tmp_path, trained)
    one_line(err.value)
    after = sorted(p.name for p in tmp_path.rglob("*"))
    made = set(after) - set(before)
    assert not {p for p in made if p.endswith(".tmp")}, made
    if name in ("0-episode dataset", "0-step dataset"):
        assert not (tmp_path / "run").exists()  # no folder holding only config.json


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

    def interrupt(self, group: bool, timeout: float = 40.0, sig: int | None = None) -> int:
        import os
        import signal
        import subprocess

        (os.killpg if group else os.kill)(self.proc.pid, signal.SIGINT if sig is None else sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise AssertionError(f"still running {timeout} s after the signal (hang)") from None
        self.thread.join(5)
        return rc


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".tmp"))


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


def _generate_main(argv):
    from cswm_lib.data.generate import main

    return main(argv)


def _gen_argv(fname, *more):
    return ["--env-id", "ShapesEval-v0", "--fname", fname, "--num-episodes", 2, "--no-progress", *more]


def _train_main(argv):
    from cswm_lib.train import main

    return main(argv)


ROOT = Path(__file__).resolve().parents[2]  # the project (holds _toc.yml)


def no_work(*a, **k):
    raise AssertionError("the work started before the bad input was refused")


# ------------------------------------------------------------------------------------------------
# the checks every case of issue 23 makes: exit code, one line naming the problem, nothing changed


def snapshot(*roots: Path) -> dict[str, bytes]:
    """Every regular file under ``roots`` (links not followed) -> its bytes."""
    out = {}
    for root in roots:
        for p in sorted(Path(root).rglob("*")):
            if p.is_file() and not p.is_symlink():
                out[str(p)] = p.read_bytes()
    return out


def unchanged(before: dict[str, bytes], *roots: Path) -> None:
    """No file of ``before`` changed or went, and no file appeared (a temp file, a half output)."""
    after = snapshot(*roots)
    changed = sorted(k for k in before if after.get(k) != before[k])
    made = sorted(set(after) - set(before))
    assert not changed and not made, f"changed {changed}, made {made}"


def refused(main, argv, capsys, *names: str, code: int = 2) -> str:
    """Run a CLI in-process; it must exit ``code`` with one ``error:`` line holding every one of
    ``names`` (the file and the field or flag at fault)."""
    line = cli(main, argv, capsys, code)
    for n in names:
        assert n in line, f"{n!r} not named in: {line}"
    return line


def api_refused(call, *names: str) -> str:
    """``call()`` raises a one-line :class:`CswmError` naming every one of ``names``."""
    with pytest.raises(CswmError) as err:
        call()
    line = one_line(err.value)
    for n in names:
        assert n in line, f"{n!r} not named in: {line}"
    return line


def h5_edit(path: Path, fn) -> Path:
    """Apply ``fn(h5py.File)`` to ``path`` opened for writing (to craft a bad file from a good one)."""
    import h5py

    with h5py.File(path, "r+") as f:
        fn(f)
    return path


def train_argv(data: Path, folder: Path, epochs: int = 1) -> list:
    """The command line of a tiny training run (hidden 16, 2 objects, batch 8, CPU) named ``run``."""
    return ["--dataset", data, "--save-folder", folder, "--name", "run", "--hidden-dim", 16,
            "--num-objects", 2, "--batch-size", 8, "--epochs", epochs, "--no-progress", "--device", "cpu"]


def generating(out: Path, name: str) -> Child:
    """Start ``generate`` writing ``out`` (a previous dataset) with 1 worker (4000 episodes) or 2
    (400), as the case's ``name`` says, and wait until chunks are arriving; return the running child."""
    import re

    n = 4000 if "1-worker" in name else 400  # one worker: in-process chunks of 200 episodes, ~1 s each
    child = Child("cswm_lib.data.generate", "--env-id", "ShapesTrain-v0", "--fname", out,
                  "--num-episodes", n, "--num-workers", 1 if "1-worker" in name else 2)
    child.wait_for(lambda: re.search(rb"\| *[1-9]\d*/%d" % n, child.err) is not None)
    return child
