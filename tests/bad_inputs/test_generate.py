"""generate: interrupted runs keep the old file; bad outputs are refused before any work."""

from __future__ import annotations

import pytest

from .common import (
    _gen_argv,
    _generate_main,
    _h5,
    _leftovers,
    _load_episodes,
    _write,
    case,
    cli,
    generating,
    one_line,
)

GENERATE_INTERRUPTS = [
    case("Ctrl-C to the main process of a 2-worker generate", "lost_or_overwritten"),
    case("Ctrl-C to the process group of a 2-worker generate", "lost_or_overwritten"),
    case("Ctrl-C to a 1-worker generate", "lost_or_overwritten"),
]


@pytest.mark.parametrize("name", GENERATE_INTERRUPTS)
def test_ctrl_c_during_generation_keeps_the_old_file(name, tmp_path):
    out = _h5(tmp_path, "shapes.h5")  # the previous output, a dataset of ours
    previous = out.read_bytes()
    child = generating(out, name)
    assert child.interrupt(group="group" in name) == 130
    assert out.read_bytes() == previous
    assert _leftovers(tmp_path) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["shapes.h5"]
    assert child.err.decode().strip().splitlines()[-1] == "interrupted"


GENERATE_CLI = [
    case("generate onto /dev/full", "lost_or_overwritten"),
    case("generate onto an existing file that is not a dataset", "lost_or_overwritten"),
    case("generate into a folder path", "traceback"),
    case("generate into a missing parent folder", "traceback"),
    case("generate into a read-only folder", "traceback"),
    case("generate on a full disk", "traceback"),
    case("generate with an unknown env id", "traceback"),
    case("generate with --num-episodes 0", "traceback"),
    case("generate with --num-workers 0", "traceback"),
    case("generate an Atari id without --atari", "traceback"),
]


@pytest.mark.parametrize("name", GENERATE_CLI)
def test_generate_refuses_bad_input_in_one_line_and_writes_nothing(name, tmp_path, capsys, monkeypatch):
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


@pytest.mark.parametrize("name", [case("generate with an empty --fname", "traceback")])
def test_generate_refuses_an_empty_fname(name, tmp_path, capsys, monkeypatch):
    notes = _write(tmp_path / "notes.txt", b"my notes")
    monkeypatch.chdir(tmp_path)
    assert "is a folder" in cli(_generate_main, _gen_argv(""), capsys)
    assert notes.read_bytes() == b"my notes" and _leftovers(tmp_path) == []
