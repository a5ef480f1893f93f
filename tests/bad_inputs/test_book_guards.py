"""book run: a parameter file's scale must be a plain name (it becomes a folder), a misspelt default
is refused, and a damaged results or stamp file is one line or a re-run, never a traceback; nothing
is written before the refusal, inside the project or outside it."""

from __future__ import annotations

import pytest

from .common import ROOT, case, no_work, refused, snapshot, unchanged

PARAMS = {
    "book run with scale: 5": ("traceback", "scale: 5\n", "'scale' must be a plain name"),
    "book run --record with scale: ../../../x": (
        "silent_wrong",
        "scale: ../../../x\n",
        "'scale' must be a plain name",
    ),
    "book run with scale: a/b": ("silent_wrong", "scale: a/b\n", "'scale' must be a plain name"),
    "book run with a misspelt key in defaults": (
        "silent_wrong",
        "scale: x\ndefaults:\n  devce: cpu\n",
        "defaults ['devce'] are a parameter of no chapter",
    ),
}
PARAM_CASES = [pytest.param(case(n, k), text, want, id=n) for n, (k, text, want) in PARAMS.items()]


@pytest.mark.parametrize(("name", "text", "want"), PARAM_CASES)
def test_book_run_refuses_a_bad_params_value_before_any_chapter(
    name, text, want, tmp_path, capsys, monkeypatch
):
    from cswm_lib import book

    monkeypatch.setenv("CSWM_ROOT", str(ROOT))
    monkeypatch.setenv("CSWM_RESULTS", str(tmp_path / "results"))
    monkeypatch.setattr(book, "run_chapter", no_work)
    params = tmp_path / "p.yaml"
    params.write_text(text)
    before, records = snapshot(tmp_path), snapshot(ROOT / "book" / "results")
    argv = ["run", "--params", params, "--chapters", "01_setup", "--record"]
    if "misspelt" in name:
        argv += ["--out", tmp_path / "o"]
    refused(book.main, argv, capsys, "p.yaml", want)
    unchanged(before, tmp_path)
    unchanged(records, ROOT / "book" / "results")
    assert not (ROOT.parent.parent / "x").exists()


@pytest.mark.parametrize(
    "name", [case("book run --record after a chapter left a truncated results.json", "traceback")]
)
def test_a_truncated_results_file_is_one_line_and_records_nothing(name, tmp_path, capsys, monkeypatch):
    from cswm_lib import book

    monkeypatch.setenv("CSWM_ROOT", str(ROOT))

    def chapter_cut_short(chapter, params, out_dir, force=False):
        (out_dir / chapter.stem).mkdir(parents=True, exist_ok=True)
        (out_dir / chapter.stem / "results.json").write_text('{"chapter": "01_setup", "resu')
        return "ran"

    monkeypatch.setattr(book, "run_chapter", chapter_cut_short)
    # a committed checkout, as --record needs (this test is about the results file, not git)
    monkeypatch.setattr("cswm_lib.provenance.git_state", lambda root=None: {"dirty": False})
    params = tmp_path / "p.yaml"
    params.write_text("scale: x\n")
    records = snapshot(ROOT / "book" / "results")
    argv = ["run", "--params", params, "--chapters", "01_setup", "--record", "--out", tmp_path / "o"]
    refused(book.main, argv, capsys, "results.json", "cannot be read")
    unchanged(records, ROOT / "book" / "results")


@pytest.mark.parametrize(
    "name", [case("book run after a kill truncated a chapter's stamp.json", "traceback")]
)
def test_a_truncated_stamp_runs_the_chapter_again(name, tmp_path, monkeypatch):
    from cswm_lib import CswmError, book

    monkeypatch.setenv("CSWM_ROOT", str(ROOT))
    chapter = book.toc_chapters(ROOT)[0]
    folder = tmp_path / chapter.stem
    folder.mkdir()
    (folder / f"{chapter.stem}.ipynb").write_text("{}")
    (folder / "stamp.json").write_text('{"chapter": "ab')

    def runs(*a, **k):
        raise CswmError("the chapter runs again")

    monkeypatch.setattr(book, "to_notebook", runs)
    with pytest.raises(CswmError, match="runs again"):
        book.run_chapter(chapter, {}, tmp_path)
