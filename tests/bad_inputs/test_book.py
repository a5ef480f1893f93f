"""book run: bad parameter files and folders are one line, before any chapter runs."""

from __future__ import annotations

import pytest

from .common import (
    ROOT,
    _leftovers,
    _params,
    _write,
    api_cases,
    case,
    cli,
    no_work,
    run_api_case,
)

API = [  # (what the user does, class it guards against, call(tmp_path, trained), message)
    (
        "YAML holding just a string",
        "misleading_message",
        lambda t, m: _params(t, "just a string\n"),
        "must hold a mapping",
    ),
    (
        "defaults: [1, 2]",
        "traceback",
        lambda t, m: _params(t, "defaults: [1, 2]\n"),
        "'defaults' must map names",
    ),
    (
        "a chapter mapped to a scalar",
        "traceback",
        lambda t, m: _params(t, "chapters:\n  04_model: 3\n"),
        "chapter '04_model' must map",
    ),
    (
        "missing parameter file",
        "traceback",
        lambda t, m: __import__("cswm_lib.book", fromlist=["x"]).load_params(t / "no.yaml"),
        "not found",
    ),
    ("invalid YAML", "traceback", lambda t, m: _params(t, "a: [1,\n"), "is not valid YAML"),
    (
        "unknown top-level key",
        "traceback",
        lambda t, m: _params(t, "scal: cpu\n"),
        "expected keys scale/defaults/chapters",
    ),
]


@pytest.mark.parametrize(("name", "call", "pattern"), api_cases(API))
def test_a_bad_params_file_is_one_line(name, call, pattern, tmp_path, trained):
    run_api_case(name, call, pattern, tmp_path, trained)


BOOK_CLI = [
    case("book run: relative --params from another folder", "silent_wrong"),
    case("book run: unknown chapter", "traceback"),
]


@pytest.mark.parametrize("name", BOOK_CLI)
def test_book_run_resolves_paths_from_the_working_folder_and_refuses_unknown_chapters(
    name, tmp_path, capsys, monkeypatch
):
    from cswm_lib import book

    monkeypatch.setenv("CSWM_ROOT", str(ROOT))
    if "relative --params" in name:
        (tmp_path / "mine.yaml").write_text("scale: mine\nchapters: {}\n")
        seen = {}
        monkeypatch.setattr(book, "run", lambda params, out, *a, **k: seen.update(params=params, out=out))
        monkeypatch.chdir(tmp_path)
        book.main(["run", "--params", "mine.yaml", "--out", "myruns"])
        assert seen == {"params": tmp_path / "mine.yaml", "out": tmp_path / "myruns"}
    else:
        (tmp_path / "p.yaml").write_text("scale: x\n")
        msg = cli(
            book.main,
            ["run", "--params", tmp_path / "p.yaml", "--chapters", "99_nope", "--out", tmp_path / "o"],
            capsys,
        )
        assert "unknown chapter" in msg
    assert _leftovers(tmp_path) == []


BOOK_FILES = [
    case("book run: params file is binary", "traceback"),
    case("book run: params file is empty", "silent_wrong"),
    case("book run: params path is a folder", "misleading_message"),
    case("book run: --out is a file", "traceback"),
]


@pytest.mark.parametrize("name", BOOK_FILES)
def test_book_run_refuses_a_bad_params_file_or_out_folder_before_any_chapter(
    name, tmp_path, capsys, monkeypatch
):
    from cswm_lib import book

    notes = _write(tmp_path / "notes.txt", b"my notes")
    monkeypatch.setenv("CSWM_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("CSWM_ROOT", str(ROOT))
    monkeypatch.setattr(book, "run_chapter", no_work)
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
    assert notes.read_bytes() == b"my notes" and not (tmp_path / "results").exists()
    assert _leftovers(tmp_path) == []
