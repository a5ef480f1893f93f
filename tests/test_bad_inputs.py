"""The bad-input battery (issue 15): files from others run no code, every bad input gets one line.

Each case below is a named entry of :data:`CASES` (category, and what the library did before issue
15: ``clean`` one-line error, ``traceback``, ``silent`` wrong behaviour or ``lost`` data). A case
asserts the exit code (CLI: ``error: ...`` on one line, exit 2) or the exception type and its
one-line message (API), and that nothing was lost or executed. ``test_battery_covers_every_case``
checks that every listed case is a parameter of a test here; ``python tests/test_bad_inputs.py``
prints the counts.

Ctrl-C (real SIGINT to a child process and to its process group) lives in ``test_interrupts.py``.
"""

from __future__ import annotations

import importlib
import pickle
from pathlib import Path

import pytest
import torch
from tiny_worlds import tiny_episodes

from cswm_lib import CswmError

KINDS = ("clean", "traceback", "silent", "lost", "executed")
#: case id -> (category, behaviour before issue 15: one of KINDS; "executed" = a file ran code)
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
    cfg = TrainConfig(dataset="tiny.h5", save_folder=str(folder), name="run", hidden_dim=16, num_objects=2,
                      batch_size=8, epochs=1, progress=False, device="cpu")
    return train(cfg, tiny_episodes(E=2, T=4))


CRAFTED = [case(f"crafted pickle in {n}", "checkpoints", b) for n, b in
           [("state.pt", "executed"), ("A3C checkpoint.pt", "executed"), ("model.pt", "clean"),
            ("metadata.pkl", "clean")]]


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
        cfg = TrainConfig(dataset="tiny.h5", save_folder=str(tmp_path), name="run", hidden_dim=16,
                          num_objects=2, batch_size=8, epochs=2, progress=False, device="cpu")
        before = (folder / "model.pt").read_bytes()
        with pytest.raises(CswmError) as err:
            train(cfg, tiny_episodes(E=2, T=4))
        assert (folder / "model.pt").read_bytes() == before  # nothing was overwritten
    else:
        a3c = tmp_path / "a3c"
        a3c.mkdir()
        torch.save({"config": {"env_id": "CartPole-v1"}, "model": _Payload(marker), "optimizer": {},
                    "frames": 0, "stats": {}, "elapsed": 0.0}, a3c / "checkpoint.pt")
        _live(marker, lambda: torch.load(a3c / "checkpoint.pt", weights_only=False))
        with pytest.raises(CswmError) as err:
            importlib.import_module("cswm_lib.a3c.agent").load_policy(a3c)
        msg = cli(a3c_collect.main, ["PongDeterministic-v4", "--save-path", tmp_path / "x.h5",
                                     "--agent", a3c, "--max-episodes", "1"], capsys)
        assert "checkpoint.pt is not a valid or trusted" in msg
        msg = cli(a3c_train.main, ["CartPole-v1", "--folder", a3c, "--num-workers", "1", "--no-progress"],
                  capsys)
        assert "checkpoint.pt is not a valid or trusted" in msg
        assert not (tmp_path / "x.h5").exists()
    assert "not a valid" in one_line(err.value) or "not allowed" in str(err.value)
    assert not marker.exists()


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


def counts() -> dict[str, int]:
    before = {k: sum(1 for _, b in CASES.values() if b == k) for k in KINDS}
    return {"cases": len(CASES), **{f"before_{k}": v for k, v in before.items()}}


if __name__ == "__main__":
    print(counts())
