"""SIGTERM and a full disk, everywhere a file is written: train, A3C training and collection, and a
library write outside any command. SIGTERM ends a command like Ctrl-C (exit 143, ``terminated``) and
leaves no temporary file and a state the next run resumes from; a real full disk (a small tmpfs,
when the tests run as root) is one line, with the earlier outputs as they were."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from .common import Child, _h5, _leftovers, _train_main, case, cli, one_line, snapshot, train_argv


@contextlib.contextmanager
def full_disk(folder: Path, size_kb: int, leave_kb: int):
    """A real tmpfs of ``size_kb`` at ``folder`` holding a filler that leaves ``leave_kb`` free."""
    if os.geteuid() != 0:
        pytest.skip("a real full disk needs a tmpfs mount, which needs root")
    folder.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(folder)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()[:80]}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path, leave_kb: int) -> None:
    free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    with open(folder / "filler", "wb") as f:
        f.write(b"\0" * max(0, free - leave_kb * 1024))




DISK = [
    case("train onto a full disk", "traceback"),
    case("resume training onto a disk that filled up", "traceback"),
    case("A3C training onto a full disk", "traceback"),
]


@pytest.mark.parametrize("name", DISK)
def test_a_real_full_disk_is_one_line_and_keeps_the_earlier_outputs(name, tmp_path, capsys):
    with full_disk(tmp_path / "disk", 1024, 8) as disk:
        if name.startswith("A3C"):
            import importlib

            fill(disk, 8)
            a3c = importlib.import_module("cswm_lib.a3c.train")
            argv = [
                "CartPole-v1",
                "--folder",
                disk / "a3c",
                "--num-workers",
                1,
                "--max-frames",
                200,
                "--no-progress",
                "--start-method",
                "fork",
            ]
            main = a3c.main
        else:
            data = _h5(tmp_path, "d.h5")
            if name.startswith("resume"):
                _train_main([str(a) for a in train_argv(data, disk)])
                capsys.readouterr()
            fill(disk, 8)
            argv, main = train_argv(data, disk, epochs=2), _train_main
        before = snapshot(tmp_path)
        line = cli(main, argv, capsys)
        assert "No space left on device" in line or "no space left on device" in line, line
        after = snapshot(tmp_path)
        kept = [k for k in before if not k.endswith("config.json")]  # config.json names the budget asked for
        assert all(after.get(k) == before[k] for k in kept), "an earlier output changed"
        assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("name", [case("torch's full-disk RuntimeError inside a command", "traceback")])
def test_torchs_write_failure_is_one_line(name, tmp_path, capsys, monkeypatch):
    data = _h5(tmp_path, "d.h5")

    def full(obj, f, *a, **k):  # what torch's zip writer raises when the disk fills under it
        Path(f).write_bytes(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 4160 vs 4054")

    monkeypatch.setattr(torch, "save", full)
    before = snapshot(tmp_path)
    line = cli(_train_main, train_argv(data, tmp_path), capsys)
    assert "no space left on device" in line and "unexpected pos" in line
    assert all(snapshot(tmp_path).get(k) == v for k, v in before.items()) and _leftovers(tmp_path) == []


SIGTERMS = [
    case("SIGTERM to training", "lost_or_overwritten"),
    case("SIGTERM to A3C training", "lost_or_overwritten"),
    case("SIGTERM to A3C collection", "lost_or_overwritten"),
]


@pytest.mark.parametrize("name", SIGTERMS)
def test_sigterm_ends_a_command_like_ctrl_c(name, tmp_path):
    if name == "SIGTERM to training":
        data = _h5(tmp_path, "d.h5", E=4, T=8)
        child = Child("cswm_lib.train", *train_argv(data, tmp_path, epochs=2000),
                      env={"OMP_NUM_THREADS": "1"})
        child.wait_for(lambda: (tmp_path / "run" / "state.pt").is_file())
        saved = tmp_path / "run" / "state.pt"
    elif name == "SIGTERM to A3C training":
        child = Child(
            "cswm_lib.a3c.train",
            "CartPole-v1",
            "--folder",
            tmp_path,
            "--num-workers",
            2,
            "--max-frames",
            10_000_000,
            "--start-method",
            "fork",
            "--no-progress",
        )
        child.wait_for(
            lambda: (tmp_path / "curve.jsonl").is_file() and (tmp_path / "curve.jsonl").stat().st_size
        )
        saved = tmp_path / "checkpoint.pt"
    else:
        child = Child(
            "cswm_lib.a3c.collect",
            "SpaceInvadersDeterministic-v4",
            "--save-path",
            tmp_path / "c.h5",
            "--agent",
            "random",
            "--max-episodes",
            300,
            "--num-steps",
            2,
            "--min-burnin",
            1,
            "--max-burnin",
            3,
        )
        child.wait_for(lambda: re.search(rb"\| *[1-9]\d*/300", child.err) is not None)
        saved = tmp_path / "c.h5.partial.npz"
    assert child.interrupt(group=False, sig=signal.SIGTERM) == 143
    lines = child.err.decode().strip().splitlines()
    assert lines[-1].endswith("terminated") and "Traceback" not in child.err.decode(), lines[-3:]
    assert saved.is_file() and _leftovers(tmp_path) == []
    if saved.suffix == ".pt":
        torch.load(saved, weights_only=True)  # complete, readable: the next run resumes from it


@pytest.mark.parametrize(
    "name", [case("SIGTERM to a program writing through atomic_path", "lost_or_overwritten")]
)
def test_sigterm_during_a_library_write_leaves_no_temp_file(name, tmp_path):
    code = (
        "import sys, time\nfrom cswm_lib.utils import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp:\n    tmp.write_text('half')\n    print('ready', flush=True)\n"
        "    time.sleep(60)\n"
    )
    (tmp_path / "out.txt").write_text("old")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "out.txt")], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"ready"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == -signal.SIGTERM  # ended by the signal, as before
    assert (tmp_path / "out.txt").read_text() == "old" and _leftovers(tmp_path) == []
    one_line("ok")
