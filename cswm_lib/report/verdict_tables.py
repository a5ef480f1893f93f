"""How verdicts read: tables and paragraphs of :func:`cswm_lib.verdict.verdict` results."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

NO_VERDICT = "_No verdict has been recorded at this scale yet (see `book/results/`)._"


def pct(s: dict[str, Any] | None, seeds: bool = True) -> str:
    """``mean ± std (every seed)`` in % of a :func:`cswm_lib.verdict.summary`."""
    if not s:
        return "--"
    every = " (" + ", ".join(f"{100 * x:.1f}" for x in s["seeds"].values()) + ")" if seeds else ""
    return f"{100 * s['mean']:.1f} ± {100 * s['std']:.1f}{every}"


def effect_text(v: dict[str, Any]) -> str:
    """The effect with its interval and p-value: ``+50.8 [+33.1, +68.5], p = 0.031`` (points) or
    ``x2.10 [x1.62, x2.72], p = 0.031`` (ratio)."""
    e = v["effect"]
    if e["mean"] is None:
        return "--"
    ratio = e["scale"] == "ratio"
    one = (lambda x: f"x{x:.2f}") if ratio else (lambda x: f"{100 * x:+.1f}")
    interval = f" [{one(e['interval'][0])}, {one(e['interval'][1])}]" if e["interval"] else ""
    return f"{one(e['mean'])}{interval}, p = {e['p']:.3f}"


def controls_text(v: dict[str, Any], strategy: str, seeds: bool = False, std: bool = True) -> str:
    """Each control of ``strategy``: ``no_transition 61.8 ± 0.0; untrained 12.0 ± 3.1`` (without
    ``std``: the means only, ``no_transition 61.8; untrained 12.0``)."""
    found = v["controls"].get(strategy) or {}
    parts = [f"{name.removeprefix(v['setting'] + '_')} "
             + (pct(s, seeds) if std else f"{100 * s['mean']:.1f}") for name, s in found.items()]
    return "; ".join(parts) or "--"


def budget_text(v: dict[str, Any]) -> str:
    parts = [f"{v['updates']} updates × {v['batch_size']}" if v.get("updates") else "",
             v.get("data") or "", f"{v['scale']} scale" if v.get("scale") else ""]
    return "; ".join(p for p in parts if p)


def verdict_table(verdicts: Sequence[dict[str, Any]], link: str = "") -> str:
    """Markdown table, one row per claim and dataset: the score, both strategies (mean ± std and
    every seed, %), both strategies' controls, both strategies in the paper's own setting, the effect
    with its t-interval and exact p-value, the budget and the verdict with its reason."""
    if not verdicts:
        return NO_VERDICT
    lines = ["| Sec. | dataset | score | baseline | new strategy | controls (baseline / new) "
             "| paper's settings (baseline / new) | effect [95 % t-interval], p | budget | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for v in verdicts:
        paper = "; ".join(f"{p}: {pct(x[v['base']], False)} / {pct(x[v['new']], False)}"
                          for p, x in (v.get("paper_score") or {}).items()) or "--"
        lines.append(
            f"| {v['experiment']} | {v['dataset']} | {v['score']} | {v['base']}: {pct(v['base_score'])} "
            f"| {v['new']}: {pct(v['new_score'])} "
            f"| {controls_text(v, v['base'])} / {controls_text(v, v['new'])} | {paper} "
            f"| {effect_text(v)} | {budget_text(v)} | **{v['verdict']}**: {v['why']} |")
    return "\n".join(lines)


def verdict_table_compact(verdicts: Sequence[dict[str, Any]]) -> str:
    """:func:`verdict_table` narrowed to the book's text column: means only (the chapters give every
    seed), both strategies' controls, the effect, the verdict; each section links to the Verdict
    section of its chapter (the intro's table)."""
    from cswm_lib.tables import format_table
    from cswm_lib.verdict import CLAIMS

    def section(v: dict[str, Any]) -> str:  # a link to the chapter's Verdict section
        claim = CLAIMS.get(v["experiment"])
        href = f"chapters/{claim.chapter}.html#verdict" if claim else ""  # raw HTML: a page link
        return f'<a href="{href}">{v["experiment"]}</a>' if claim else v["experiment"]

    def wrappable(text: str) -> str:  # long setting names (local_later_dedup) may break after a _
        return text.replace("_", "_<wbr>")

    if not verdicts:
        return NO_VERDICT
    return format_table([{
        "Sec.": section(v), "dataset": v["dataset"], "score": wrappable(v["score"]),
        "baseline": pct(v["base_score"], False),
        "new": wrappable(f"{v['new']}: {pct(v['new_score'], False)}"),
        "controls (base / new)": wrappable(f"{controls_text(v, v['base'], std=False)} / "
                                           f"{controls_text(v, v['new'], std=False)}"),
        "effect, p": effect_text(v),
        "verdict": f"**{v['verdict']}** ({v.get('scale', '?')} scale, {v.get('updates', '?')} updates)",
    } for v in verdicts])


def verdict_markdown(verdicts: Sequence[dict[str, Any]]) -> str:
    """One short paragraph per verdict (a chapter's Verdict section): the outcome and why, both
    strategies with every seed, both strategies' controls, the paper's setting, the effect with its
    interval and p-value, the declared rule and the budget."""
    out = []
    for v in verdicts:
        rule, e = v["rule"], v["effect"]
        ratio = rule["claim"] == "multiplies"
        unit = f"x{rule['min_effect']}" if ratio else f"{100 * rule['min_effect']:.0f} points"
        paper = "".join(f" In the paper's own setting {p}: {v['new']} {pct(x[v['new']])}, {v['base']} "
                        f"{pct(x[v['base']])}." for p, x in (v.get("paper_score") or {}).items())
        out.append(
            f"**{v['dataset']}: {v['verdict']}** -- {v['why']}. {v['score']} (%), mean ± std (every "
            f"seed): {v['new']} {pct(v['new_score'])}, {v['base']} {pct(v['base_score'])}. Controls "
            f"(a trivial predictor, same candidates): {v['new']}: {controls_text(v, v['new'], True)}; "
            f"{v['base']}: {controls_text(v, v['base'], True)}.{paper} Effect ({e['scale']}, "
            f"{e['n']} seeds paired): {effect_text(v)}. Rule: the claim needs an effect of at least "
            f"{unit} with the {rule['level']:.0%} interval above it and p < {rule['alpha']}. Budget: "
            f"{budget_text(v) or '?'}.")
    return "\n\n".join(out)


def history_table(records: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """Earlier sweeps (:func:`cswm_lib.report.results.history`), one row per dataset of each: the
    commit that recorded it (its file is ``history/<chapter>.<date>.<commit>.json``, every seed inside), the
    budget, both strategies' means and the outcome it recorded under the rule of its time
    (superseded: it said "reproduced" for a positive difference on every seed and labelled [min, max]
    of 3 seeds a 95 % bootstrap interval)."""
    from cswm_lib.tables import format_table
    from cswm_lib.verdict import CLAIMS

    sections = {c.chapter: c.section for c in CLAIMS.values()}
    rows = []
    for name, record in records:
        sweep = name.rsplit(".", 2)[-2]
        section = sections.get(name.rsplit("/", 1)[-1].split(".")[0], "?")
        results = record.get("results", {})
        for v in results.get("verdicts", []):
            rows.append({"Sec.": section, "sweep": sweep, "dataset": v["dataset"],
                         "updates": f"{v.get('updates')} × {v.get('batch_size')}",
                         "seeds": len(v["new_score"]["seeds"]), "baseline": pct(v["base_score"], False),
                         "new": f"{v['new']}: {pct(v['new_score'], False)}", "outcome then": v["verdict"]})
        if not results.get("verdicts"):  # recorded before verdicts: its budget, and no outcome
            for dataset, spec in results.get("specs", {}).items():
                budget = (f"{spec['num_updates']} × {spec['batch_size']}" if spec.get("num_updates")
                          else f"{spec.get('epochs')} epochs × {spec.get('batch_size')}")
                rows.append({"Sec.": section, "sweep": sweep, "dataset": dataset, "updates": budget,
                             "seeds": len(spec.get("seeds", [])), "baseline": "", "new": "",
                             "outcome then": "no verdict (recorded before verdicts)"})
    if not rows:
        return "_No earlier sweep is recorded._"
    return format_table(rows) + ("\n\nOutcomes under the rule of their time, which this book no longer "
                                 "uses; every seed is in the sweep's file under `book/results/<scale>/"
                                 "history/`.")
