"""Running the book's chapters at any scale (the papermill runner; tables and figures are in
:mod:`cswm_lib.report`).

Every chapter is a jupytext percent-format notebook in ``book/chapters/`` with one ``parameters``
cell holding its *small* defaults. The same chapter runs at the ``cpu`` or ``full`` scale when
papermill injects the values of a parameter file (``book/params/cpu.yaml``, ``full.yaml``)::

    python -m cswm_lib.book run --params book/params/full.yaml [--chapters 04_model ...] [--out runs/full]

For each chapter this writes ``<out>/<chapter>/<chapter>.ipynb`` (the executed notebook),
``<out>/<chapter>/results.json`` (written by the chapter itself through :func:`save_results`) and
``<out>/<chapter>/stamp.json``. A chapter whose source, parameters and library code are unchanged
since its last successful run is skipped (``--force`` runs it anyway). A failing chapter stops the
run with one line naming the chapter and the failing cell.

Parameter files (their layout and checks: :mod:`cswm_lib.params`) look like::

    scale: full            # injected into every chapter as `scale`
    defaults: {device: null}  # injected into every chapter whose parameters cell declares the name
    chapters:
      04_model: {dataset_episodes: 1000, epochs: 100}
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from cswm_lib.errors import CswmError
from cswm_lib.params import load_params, scale_name
from cswm_lib.paths import output_folder
from cswm_lib.provenance import library_hash
from cswm_lib.utils import ArgumentParser, cli_errors, project_root, results_dir, write_json

# The folder holding the runner's own cswm_lib: a chapter's kernel imports the library from here
# (PYTHONPATH), never from whichever checkout an editable install points at. (A plain comment: the
# api page would print its value, a path of this machine.)
LIBRARY_ROOT = Path(__file__).resolve().parent.parent


def save_results(chapter: str, results: dict[str, Any], scale: str | None = None) -> None:
    """Write a chapter's machine-readable results to ``<results dir>/<chapter>/results.json``
    (returns nothing, so a chapter's last cell prints no build path).

    ``scale`` names the parameter set that produced them ("small", "cpu" or "full"). The results
    directory is ``CSWM_RESULTS`` when the papermill runner sets it, else ``_build/results``. The
    file names the hash of the library that computed them (``library_hash``), which the runner
    checks against its own before it records them (:func:`check_library`).
    """
    record = {"chapter": chapter, "scale": scale, "results": portable(results),
              "library_hash": library_hash()}
    write_json(results_dir() / chapter / "results.json", record)


def portable(obj: Any, root: Path | None = None) -> Any:
    """``obj`` with every string that is an absolute path inside the project made relative to the
    project root (``/…/data/x.h5`` -> ``data/x.h5``): results files never name the machine that made
    them."""
    prefix = str(root or project_root()).rstrip("/") + "/"
    if isinstance(obj, str):
        return obj[len(prefix):] if obj.startswith(prefix) else obj
    if isinstance(obj, dict):
        return {k: portable(v, root) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [portable(v, root) for v in obj]
    return obj


def toc_chapters(root: Path | None = None) -> list[Path]:
    """The chapter files listed in ``_toc.yml``, in book order (the intro page excluded)."""
    root = root or project_root()
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    entries: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "file" in node:
                entries.append(node["file"])
            for key in ("chapters", "sections", "parts"):
                for child in node.get(key, []) or []:
                    walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(toc)
    chapters = []
    for entry in entries:
        matches = sorted((root / entry).parent.glob(Path(entry).name + ".*"))
        if not matches:
            raise CswmError(f"_toc.yml lists {entry!r} but no such file exists")
        chapters.append(matches[0])
    return chapters


def to_notebook(chapter: Path, out: Path) -> Path:
    """Convert a jupytext chapter to an ``.ipynb`` file at ``out`` (the parameters tag is kept)."""
    import jupytext

    nb = jupytext.read(chapter)
    out.parent.mkdir(parents=True, exist_ok=True)
    jupytext.write(nb, out, fmt="ipynb")
    return out


def declared_parameters(notebook: Path) -> dict[str, Any]:
    """Names declared in a notebook's ``parameters`` cell (with papermill's inferred info)."""
    import papermill

    return dict(papermill.inspect_notebook(str(notebook)))


def check_defaults(spec: dict[str, Any], book: list[Path], params_file: Path) -> None:
    """Every name in ``defaults`` is a parameter of some chapter (a misspelt one would be dropped)."""
    defaults = set(spec.get("defaults") or {})
    if not defaults:
        return
    declared: set[str] = set()
    for chapter in book:
        if chapter.suffix != ".py":
            continue
        tmp = chapter.parent / f".{chapter.stem}.declared.ipynb"
        try:
            declared |= set(declared_parameters(to_notebook(chapter, tmp)))
        finally:
            tmp.unlink(missing_ok=True)
    unknown = sorted(defaults - declared)
    if unknown:
        raise CswmError(f"parameter file {params_file}: defaults {unknown} are a parameter of no chapter "
                        "(misspelt?)")


def read_json_file(path: Path, what: str, keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """A JSON object from ``path`` holding ``keys`` (a results or stamp file); one line when it is
    damaged (e.g. cut short by a full disk) or of another kind."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CswmError(f"{what} {path} cannot be read ({reason}): delete it and run again") from None
    if not isinstance(obj, dict) or not all(k in obj for k in keys):
        raise CswmError(f"{what} {path} is not one of this library's (expected a JSON object with "
                        f"{list(keys)})")
    return obj


