"""Running the book's chapters: results files, and the papermill runner (``python -m cswm_lib.book``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cswm_lib.utils import results_dir, write_json


def save_results(chapter: str, results: dict[str, Any], scale: str | None = None) -> Path:
    """Write a chapter's machine-readable results to ``<results dir>/<chapter>/results.json``.

    ``scale`` names the parameter set that produced them ("small", "cpu" or "full"). The results
    directory is ``CSWM_RESULTS`` when the papermill runner sets it, else ``_build/results``.
    """
    path = results_dir() / chapter / "results.json"
    write_json(path, {"chapter": chapter, "scale": scale, "results": results})
    return path
