"""Results files: the recorded reference runs under ``book/results/<scale>/<chapter>.json`` (read
for the README, the intro and the chapters' Verdict sections) and the README's results block."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cswm_lib.errors import CswmError
from cswm_lib.utils import project_root
from cswm_lib.vocabulary import modernise


def load_record(path: Path) -> dict[str, Any]:
    """One recorded results file, in today's names: records written before the book named each
    concept once (other field names for the strategy and the evaluation setting, display labels for
    strategies, older setting and metric names) are read through
    :func:`cswm_lib.vocabulary.modernise`, so they keep working, and keep their provenance, unchanged
    on disk. Every reader of ``book/results/`` uses this loader."""
    return modernise(json.loads(Path(path).read_text()))


#: The scores a results-at-a-glance table shows (the paper's ranking settings and the local score).
GLANCE_SETTINGS = ("global", "global_dedup", "batched_dedup", "local_dedup")

README_MARKERS = ("<!-- results:start -->", "<!-- results:end -->")

def recorded_results(folder: Path | None = None) -> list[dict[str, Any]]:
    """Rows of every results table recorded under ``book/results/<scale>/<chapter>.json``.

    These files are the ``results.json`` of reference runs (``cpu`` or ``full`` scale) kept in the
    repository; the README and the intro show them. Each row has the keys ``experiment``,
    ``dataset``, ``strategy``, ``setting``, ``num_steps``, ``metric``, ``mean``, ``std``, ``n_seeds``,
    ``scale``, ``paper`` and ``paper_note``.
    """
    folder = folder or project_root() / "book" / "results"
    rows: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*/*.json")):
        record = load_record(path)
        for row in record.get("results", {}).get("table", []):
            rows.append({"scale": record.get("scale"), **row, "source": path.relative_to(folder).as_posix()})
    return rows

def recorded(chapter: str, scale: str = "cpu", folder: Path | None = None) -> dict[str, Any] | None:
    """The recorded reference run ``book/results/<scale>/<chapter>.json`` (its ``results.json``:
    ``scale``, ``results``, ``command``, ``wall_seconds``, ``load``), or None when none is recorded."""
    path = (folder or project_root() / "book" / "results") / scale / f"{chapter}.json"
    return load_record(path) if path.is_file() else None

def reference_run(
    chapter: str, scale: str, verdict_scale: str = "cpu", folder: Path | None = None
) -> dict[str, Any] | None:
    """The recorded reference run a chapter's Verdict section shows (:func:`recorded` at
    ``verdict_scale``), or None: when this run is itself at that scale, when none is recorded, or
    when the recorded one holds no verdicts (recorded before verdicts existed)."""
    ref = recorded(chapter, verdict_scale, folder) if scale != verdict_scale else None
    return ref if ref and "verdicts" in ref.get("results", {}) else None

def readme_with_results(readme: str, table: str) -> str:
    """``readme`` with the text between the results markers replaced by ``table``."""
    start, end = README_MARKERS
    if start not in readme or end not in readme:
        raise CswmError(f"README.md has no {start} ... {end} block to write the results table into")
    head, rest = readme.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{table}\n{end}{tail}"

def history(chapter: str | None = None, folder: Path | None = None) -> list[tuple[str, dict[str, Any]]]:
    """Earlier records, kept as they were made in
    ``book/results/<scale>/history/<chapter>.<date>T<time>.<commit>.json`` (the commit that added
    them, and its date): every sweep recorded before the current one, including those that came out
    inconclusive, and the records made before provenance and the declared rule. Read through
    :func:`load_record`; returns ``[(file name, record)]``, oldest first (the names sort by date)."""
    folder = folder or project_root() / "book" / "results"
    paths = sorted(folder.glob(f"*/history/{chapter or '*'}.*.json"))
    return [(p.relative_to(folder).as_posix(), load_record(p)) for p in paths]


def recorded_verdicts(folder: Path | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """The verdicts of every recorded reference run (``book/results/<scale>/<chapter>.json``), and the
    names of recorded runs that hold none (recorded before verdicts existed)."""
    folder = folder or project_root() / "book" / "results"
    verdicts, without = [], []
    for path in sorted(folder.glob("*/*.json")):
        record = load_record(path)
        found = record.get("results", {}).get("verdicts")
        if found:
            verdicts += found
        else:
            without.append(path.relative_to(folder).as_posix())
    return verdicts, without


#: What every current record (``book/results/<scale>/<chapter>.json``, history excepted) must hold.
RECORD_FIELDS = ("chapter", "scale", "command", "wall_seconds", "load", "provenance", "declared", "results")


def check_record(record: dict[str, Any]) -> list[str]:
    """What a current record lacks: its top-level fields (:data:`RECORD_FIELDS`), every provenance
    field (:data:`cswm_lib.provenance.FIELDS`), a clean committed declaration, and for a record with
    verdicts, the origin of every run and verdicts of the declared rule."""
    from cswm_lib.provenance import FIELDS

    missing = [f for f in RECORD_FIELDS if f not in record]
    prov = record.get("provenance") or {}
    missing += [f"provenance.{f}" for f in FIELDS if f not in prov]
    if prov and (prov.get("commit") is None or prov.get("dirty") is not False):
        missing.append("provenance.commit of a clean checkout")
    declared = record.get("declared") or {}
    if declared and (declared.get("params_commit") is None or declared.get("params_dirty") is not False):
        missing.append("declared.params committed before the run")
    results = record.get("results") or {}
    if results.get("verdicts"):
        if not results.get("runs"):
            missing.append("results.runs (trained / resumed / reused per run)")
        if any("rule" not in v for v in results["verdicts"]):
            missing.append("verdicts of the declared rule (cswm_lib.verdict)")
    return missing


def check_records(folder: Path | None = None) -> dict[str, list[str]]:
    """:func:`check_record` of every current record under ``book/results/<scale>/`` (the
    ``history/`` folders hold earlier records as they were made and are not checked)."""
    folder = folder or project_root() / "book" / "results"
    problems = {}
    for path in sorted(folder.glob("*/*.json")):
        missing = check_record(load_record(path))
        if missing:
            problems[path.relative_to(folder).as_posix()] = missing
    return problems
