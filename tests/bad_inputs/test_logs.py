"""Append-only logs (curve.jsonl, log.jsonl) that a kill cut mid-line: the reader drops a torn LAST
line, says so once and the run goes on; a torn line anywhere else is one line naming the file and
line. The file itself is not touched by reading it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .common import api_refused, case, snapshot, unchanged

ROWS = [{"updates": 0, "records": []}, {"updates": 10, "records": []}]


def _write(path: Path, rows, tail: str = "") -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + tail)
    return path


CASES = [
    pytest.param(
        case(n := "read a learning curve whose last line a kill tore", "traceback"), "curve", "last", id=n
    ),
    pytest.param(case(n := "read a learning curve torn in the middle", "traceback"), "curve", "middle", id=n),
    pytest.param(
        case(n := "read a training log whose last line a kill tore", "traceback"),
        "log",
        "last",
        id=n,
    ),
    pytest.param(
        case(n := "read a training log torn in the middle", "traceback"),
        "log",
        "middle",
        id=n,
    ),
]


@pytest.mark.parametrize(("name", "kind", "where"), CASES)
def test_a_torn_log_line_is_dropped_at_the_end_and_one_line_elsewhere(name, kind, where, tmp_path, capsys):
    from cswm_lib.curves import read_curve
    from cswm_lib.train import read_log

    path = tmp_path / ("curve.jsonl" if kind == "curve" else "log.jsonl")
    read = read_curve if kind == "curve" else read_log
    if where == "last":
        _write(path, ROWS, '{"updates": 20, "rec')
        before = snapshot(tmp_path)
        assert read(tmp_path) == ROWS and read(tmp_path) == ROWS
        assert capsys.readouterr().err.count("torn last line") == 1  # said once
    else:
        path.write_text(json.dumps(ROWS[0]) + "\n" + '{"updates": 5, "rec\n' + json.dumps(ROWS[1]) + "\n")
        before = snapshot(tmp_path)
        api_refused(lambda: read(tmp_path), path.name, "line 2")
    unchanged(before, tmp_path)
