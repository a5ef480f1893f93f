"""The bad-input battery's case list and counts; the cases live in ``tests/bad_inputs/``, one module
per command (generate, train, evaluate, a3c, book, datasets, envs, checkpoints).

Files from others run no code, every bad input gets one line, nothing the user had is lost. Each
case is named by what the user does, and carries the class of failure it guards against
(``common.CLASSES``: traceback, silent_wrong, lost_or_overwritten, code_executed, hang,
misleading_message, missing_option); the test that runs it says what must happen.

``python tests/test_bad_inputs.py`` prints the number of cases per class;
``python tests/test_bad_inputs.py --now [module ...]`` runs the battery (or the named modules of
``tests/bad_inputs/``, e.g. ``test_safety``) and prints per class how many cases pass and fail now,
and the wall time. ``test_battery_covers_every_case`` checks that every registered case is a
parameter of a test.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
MODULES = sorted(p.stem for p in (HERE / "bad_inputs").glob("test_*.py"))
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


def _load() -> tuple[dict[str, str], set[str], dict[str, str]]:
    """Import every battery module: (case -> class, the cases used as test parameters, case -> module)."""
    from bad_inputs.common import CASES

    used: set[str] = set()
    where: dict[str, str] = {}
    for name in MODULES:
        mod = importlib.import_module(f"bad_inputs.{name}")
        for fn in vars(mod).values():
            for mark in getattr(fn, "pytestmark", []):
                if mark.name == "parametrize":
                    for v in mark.args[1]:
                        v = v.values if hasattr(v, "values") else v
                        used.add(v[0] if isinstance(v, tuple) else v)
                        where[v[0] if isinstance(v, tuple) else v] = name
    return dict(CASES), used, where


def test_battery_covers_every_case():
    """Every registered case is a parameter of a test in ``tests/bad_inputs`` (so it ran, and passed)."""
    cases, used, _ = _load()
    assert len(cases) >= 131
    missing = sorted(set(cases) - used)
    assert not missing, f"cases without a test: {missing}"


def counts(now: dict[str, str] | None = None, only: set[str] | None = None) -> dict[str, dict[str, int]]:
    """Cases per class; with ``now`` (case -> "passed"/"failed", from a run of the battery) also how
    many pass (one line, nothing lost or run) and fail now. ``only``: these modules' cases."""
    cases, _, where = _load()
    out: dict[str, dict[str, int]] = {}
    for name, klass in cases.items():
        if only and where.get(name) not in only:
            continue
        row = out.setdefault(klass, {"cases": 0})
        row["cases"] += 1
        if now is not None:
            key = "passing" if now.get(name) == "passed" else "failing"
            row[key] = row.get(key, 0) + 1
    return out


def run_battery(modules: list[str] | None = None) -> dict[str, str]:
    """Run the battery (or these modules of it) under pytest; each case's outcome ("passed" when every
    test using it passed)."""
    cases, _, _ = _load()
    outcomes: dict[str, str] = {}

    class Collect:
        def pytest_runtest_logreport(self, report):
            if "[" in report.nodeid and (report.when == "call" or report.failed):
                name = report.nodeid[report.nodeid.index("[") + 1 : -1]
                if name in cases and outcomes.get(name) != "failed":
                    outcomes[name] = "passed" if report.passed else "failed"

    paths = [str(HERE / "bad_inputs" / f"{m}.py") for m in modules] if modules else [str(HERE / "bad_inputs")]
    pytest.main([*paths, "-q", "-p", "no:cacheprovider"], plugins=[Collect()])
    return outcomes


if __name__ == "__main__":
    import time

    chosen = [a.removesuffix(".py") for a in sys.argv[1:] if not a.startswith("--")]
    if "--now" in sys.argv:  # runs the battery (minutes; the Ctrl-C cases dominate)
        t0 = time.perf_counter()
        result = counts(run_battery(chosen or None), set(chosen) or None)
        total = {k: sum(r.get(k, 0) for r in result.values()) for k in ("cases", "passing", "failing")}
        for klass, row in sorted(result.items()):
            print(f"{klass:22s} {row}")
        print(f"{'all':22s} {total}  wall_seconds={time.perf_counter() - t0:.1f}")
    else:
        for klass, row in sorted(counts(only=set(chosen) or None).items()):
            print(f"{klass:22s} {row}")