def _library_digest() -> str:
    h = hashlib.sha256()
    for f in sorted(Path(__file__).parent.rglob("*.py")):
        h.update(f.read_bytes())
    return h.hexdigest()


@contextlib.contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """Send this process's stderr file descriptor (inherited by child processes) to ``path``."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def _describe_cell(notebook: Path) -> str:
    """Name the failing cell of an executed notebook as the reader sees it in the chapter: its
    number among the chapter's own cells (cells papermill adds are not counted) and first line."""
    import nbformat

    added = {"injected-parameters", "papermill-error-cell-tag"}
    own = [
        c for c in nbformat.read(notebook, as_version=4).cells if not added & set(c.metadata.get("tags", []))
    ]
    for number, cell in enumerate(own, start=1):
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            first = next((line for line in cell.source.splitlines() if line.strip()), "")
            return f"cell {number} ({first.strip()[:60]!r})"
    return "an unknown cell"


def run_chapter(chapter: Path, params: dict[str, Any], out_dir: Path, force: bool = False) -> str:
    """Execute one chapter with papermill. Returns "ran" or "skipped" (unchanged since last run)."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    stem = chapter.stem
    folder = out_dir / stem
    executed = folder / f"{stem}.ipynb"
    stamp_path = folder / "stamp.json"
    stamp = {
        "chapter": hashlib.sha256(chapter.read_bytes()).hexdigest(),
        "params": params,
        "library": _library_digest(),
    }
    if not force and executed.is_file() and stamp_path.is_file():
        try:  # a damaged stamp (a kill, a full disk) only means the chapter runs again
            same = read_json_file(stamp_path, "stamp") == json.loads(json.dumps(stamp))
        except CswmError:
            same = False
        if same:
            return "skipped"

    folder.mkdir(parents=True, exist_ok=True)
    source = to_notebook(chapter, folder / f".{stem}.input.ipynb")
    declared = declared_parameters(source)
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise CswmError(
            f"chapter {stem}: parameters {unknown} are not in its parameters cell {sorted(declared)}"
        )

    running = folder / f".{stem}.running.ipynb"
    old_results = os.environ.get("CSWM_RESULTS")
    os.environ["CSWM_RESULTS"] = str(out_dir.resolve())
    old_path = os.environ.get("PYTHONPATH")  # the kernel (and its workers) import our cswm_lib
    os.environ["PYTHONPATH"] = os.pathsep.join([str(LIBRARY_ROOT), *([old_path] if old_path else [])])
    backend = os.environ.pop("MPLBACKEND", None)  # a forced backend (e.g. Agg) drops inline figures
    try:
        # The kernel inherits our stderr and chats on it (start-up warnings); keep that in a log so
        # that a failure reads as one line.
        with _stderr_to(folder / "kernel.log"):
            papermill.execute_notebook(
                str(source),
                str(running),
                parameters=params,
                kernel_name="python3",
                cwd=str(chapter.parent),
                progress_bar=False,
                log_output=False,
            )
    except PapermillExecutionError as err:
        failed = folder / f"{stem}.failed.ipynb"
        where = f"cell {err.cell_index}"
        if running.exists():
            os.replace(running, failed)
            where = _describe_cell(failed)
        evalue = str(err.evalue).splitlines()[0] if str(err.evalue) else ""
        raise CswmError(
            f"chapter {stem} failed in {where}: {err.ename}: {evalue} (notebook kept at {failed})"
        ) from None
    finally:
        for name, old in (("CSWM_RESULTS", old_results), ("PYTHONPATH", old_path)):
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old
        if backend is not None:
            os.environ["MPLBACKEND"] = backend
        source.unlink(missing_ok=True)
    os.replace(running, executed)  # only a chapter that ran to the end counts as done
    write_json(stamp_path, stamp)
    return "ran"


def check_library(ran: str | None, chapter: str) -> None:
    """A chapter's results are recorded only when the library that computed them (the ``library_hash``
    its :func:`save_results` wrote) is the runner's own: the record's provenance names the runner's
    commit and library, so a kernel that imported another checkout's ``cswm_lib`` is an error."""
    own = library_hash()
    if ran != own:
        raise CswmError(f"chapter {chapter} computed its results with another cswm_lib (library hash "
                        f"{(ran or 'none')[:12]}) than this runner's ({own[:12]}, in {LIBRARY_ROOT}): "
                        "not recorded")


