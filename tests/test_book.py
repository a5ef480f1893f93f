"""The papermill runner: parameters reach the chapter, results.json is written, unchanged chapters
are skipped, and a failing chapter yields one line naming the chapter and the cell."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEADER = """# ---
# jupyter:
#   jupytext: {formats: "py:percent"}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---
"""

GOOD = (
    HEADER
    + """
# %% [markdown]
# # A good chapter

# %% tags=["parameters"]
scale = "small"
n = 2

# %%
from cswm_lib.book import save_results
save_results("01_good", {"n_squared": n * n}, scale)
"""
)

BROKEN = (
    HEADER
    + """
# %% [markdown]
# # A broken chapter

# %% tags=["parameters"]
scale = "small"

# %%
x = 1

# %%
raise ValueError("the data set is empty")
"""
)


def make_book(root: Path) -> None:
    (root / "book" / "chapters").mkdir(parents=True)
    (root / "book" / "chapters" / "01_good.py").write_text(GOOD)
    (root / "book" / "chapters" / "02_broken.py").write_text(BROKEN)
    (root / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nchapters:\n"
        "  - file: book/chapters/01_good\n  - file: book/chapters/02_broken\n"
    )
    (root / "params.yaml").write_text("scale: full\nchapters:\n  01_good: {n: 7}\n")


def runner(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CSWM_ROOT": str(root)}
    env.pop("CSWM_RESULTS", None)
    return subprocess.run(
        [sys.executable, "-m", "cswm_lib.book", "run", "--params", "params.yaml", "--out", "out", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_runner_injects_parameters_writes_results_and_skips_unchanged(tmp_path):
    make_book(tmp_path)
    first = runner(tmp_path, "--chapters", "01_good")
    assert first.returncode == 0, first.stderr
    results = json.loads((tmp_path / "out" / "01_good" / "results.json").read_text())
    run_facts = {k: results.pop(k) for k in ("command", "wall_seconds", "load", "cores", "provenance",
                                             "declared")}
    assert results == {"chapter": "01_good", "scale": "full", "results": {"n_squared": 49}}
    assert run_facts["command"] == "python -m cswm_lib.book run --params params.yaml --chapters 01_good"
    assert run_facts["wall_seconds"] > 0 and len(run_facts["load"]) == 3
    assert run_facts["provenance"]["executor"] == "local" and run_facts["provenance"]["library_hash"]
    assert run_facts["declared"]["params"] == "params.yaml"  # that book has no git: no commit to name
    assert (tmp_path / "out" / "01_good" / "01_good.ipynb").is_file()
    assert "ran in" in first.stdout

    second = runner(tmp_path, "--chapters", "01_good")
    assert second.returncode == 0 and "skipped" in second.stdout

    (tmp_path / "params.yaml").write_text("scale: full\nchapters:\n  01_good: {n: 3}\n")
    third = runner(tmp_path, "--chapters", "01_good")
    assert "ran in" in third.stdout
    assert (
        json.loads((tmp_path / "out" / "01_good" / "results.json").read_text())["results"]["n_squared"] == 9
    )
    recorded = runner(tmp_path, "--chapters", "01_good", "--record")  # unchanged: skipped, still recorded
    assert "recorded -> book/results/full/01_good.json" in recorded.stdout, recorded.stderr
    kept = json.loads((tmp_path / "book" / "results" / "full" / "01_good.json").read_text())
    assert kept["results"]["n_squared"] == 9 and kept["command"].endswith("--chapters 01_good")


WHERE = (
    HEADER
    + """
# %% tags=["parameters"]
scale = "small"
n = 2

