"""The frame of the project: pins agree, the table of contents and the chapters agree."""

from __future__ import annotations

import re
import tomllib

import jupytext
import yaml

from cswm_lib.book import toc_chapters
from cswm_lib.utils import project_root

ROOT = project_root()


def _pip_pins_environment() -> list[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = [d for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip) == 1, "environment.yml must have exactly one pip section"
    return pip[0]["pip"]


def test_environment_yml_pins_equal_pyproject():
    """environment.yml holds every pin of the project: the dependencies and every extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [d for group in project["optional-dependencies"].values() for d in group]
    assert sorted(set(project["dependencies"] + extras)) == sorted(_pip_pins_environment())
    pins = _pip_pins_environment()
    assert len(set(pins)) == len(pins), "environment.yml repeats a pin"


def test_library_install_pulls_no_tooling_and_make_installs_what_each_command_needs():
    """``pip install`` of the library brings no test, book or notebook tooling; the Makefile names,
    per command, extras that exist (``make test`` all that the tests import)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[=<>\[]", d)[0].lower() for d in project["dependencies"]}
    tooling = {"pytest", "nbval", "selenium", "jupyter-book", "papermill", "jupytext", "ipykernel",
               "jupyterlab", "ruff", "ray"}
    assert names & tooling == set(), f"core dependencies pull tooling: {sorted(names & tooling)}"
    extras = project["optional-dependencies"]
    make = (ROOT / "Makefile").read_text()
    chosen = dict(re.findall(r"^EXTRAS_(\w+) := (\S+)$", make, re.M))
    assert {"book", "test"} <= set(chosen)
    for command, names_ in chosen.items():
        assert set(names_.split(",")) <= set(extras), f"make {command}: unknown extra in {names_}"
    assert set(extras) <= set(chosen["test"].split(",")), "make test must install every extra"


def test_every_dependency_is_pinned_exactly():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [d for group in project.get("optional-dependencies", {}).values() for d in group]
    for dep in project["dependencies"] + extras:
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][A-Za-z0-9_.]*", dep), f"not pinned exactly: {dep}"


def test_toc_and_chapter_files_agree():
    listed = {p.resolve() for p in toc_chapters()}
    on_disk = {p.resolve() for p in (ROOT / "book" / "chapters").glob("*.py")}
    assert on_disk - listed == set(), f"chapters missing from _toc.yml: {sorted(on_disk - listed)}"
    assert {p for p in listed if p.parent.name == "chapters"} == on_disk


def test_every_chapter_has_exactly_one_parameters_cell_with_scale():
    for chapter in (ROOT / "book" / "chapters").glob("*.py"):
        nb = jupytext.read(chapter)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{chapter.name}: {len(tagged)} parameters cells"
        assert re.search(r"^scale\s*=\s*\"small\"", tagged[0].source, re.M), (
            f"{chapter.name}: no scale = 'small'"
        )
        assert nb.cells[0].cell_type == "markdown" and re.search(r"^# \S", nb.cells[0].source, re.M), (
            f"{chapter.name}: first cell must be markdown with a '# Title'"
        )


def test_chapter_code_lines_fit_the_text_column():
    """A code cell's line of at most 88 characters fits the book's text column without a scroll bar.
    Comment and markdown lines (first non-blank character ``#``) may be longer: they wrap."""
    limit = 88
    too_long = [
        f"{chapter.relative_to(ROOT)}:{number}: {len(line)}"
        for chapter in sorted((ROOT / "book" / "chapters").glob("*.py"))
        for number, line in enumerate(chapter.read_text(encoding="utf-8").splitlines(), 1)
        if len(line) > limit and not line.lstrip().startswith("#")
    ]
    assert too_long == [], f"code lines longer than {limit} characters:\n" + "\n".join(too_long)


def test_chapter_cells_are_short():
    """Short cells, prose between: a code cell holds at most 20 lines, the parameters cell 25."""
    too_long = []
    for chapter in sorted((ROOT / "book" / "chapters").glob("*.py")):
        for number, cell in enumerate(jupytext.read(chapter).cells):
            limit = 25 if "parameters" in cell.metadata.get("tags", []) else 20
            lines = len(cell.source.strip().splitlines())
            if cell.cell_type == "code" and lines > limit:
                too_long.append(f"{chapter.name} cell {number}: {lines} lines (at most {limit})")
    assert too_long == [], "\n".join(too_long)


def test_parameter_files_name_only_real_chapters():
    stems = {p.stem for p in toc_chapters()}
    for scale in ("cpu", "full"):
        spec = yaml.safe_load((ROOT / "book" / "params" / f"{scale}.yaml").read_text())
        assert spec["scale"] == scale
        assert set(spec["chapters"]) <= stems, f"{scale}.yaml names unknown chapters"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make book" in readme
    assert re.search(r"^make test$", ci, re.M)


def test_readme_results_block_is_generated_from_recorded_json():
    from cswm_lib.report import README_MARKERS, glance_markdown, readme_with_results

    readme = (ROOT / "README.md").read_text()
    assert all(marker in readme for marker in README_MARKERS)
    expected = readme_with_results(readme, glance_markdown())
    assert readme == expected, "README results table is stale: run `python -m cswm_lib.book results --readme`"


def test_results_markdown_shows_paper_or_says_unknown():
    from cswm_lib.report import results_markdown

    row = dict(
        experiment="4.1",
        dataset="Shapes immovable",
        strategy="baseline",
        setting="global_dedup",
        num_steps=1,
        metric="Hits@1",
        mean=0.5,
        std=0.25,
        n_seeds=3,
        scale="cpu",
        paper=None,
        paper_note="not known",
    )
    other = {**row, "strategy": "mixed", "mean": 0.75, "std": 0.0}
    hidden = [{**row, "num_steps": 5}, {**row, "metric": "MRR"},
              {**row, "setting": "global_dedup_no_transition"}]
    table = results_markdown([row, other, *hidden]).splitlines()
    assert len(table) == 3  # header, rule, one line for the (4.1, Shapes immovable, global_dedup, cpu) group
    assert table[2] == (
        "| 4.1 | Shapes immovable | global_dedup | baseline → 50.0 ± 25.0 (3); mixed → 75.0 ± 0.0 (3) "
        "| cpu | not known to us |"
    )
    assert "| 98.7 |" in results_markdown([{**row, "paper": 0.987}])


def _repository_files() -> list:
    """Files of the repository (tracked by git when it is a checkout), without .git, venvs and builds."""
    import subprocess

    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
        files = [ROOT / f for f in out.decode().split("\0") if f]
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", ".venv", "_build", "data", "checkpoints", "runs", "__pycache__"}
        files = [p for p in ROOT.rglob("*") if p.is_file() and not skip & set(p.relative_to(ROOT).parts)]
    return [f for f in files if f.is_file()]


def test_no_file_refers_to_a_path_outside_the_repository():
    """The project stands on its own: no absolute path of a build machine, no team-only notes."""
    from pathlib import Path

    # spelled in pieces so that this file does not match itself
    forbidden = ["/wo" + "rk/", "shar" + "ed/reference", "original" + "-code.md", "original" + "-artifacts",
                 "performance" + "-anchors", "/tmp/" + "bash_jobs"]
    if str(Path.home()) not in ("/", ""):
        forbidden.append(str(Path.home()) + "/")
    files = _repository_files()
    assert len(files) > 50, f"only {len(files)} repository files found under {ROOT}"
    hits = []
    for f in files:
        data = f.read_bytes()
        hits += [f"{f.relative_to(ROOT)}: {s}" for s in forbidden if s.encode() in data]
    assert hits == [], "files refer to paths outside the repository:\n" + "\n".join(hits)
