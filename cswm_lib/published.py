"""Published numbers (C-SWM's Table 1), typed once in ``published.yaml`` with their source.

::

    from cswm_lib import published
    published.entries()          # one dict per published number, with its source
    published.table()            # markdown: a row per world x model, Hits@1/MRR at 1/5/10 steps
    published.missing()          # what could not be found, per paper

Values are kept in percent as printed; :func:`value` returns a fraction (the library's unit), so a
chapter can set a published score beside ours. A number that is not in the file is ``None``, never 0.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import yaml

from cswm_lib.errors import CswmError

WORLDS = {"shapes": "2D Shapes", "cubes": "3D Cubes", "pong": "Atari Pong", "spaceinvaders": "Space Invaders"}
METRICS = ("Hits@1", "MRR")
NUM_STEPS = (1, 5, 10)
#: How a table or row of these numbers is labelled wherever the book shows them.
LABEL = "published (Kipf et al. 2020, Table 1)"


@functools.cache
def _data() -> dict[str, Any]:
    text = resources.files("cswm_lib").joinpath("published.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    for e in data["entries"]:
        if e["source"] not in data["sources"]:
            raise CswmError(f"published.yaml: entry {e} names an unknown source {e['source']!r}")
        if e["world"] not in WORLDS or e["metric"] not in METRICS or e["num_steps"] not in NUM_STEPS:
            raise CswmError(f"published.yaml: entry {e} has an unknown world, metric or num_steps")
    return data


def entries() -> list[dict[str, Any]]:
    """Every published number: ``world, model, metric, num_steps, percent`` and its ``source``
    (a dict: ``kind``, ``title``, ``url``, ``note`` and the ``paper`` it quotes)."""
    data = _data()
    return [{**e, "source": {"id": e["source"], **data["sources"][e["source"]]}} for e in data["entries"]]


def value(world: str, metric: str = "Hits@1", num_steps: int = 1, model: str = "C-SWM") -> float | None:
    """The published score as a fraction (0..1), or ``None`` where the number is not known."""
    for e in _data()["entries"]:
        if (e["world"], e["model"], e["metric"], e["num_steps"]) == (world, model, metric, num_steps):
            return round(e["percent"] / 100, 6)
    return None


def citation(world: str, model: str = "C-SWM") -> str:
    """One line naming where the published numbers of ``world``/``model`` come from, for a note
    under a table that shows them (``""`` when none is known)."""
    kinds = {e["source"]["kind"] for e in entries() if (e["world"], e["model"]) == (world, model)}
    if not kinds:
        return ""
    paper = papers()["kipf2020"]
    line = f"{LABEL}: {paper['venue']}, {paper['url']}"
    if "secondary" in kinds:
        line += "; quoted from a secondary source, not yet checked against the paper's table"
    return line + "."


def missing() -> dict[str, str]:
    """Per paper key (``kipf2020``, ``biza2021``): what could not be found, and why."""
    return dict(_data()["missing"])


def papers() -> dict[str, dict[str, Any]]:
    """Per paper key: citation key, title, authors, venue and url."""
    return dict(_data()["papers"])


def table(empty: str = "--") -> str:
    """Markdown table labelled :data:`LABEL`: a row per (world, model), C-SWM for every world and a
    baseline where it has a published number; columns Hits@1 and MRR at 1, 5 and 10 steps (percent).
    ``empty`` marks a number not known to us, a dagger one quoted from a secondary source; the notes
    under the table name the paper and say what is missing."""
    from cswm_lib.report import format_table  # (top floor; imported when a table is drawn)

    columns = ["world", "model"] + [f"{m} ({n})" for m in METRICS for n in NUM_STEPS]
    cells = {(w, "C-SWM"): {} for w in WORLDS}
    secondary = False
    for e in entries():
        mark = "\N{DAGGER}" if e["source"]["kind"] == "secondary" else ""
        secondary |= bool(mark)
        cells.setdefault((e["world"], e["model"]), {})[f"{e['metric']} ({e['num_steps']})"] = (
            f"{e['percent']:.1f}{mark}"
        )
    order = list(WORLDS)
    rows = [
        {"world": WORLDS[w], "model": m, **{c: got.get(c, empty) for c in columns[2:]}}
        for (w, m), got in sorted(cells.items(), key=lambda kv: (order.index(kv[0][0]), kv[0][1] != "C-SWM"))
    ]
    paper = papers()["kipf2020"]
    notes = [f"{paper['authors']}: *{paper['title']}*, {paper['venue']} ({paper['url']}), "
             "columns: metric (num_steps), in %."]
    if secondary:
        notes.append("\N{DAGGER} quoted from a secondary source, not yet checked against the paper's table.")
    notes.append(f"{empty} not found in a citable source (the project's published-numbers file says why).")
    return "\n".join([f"**{LABEL}**", "", format_table(rows, columns), "", "  \n".join(notes)])