# %%
import cswm_lib
from cswm_lib.book import save_results
save_results("01_good", {"library": cswm_lib.__file__}, scale)
"""
)


@pytest.mark.slow
def test_the_chapter_kernel_imports_the_runners_own_library(tmp_path):
    """A record names the runner's commit and library hash, so the chapter's kernel (started in
    book/chapters, where no cswm_lib lies) must import the runner's cswm_lib -- not the checkout an
    editable install points at. Here the runner's library is a copy in the book's own folder (found
    first, as the current folder of `python -m`), made different by one extra file."""
    import shutil

    from cswm_lib.utils import project_root

    make_book(tmp_path)
    (tmp_path / "book" / "chapters" / "01_good.py").write_text(WHERE)
    shutil.copytree(project_root() / "cswm_lib", tmp_path / "cswm_lib",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "cswm_lib" / "a_copy.py").write_text('"""Only in the copy: its library hash differs."""\n')
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CSWM_RESULTS")}
    proc = subprocess.run(
        [sys.executable, "-m", "cswm_lib.book", "run", "--params", "params.yaml", "--out", "out",
         "--chapters", "01_good"],
        cwd=tmp_path, env={**env, "CSWM_ROOT": str(tmp_path)}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((tmp_path / "out" / "01_good" / "results.json").read_text())
    assert results["results"]["library"] == "cswm_lib/__init__.py"  # the copy (portable: project-relative)
    assert "library_hash" not in results  # checked against the runner's, then left to the provenance


def test_a_chapter_computed_by_another_library_is_not_recorded():
    from cswm_lib.book import check_library
    from cswm_lib.errors import CswmError
    from cswm_lib.provenance import library_hash

    check_library(library_hash(), "09_atari_time_aligned")  # the runner's own: recorded
    for other in ("0" * 64, None):
        with pytest.raises(CswmError, match="09_atari_time_aligned computed its results with another "
                                            "cswm_lib .* not recorded"):
            check_library(other, "09_atari_time_aligned")


@pytest.mark.slow
def test_failing_chapter_is_one_line_naming_chapter_and_cell(tmp_path):
    make_book(tmp_path)
    proc = runner(tmp_path, "--chapters", "02_broken")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "chapter 02_broken failed in cell 4 ('raise ValueError(\"the data set is empty\")')" in lines[0]
    assert "ValueError: the data set is empty" in lines[0]
    assert not (tmp_path / "out" / "02_broken" / "02_broken.ipynb").exists()
    assert (tmp_path / "out" / "02_broken" / "02_broken.failed.ipynb").exists()


def test_bad_parameter_file_and_unknown_chapter_are_one_line(tmp_path):
    make_book(tmp_path)
    (tmp_path / "params.yaml").write_text("scale: full\nchapters:\n  99_missing: {n: 1}\n")
    proc = runner(tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "99_missing" in proc.stderr
    (tmp_path / "params.yaml").write_text("scale: full\n")
    proc = runner(tmp_path, "--chapters", "nope")
    assert proc.returncode == 2 and "unknown chapter(s) ['nope']" in proc.stderr


@pytest.mark.slow
def test_undeclared_parameter_is_rejected(tmp_path):
    make_book(tmp_path)
    (tmp_path / "params.yaml").write_text("scale: full\nchapters:\n  01_good: {typo_n: 1}\n")
    proc = runner(tmp_path, "--chapters", "01_good")
    assert proc.returncode == 2 and "['typo_n'] are not in its parameters cell" in proc.stderr


@pytest.mark.slow
def test_book_build_fails_on_a_failing_cell(tmp_path):
    """With our _config.yml, `jupyter-book build -W` must exit non-zero when a chapter cell raises
    (myst-nb only logs such a failure unless told otherwise)."""
    import shutil

    from cswm_lib.utils import project_root

    root = project_root()
    make_book(tmp_path)
    shutil.copy(root / "_config.yml", tmp_path / "_config.yml")
    shutil.copy(root / "book" / "references.bib", tmp_path / "book" / "references.bib")
    shutil.copytree(root / "book" / "_ext", tmp_path / "book" / "_ext")  # _config.yml's local extension
    (tmp_path / "book" / "intro.md").write_text("# Intro\n")
    (tmp_path / "book" / "chapters" / "01_good.py").unlink()
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nchapters:\n  - file: book/chapters/02_broken\n"
    )
    jb = Path(sys.executable).with_name("jupyter-book")
    proc = subprocess.run(
        [str(jb), "build", "-W", "-n", "--keep-going", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode != 0
    assert "the data set is empty" in proc.stdout + proc.stderr


def test_results_name_no_path_of_the_machine_that_made_them(tmp_path):
    from cswm_lib.book import portable

    root = tmp_path / "proj"
    got = portable({"a": str(root / "data" / "x.h5"), "b": [str(root / "c"), "/elsewhere/y", 3],
                    "c": {"d": "text"}}, root)
    assert got == {"a": "data/x.h5", "b": ["c", "/elsewhere/y", 3], "c": {"d": "text"}}


def test_every_parameter_a_chapter_assigns_is_one_papermill_sees(tmp_path):
    """papermill skips a parameters-cell line it cannot parse (e.g. one whose comment holds "="),
    and the runner would then reject that parameter in a parameter file: every name a chapter's
    parameters cell assigns must be declared."""
    import ast

    import jupytext

    from cswm_lib.book import declared_parameters, to_notebook
    from cswm_lib.utils import project_root

    for chapter in sorted((project_root() / "book" / "chapters").glob("*.py")):
        cell = next(c for c in jupytext.read(chapter).cells if "parameters" in c.metadata.get("tags", []))
        assigned = {t.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign)
                    for t in node.targets if isinstance(t, ast.Name)}
        declared = set(declared_parameters(to_notebook(chapter, tmp_path / f"{chapter.stem}.ipynb")))
        assert assigned <= declared, f"{chapter.name}: papermill does not see {sorted(assigned - declared)}"
