"""Append-only JSON-lines files (``log.jsonl``, ``curve.jsonl``, the A3C curve): one reader for all.

A process killed while appending leaves its last line cut short. :func:`read_jsonl` drops such a
torn LAST line, says so once on stderr, and returns the rows before it, so the next run resumes; a
writer that appends afterwards first rewrites the file without it (:func:`rewrite_jsonl`). A line
that is not JSON anywhere else means the file was damaged some other way: a one-line
:class:`~cswm_lib.CswmError` naming the file and the line.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from cswm_lib.errors import CswmError

_warned: set[tuple[str, int]] = set()


def read_jsonl(path: str | os.PathLike, what: str = "log") -> list[dict[str, Any]]:
    """The rows of a JSON-lines file (one dict per line, oldest first); see the module docstring.

    ``what`` names the file in messages (e.g. ``"training log"``)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CswmError(f"cannot read the {what} {path}: {err.strerror or err}") from None
    lines = data.split(b"\n")
    complete = data.endswith(b"\n") or not data
    rows: list[dict[str, Any]] = []
    for i, raw in enumerate(lines):
        if not raw.strip():
            continue
        last = i == len(lines) - 1 or all(not x.strip() for x in lines[i + 1:])
        try:
            row = json.loads(raw)
            if not isinstance(row, dict):
                raise ValueError(f"a {type(row).__name__}, not an object")
        except (ValueError, UnicodeDecodeError) as err:
            if last and not complete:  # cut mid-line by a kill: drop it, say so once
                key = (str(path.resolve()), len(data))
                if key not in _warned:
                    _warned.add(key)
                    print(f"note: {path}: dropped a torn last line ({len(raw)} bytes, written when a run "
                          "was killed); continuing from the line before", file=sys.stderr)
                break
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise CswmError(f"{path} line {i + 1} is not a JSON object ({reason}): the {what} is damaged; "
                            "delete the line or the file") from None
        rows.append(row)
    return rows


def rewrite_jsonl(path: str | os.PathLike, rows: list[dict[str, Any]]) -> None:
    """Replace ``path`` atomically with ``rows`` (e.g. before appending to a file with a torn end)."""
    from cswm_lib.utils import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
