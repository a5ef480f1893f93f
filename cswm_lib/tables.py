"""The project's one markdown table formatter and its display, on the ground floor: low modules
(a dataset's summary, the evaluation command line) and the report package both use it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def format_table(rows: list[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Rows (dicts of already formatted values) as a markdown table with one column per name in
    ``columns`` (default: the first row's keys); a value missing from a row is an empty cell. The
    project's one table formatter: every table of the book, the README and the evaluation command
    line goes through it."""
    columns = list(columns if columns is not None else (rows[0] if rows else []))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def show_markdown(text: str) -> None:
    """Show markdown (a table) rendered in a notebook, as plain text elsewhere: a table printed as
    text in a notebook would reach the page as raw ``| ... |`` lines."""
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
    except ImportError:  # pragma: no cover - IPython comes with the notebook tools
        print(text)
        return
    if get_ipython() is None:
        print(text)
    else:
        display(Markdown(text))
