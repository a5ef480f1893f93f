"""Training that cannot silently fail or mix runs (issue 23 items 3 and 5).

Families: one run per folder (an OS lock naming the holder's pid, released when its process dies);
a non-finite loss or weights stop the run and keep the last good state; config numbers checked for
type and range in one place (:mod:`cswm_lib.checks`); seeds within what every RNG accepts; a
resume state checked value by value. Each case asserts the exit code (or the exception), exactly one
line naming the problem, and that inputs and earlier outputs are unchanged, bytes compared.
"""

from __future__ import annotations

import math
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny_worlds import tiny_episodes

from cswm_lib.errors import CswmError

from .common import Child, _h5, _leftovers, _train_main, api_cases, case, one_line


def _config(tmp_path: Path, **kw):
    from cswm_lib.train import TrainConfig

    base = dict(dataset=str(tmp_path / "d.h5"), save_folder=str(tmp_path), name="run", hidden_dim=16,
                num_objects=2, batch_size=8, epochs=1, progress=False, device="cpu")
    return TrainConfig(**{**base, **kw})


def _base(tmp_path: Path, data: Path) -> list:
    return ["--dataset", data, "--save-folder", tmp_path, "--name", "run", "--hidden-dim", 16,
            "--num-objects", 2, "--batch-size", 8, "--epochs", 1, "--no-progress", "--device", "cpu"]