def chapter_params(spec: dict[str, Any], chapter: Path, executor: str | None = None) -> dict[str, Any]:
    """The values a parameter file gives one chapter: its own section, plus ``scale`` and those
    ``defaults`` the chapter declares. ``executor`` (``--executor``) overrides the file's
    ``executor`` for every chapter that declares one (:func:`cswm_lib.executor.get_executor`)."""
    params: dict[str, Any] = {}
    if "scale" in spec:
        params["scale"] = spec["scale"]
    own = dict(spec.get("chapters", {}).get(chapter.stem) or {})
    defaults = dict(spec.get("defaults") or {})
    if executor is not None:
        own.pop("executor", None)
        defaults["executor"] = executor
    if defaults:
        tmp = chapter.parent / f".{chapter.stem}.declared.ipynb"
        try:
            declared = declared_parameters(to_notebook(chapter, tmp))
        finally:
            tmp.unlink(missing_ok=True)
        params.update({k: v for k, v in defaults.items() if k in declared})
    params.update(own)
    return params


def run(
    params_file: Path,
    out_dir: Path,
    chapters: list[str] | None = None,
    force: bool = False,
    record: bool = False,
    executor: str | None = None,
) -> None:
    """Run the selected chapters (all of ``_toc.yml`` by default) with a parameter file; ``executor``
    names where their sweeps' runs go (``local``, ``local:N``, ``ray``; see :mod:`cswm_lib.executor`).

    A chapter's ``results.json`` gets the command that reproduces it (``command``), its wall time
    (``wall_seconds``) and the machine's load average at the end (``load``); with ``record`` it is
    copied to ``book/results/<scale>/<chapter>.json``, the reference runs the book renders."""
    spec = load_params(params_file)
    output_folder(out_dir, "--out")
    if executor is not None:
        from cswm_lib.executor import parse_executor

        parse_executor(executor)  # a bad name fails here, in one line, before any chapter runs
    book = toc_chapters()
    check_defaults(spec, book, params_file)
    if record:
        from cswm_lib.provenance import git_state

        if git_state(project_root()).get("dirty"):
            raise CswmError("--record needs a committed checkout (declare, then run): commit the "
                            "parameters and the code first, so the record can name them")
    by_stem = {c.stem: c for c in book}
    unknown_sections = sorted(set(spec.get("chapters", {})) - set(by_stem))
    if unknown_sections:
        raise CswmError(f"parameter file {params_file} names chapters not in _toc.yml: {unknown_sections}")
    selected = book
    if chapters:
        missing = [c for c in chapters if c not in by_stem]
        if missing:
            raise CswmError(f"unknown chapter(s) {missing}; chapters in _toc.yml: {sorted(by_stem)}")
        selected = [by_stem[c] for c in chapters]
    for chapter in selected:
        params = chapter_params(spec, chapter, executor)
        start = time.time()
        print(f"[{chapter.stem}] running with {params}", flush=True)
        status = run_chapter(chapter, params, out_dir, force=force)
        took = "" if status == "skipped" else f" in {time.time() - start:.0f} s"
        print(f"[{chapter.stem}] {status}{took} -> {out_dir / chapter.stem}", flush=True)
        results = out_dir / chapter.stem / "results.json"
        if status == "ran" and results.is_file():
            record_ = read_json_file(results, "results file", ("results",))
            check_library(record_.pop("library_hash", None), chapter.stem)
            shown = params_file.resolve()
            if shown.is_relative_to(project_root()):  # the command as typed in the project root
                shown = shown.relative_to(project_root())
            command = "python -m cswm_lib.book run --params " + shown.as_posix()
            command += f" --chapters {chapter.stem}"
            if executor is not None:
                command += f" --executor {executor}"
            from cswm_lib.provenance import declaration, provenance

            where = str(params.get("executor") or "local")
            record_.update(
                command=command,
                wall_seconds=round(time.time() - start, 1),
                load=[round(x, 2) for x in os.getloadavg()],
                cores=os.cpu_count(),
                provenance=provenance(where, threads_per_run=1 if ":" in where or where == "ray" else None),
                declared=declaration(params_file),
            )
            write_json(results, record_)
        if record and results.is_file():
            record_ = read_json_file(results, "results file", ("results",))
            scale = record_.get("scale") or spec.get("scale") or params_file.stem
            scale = scale_name(scale, f"results file {results}")
            target = project_root() / "book" / "results" / scale / f"{chapter.stem}.json"
            write_json(target, record_)
            print(f"[{chapter.stem}] recorded -> {target.relative_to(project_root())}", flush=True)