def _one_line_cli(argv: list, capsys, code: int = 2) -> str:
    """Run ``python -m cswm_lib.train argv`` in-process: exit ``code`` and exactly one line on stderr."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as ex:
        _train_main([str(a) for a in argv])
    assert ex.value.code == code
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    return one_line(lines[0])


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != "train.lock"}


# -- config numbers: type and range, checked before any file is touched ------------------------------

CONFIG = api_cases([
    ("num_updates = 1.5 (API)", "silent_wrong", lambda t: _config(t, num_updates=1.5),
     r"--num-updates must be a whole number, got 1\.5"),
    ("eval_every = 0.5 (API)", "silent_wrong", lambda t: _config(t, eval_every=0.5),
     r"--eval-every must be a whole number, got 0\.5"),
    ("epochs = 2.0, a float that is whole (API)", "silent_wrong", lambda t: _config(t, epochs=2.0),
     r"--epochs must be a whole number, got 2\.0"),
    ("batch_size = True (API)", "silent_wrong", lambda t: _config(t, batch_size=True),
     "--batch-size must be a whole number, got True"),
    ("learning_rate given as a string (API)", "traceback", lambda t: _config(t, learning_rate="0.1"),
     "--learning-rate must be a number, got '0.1'"),
    ("time_aligned = 'no', a truthy string (API)", "silent_wrong", lambda t: _config(t, time_aligned="no"),
     "--time-aligned must be True or False, got 'no'"),
    ("hidden_dim = 8 gives the encoder 0 channels (API)", "traceback", lambda t: _config(t, hidden_dim=8),
     r"--hidden-dim must be in \[16, 65536\] \(the object extractor gets hidden_dim // 16 channels\), got 8"),
    ("hidden_dim = 10,000,000 would allocate terabytes (API)", "traceback",
     lambda t: _config(t, hidden_dim=10_000_000), r"--hidden-dim must be in \[16, 65536\].*got 10000000"),
    ("num_negatives = 0 (API)", "traceback", lambda t: _config(t, num_negatives=0),
     "--num-negs must be >= 1"),
    ("eval_episodes = 0 (API)", "silent_wrong", lambda t: _config(t, eval_episodes=0),
     "--eval-episodes must be >= 1, got 0"),
    ("gamma = inf (API)", "silent_wrong", lambda t: _config(t, gamma=math.inf),
     "--gamma must be a finite number"),
    ("seed = -1 (API)", "traceback", lambda t: _config(t, seed=-1),
     r"--seed must be in \[0, 4294967296\) \(the range every random generator accepts\), got -1"),
    ("seed = 2**32, beyond NumPy's RandomState (API)", "traceback", lambda t: _config(t, seed=2**32),
     r"--seed must be in \[0, 4294967296\).*got 4294967296"),
    ("seed = 1.0 (API)", "silent_wrong", lambda t: _config(t, seed=1.0),
     r"--seed must be a whole number, got 1\.0"),
    ("the retired keyword negatives= (API)", "silent_wrong", lambda t: _config(t, negatives="mixed"),
     "unexpected keyword argument 'negatives' \\(renamed strategy\\)"),
])


@pytest.mark.parametrize("name, call, pattern", CONFIG)
def test_a_bad_config_number_is_refused_before_any_file_is_touched(name, call, pattern, tmp_path):
    data = _h5(tmp_path)
    before = data.read_bytes()
    with pytest.raises((CswmError, TypeError), match=pattern) as err:
        call(tmp_path)
    one_line(err.value)
    assert not (tmp_path / "run").exists() and data.read_bytes() == before


CLI_NUMBERS = {
    case("--hidden-dim 8 on the command line", "traceback"):
        (["--hidden-dim", 8], "--hidden-dim must be in [16,"),
    case("--action-dim 0 on the command line", "misleading_message"):
        (["--action-dim", 0], "--action-dim must be in [1, 4096] (actions per object), got 0"),
    case("--seed -1 on the command line", "traceback"): (["--seed", -1], "--seed must be in [0, 4294967296)"),
    case("--seed 2**64 on the command line", "traceback"):
        (["--seed", 2**64], "--seed must be in [0, 4294967296) (the range every random generator accepts)"),
    case("--num-updates 0 on the command line", "silent_wrong"):
        (["--num-updates", 0], "--num-updates must be >= 1"),
}


@pytest.mark.parametrize("name", list(CLI_NUMBERS))
def test_a_bad_number_on_the_command_line_is_one_line_and_writes_nothing(name, tmp_path, capsys):
    data = _h5(tmp_path)
    before = data.read_bytes()
    extra, want = CLI_NUMBERS[name]
    assert want in _one_line_cli(_base(tmp_path, data) + extra, capsys)
    assert not (tmp_path / "run").exists() and data.read_bytes() == before


# -- one run per folder ------------------------------------------------------------------------------

LOCKS = [
    case("a second run with the same --name while the first trains", "lost_or_overwritten"),
    case("resuming a run while another process holds its folder", "lost_or_overwritten"),
    case("train() twice on one folder in one process (API)", "lost_or_overwritten"),
    case("a run after the holder was killed with SIGKILL", "hang"),
]


def _holder(folder: Path) -> subprocess.Popen:
    """A process that holds ``folder``'s lock until it is killed."""
    code = ("import sys, time; from pathlib import Path; from cswm_lib.run_folder import run_lock\n"
            "with run_lock(Path(sys.argv[1])):\n    print('locked', flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


@pytest.mark.parametrize("name", LOCKS)
def test_one_run_per_folder(name, tmp_path, capsys):
    from cswm_lib.run_folder import run_lock
    from cswm_lib.train import train

    data = _h5(tmp_path)
    folder = tmp_path / "run"
    if name.startswith("a second run"):
        argv = _base(tmp_path, data)
        argv[argv.index("--epochs") + 1] = 5000
        child = Child("cswm_lib.train", *argv)
        try:
            child.wait_for(lambda: (folder / "state.pt").exists())
            config = (folder / "config.json").read_bytes()
            msg = _one_line_cli(_base(tmp_path, data) + ["--hidden-dim", 32, "--seed", 3], capsys)
            assert f"is in use by another training run (pid {child.proc.pid})" in msg
            assert (folder / "config.json").read_bytes() == config  # still the holder's run (hidden 16)
        finally:
            child.interrupt(group=True)
        return
    _train_main([str(a) for a in _base(tmp_path, data)])  # a finished 1-epoch run
    before = _snapshot(folder)
    if name.startswith("resuming"):
        holder = _holder(folder)
        try:
            msg = _one_line_cli(_base(tmp_path, data) + ["--epochs", 2], capsys)
            assert f"(pid {holder.pid})" in msg
        finally:
            holder.kill()
            holder.wait()
        assert _snapshot(folder) == before
    elif name.startswith("train() twice"):
        with run_lock(folder):
            with pytest.raises(CswmError, match=r"in use by another training run \(pid \d+\)") as err:
                train(_config(tmp_path, epochs=2), tiny_episodes(E=2, T=4))
            one_line(err.value)
        assert _snapshot(folder) == before
    else:
        holder = _holder(folder)
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        _train_main([str(a) for a in _base(tmp_path, data) + ["--epochs", 2]])  # the OS dropped the lock
        assert torch.load(folder / "state.pt", weights_only=True)["updates"] == 2
    assert _leftovers(tmp_path) == []


# -- a non-finite loss stops the run, the last good state stays ------------------------------------------

NONFINITE = [
    case("--learning-rate 1e10 makes the loss NaN", "silent_wrong"),
    case("a NaN loss after saved epochs (API)", "silent_wrong"),
    case("weights that turn inf while the loss is finite (API)", "silent_wrong"),
]


def _all_finite(obj) -> bool:
    if isinstance(obj, torch.Tensor):
        return bool(torch.isfinite(obj).all()) if obj.is_floating_point() else True
    if isinstance(obj, dict):
        return all(_all_finite(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return all(_all_finite(v) for v in obj)
    return not isinstance(obj, float) or math.isfinite(obj) or obj == math.inf


@pytest.mark.parametrize("name", NONFINITE)
def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_good_state(name, tmp_path, capsys, monkeypatch):
    from cswm_lib.model import CSWM
    from cswm_lib.train import Adam, train

    data = _h5(tmp_path)
    folder = tmp_path / "run"
    if name.startswith("--learning-rate"):
        msg = _one_line_cli(_base(tmp_path, data) + ["--epochs", 5, "--learning-rate", "1e10"], capsys)
        assert "training loss is nan at update" in msg and "keeps the state of update" in msg
        state = torch.load(folder / "state.pt", weights_only=True)
        for f in ("model.pt", "last.pt", "state.pt"):
            assert _all_finite(torch.load(folder / f, weights_only=True)), f
        assert f"at update {state['updates'] + 1} " in msg  # the update after the last saved one
        assert "nan" not in (folder / "log.jsonl").read_text().lower()
        return
    eps = tiny_episodes(E=2, T=4)
    train(_config(tmp_path, epochs=2), eps)
    before = _snapshot(folder)
    if name.startswith("a NaN loss"):
        real = CSWM.contrastive_loss

        def nan_loss(self, *a, **k):
            loss, pos, neg = real(self, *a, **k)
            return loss * math.nan, pos, neg

        monkeypatch.setattr(CSWM, "contrastive_loss", nan_loss)
        pattern = "training loss is nan at update 3 of run: training stopped; .* keeps the state of update 2;"
    else:
        real_step = Adam.step

        def poison(self, closure=None):
            out = real_step(self, closure)
            with torch.no_grad():
                self.param_groups[0]["params"][0].fill_(math.inf)
            return out

        monkeypatch.setattr(Adam, "step", poison)
        pattern = "the weights are no longer finite at update 3 of run: training stopped"
    with pytest.raises(CswmError, match=pattern) as err:
        train(_config(tmp_path, epochs=4), eps)
    one_line(err.value)
    after = _snapshot(folder)
    assert {k: v for k, v in after.items() if k != "config.json"} == \
        {k: v for k, v in before.items() if k != "config.json"}  # config.json names the longer budget asked
    assert _leftovers(tmp_path) == []


# -- a resume state checked value by value ---------------------------------------------------------------

def _set(key, value):
    def edit(state):
        state[key] = value(state) if callable(value) else value
    return edit


def _weight(state):
    w = dict(state["model"])
    w["obj_encoder.fc1.weight"] = torch.zeros(3, 3)
    return w


def _moment(state):
    opt = state["optimizer"]
    opt["state"][0] = {**opt["state"][0], "exp_avg": torch.zeros(7)}
    return opt


STATES = {
    case("state.pt with updates = 'many'", "traceback"):
        (_set("updates", "many"), "'updates' must be a whole number >= 0, got str 'many'"),
    case("state.pt with updates = -3", "silent_wrong"):
        (_set("updates", -3), "'updates' must be a whole number >= 0, got int '-3'"),
    case("state.pt with best_loss NaN", "silent_wrong"):
        (_set("best_loss", math.nan), "state.pt: best_loss must be a number, got nan"),
    case("state.pt with weights of another shape", "traceback"):
        (_set("model", _weight), r"state.pt \(model\): obj_encoder.fc1.weight is torch.float32 \[3, 3\]"),
    case("state.pt with an optimizer moment of another shape", "traceback"):
        (_set("optimizer", _moment), r"state.pt \(optimizer\): exp_avg of parameter 0 does not have"),
    case("state.pt with running totals of the wrong kind", "traceback"):
        (_set("meter", {"loss": "x"}), r"state.pt: meter: loss must be a number"),
    case("state.pt whose selected weights come after its last update", "traceback"):
        (_set("selected", {"updates": 99, "loss": 1.0}), r"state.pt: selected.updates must be in \[0, 1\]"),
    case("state.pt with a curve point that is not a dict", "traceback"):
        (_set("curve", [1, 2]), "'curve' must hold one dict per point"),
}


@pytest.mark.parametrize("name", list(STATES))
def test_a_resume_state_with_a_bad_value_is_one_line_naming_file_and_field(name, tmp_path, capsys):
    data = _h5(tmp_path)
    folder = tmp_path / "run"
    _train_main([str(a) for a in _base(tmp_path, data)])
    state = torch.load(folder / "state.pt", weights_only=True)
    edit, want = STATES[name]
    edit(state)
    torch.save(state, folder / "state.pt")
    before = _snapshot(folder)
    msg = _one_line_cli(_base(tmp_path, data) + ["--epochs", 2], capsys)
    assert "state.pt" in msg
    assert re.search(want, msg), msg
    assert _snapshot(folder) == before and _leftovers(tmp_path) == []