@cli_errors
def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(prog="python -m cswm_lib.book", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="execute chapters with papermill at the scale of a parameter file")
    p_run.add_argument("--params", type=Path, required=True, help="book/params/cpu.yaml or full.yaml")
    p_run.add_argument("--out", type=Path, default=None, help="output folder (default runs/<scale>)")
    p_run.add_argument("--chapters", nargs="+", default=None, help="chapter stems, e.g. 04_model")
    p_run.add_argument("--force", action="store_true", help="run even if unchanged since the last run")
    p_run.add_argument("--executor", default=None,
                       help="where the sweeps' runs go: local (default), local:N (N processes), ray "
                       "(RAY_ADDRESS names the cluster); overrides the parameter file's executor")
    p_run.add_argument("--record", action="store_true",
                       help="copy each chapter's results.json to book/results/<scale>/ (reference runs)")
    p_res = sub.add_parser("results", help="print (or write into README.md) the recorded results table")
    p_res.add_argument("--readme", action="store_true", help="rewrite the results block of README.md")
    p_res.add_argument("--check", action="store_true",
                       help="fail when a current record lacks provenance, its declaration or run origins")
    p_conv = sub.add_parser("convert", help="convert every chapter in _toc.yml to .ipynb")
    p_conv.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    for key in ("params", "out"):  # relative to where the user stands, not to the project root
        if getattr(args, key, None) is not None:
            setattr(args, key, getattr(args, key).resolve())
    os.chdir(project_root())
    if args.command == "run":
        scale = load_params(args.params).get("scale") or args.params.stem
        out = args.out or Path("runs") / scale_name(scale, f"parameter file {args.params}")
        run(args.params, out, args.chapters, args.force, args.record, args.executor)
    elif args.command == "results" and args.check:
        from cswm_lib.report.results import check_records

        problems = check_records()
        if problems:
            raise CswmError("records without full provenance: " + "; ".join(
                f"{name} lacks {', '.join(missing)}" for name, missing in problems.items()))
        print("every current record has its provenance, declaration and run origins")
    elif args.command == "results":
        from cswm_lib.report import glance_markdown, readme_with_results

        table = glance_markdown()
        if args.readme:
            readme = Path("README.md")
            readme.write_text(readme_with_results(readme.read_text(), table))
        print(table)
    else:
        for chapter in toc_chapters():
            print(to_notebook(chapter, args.out / f"{chapter.stem}.ipynb"))


if __name__ == "__main__":
    sys.exit(main())
