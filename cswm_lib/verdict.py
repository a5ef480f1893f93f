"""Statistics and verdicts on the paper's claims, from per-seed scores: a bootstrap interval over
seeds, the verdict on one claim by the rule declared before the run, and its tables and paragraphs.

Inputs are the per-seed records of :func:`cswm_lib.experiments.evaluate_all`; the chapters show
the results through :func:`cswm_lib.report.show_verdict`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cswm_lib.errors import CswmError
from cswm_lib.evaluate import NO_TRANSITION
from cswm_lib.tables import format_table


def _seed_values(records: list[dict[str, Any]], label: str, mode: str, num_steps: int, metric: str,
                 dataset: str | None = None) -> dict[int, float]:
    return {
        int(r["seed"]): float(r["value"])
        for r in records
        if r["negatives"] == label and r["mode"] == mode and r["num_steps"] == num_steps
        and r["metric"] == metric and (dataset is None or r.get("dataset", dataset) == dataset)
    }

def bootstrap_interval(values: Sequence[float], n: int = 10_000, level: float = 0.95, seed: int = 0
                       ) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (resampled with replacement)."""
    v = np.asarray(values, dtype=float)
    means = v[np.random.default_rng(seed).integers(0, len(v), (n, len(v)))].mean(1)
    return float(np.quantile(means, (1 - level) / 2)), float(np.quantile(means, (1 + level) / 2))

def verdict(
    records: list[dict[str, Any]],
    claim: str,
    experiment: str,
    dataset: str,
    new: str,
    base: str = "baseline",
    mode: str = "local_dedup",
    num_steps: int = 1,
    metric: str = "Hits@1",
    updates: int | None = None,
    batch_size: int | None = None,
    data: str = "",
    scale: str = "",
    chance: float | None = None,
) -> dict[str, Any]:
    """The verdict on one claim "``new`` scores higher than ``base``" from per-seed ``records``
    (:func:`cswm_lib.experiments.evaluate_all`: ``negatives``, ``seed``, ``mode``, ``num_steps``,
    ``metric``, ``value``).

    Evidence: every seed of both strategies, their no-transition controls (``<mode>_no_transition``), the
    paired difference per seed with a bootstrap interval over seeds. The rule:

    - **inconclusive** when ``new`` does not beat its own no-transition control on every seed (no
      learned dynamics to compare), when it is at or below ``chance`` on some seed (the score a
      random guess gets, e.g. 1/11 for a local score over 11 states: a control of 0 is beaten by
      any guess), or when the seeds disagree on the sign of the difference;
    - **reproduced** when ``new - base`` is > 0 on every seed;
    - **not reproduced** when it is <= 0 on every seed.
    """
    v = {lab: _seed_values(records, lab, mode, num_steps, metric) for lab in (base, new)}
    c = {lab: _seed_values(records, lab, f"{mode}{NO_TRANSITION}", num_steps, metric) for lab in (base, new)}
    seeds = sorted(set(v[base]) & set(v[new]))
    if not seeds:
        raise CswmError(f"no seed has both {base!r} and {new!r} scores for {mode}/{num_steps}/{metric}")
    diff = [v[new][s] - v[base][s] for s in seeds]
    lift = {s: v[new][s] - c[new].get(s, np.nan) for s in seeds}
    lo, hi = bootstrap_interval(diff)
    short = f"{num_steps}-step {mode} {metric}"
    if not all(x > 0 for x in lift.values()):
        bad = [s for s, x in lift.items() if not x > 0]
        outcome = "inconclusive"
        why = (f"{new} does not beat its own no-transition control on seed(s) {bad}: "
               "no learned dynamics to compare")
    elif chance is not None and not all(v[new][s] > chance for s in seeds):
        bad = [s for s in seeds if not v[new][s] > chance]
        outcome = "inconclusive"
        why = (f"{new} is at or below chance ({100 * chance:.1f} %) on seed(s) {bad}: "
               "no learned dynamics to compare")
    elif all(d > 0 for d in diff):
        outcome, why = "reproduced", f"{new} > {base} on every seed ({len(seeds)} of {len(seeds)})"
    elif all(d <= 0 for d in diff):
        outcome, why = "not reproduced", f"{new} <= {base} on every seed ({len(seeds)} of {len(seeds)})"
    else:
        outcome = "inconclusive"
        why = f"seeds disagree: {sum(d > 0 for d in diff)} of {len(seeds)} have {new} > {base}"

    def summary(d: dict[int, float]) -> dict[str, Any]:
        x = np.array([d[s] for s in seeds if s in d])
        return {"mean": float(x.mean()), "std": float(x.std(ddof=1)) if len(x) > 1 else 0.0,
                "seeds": {str(s): d[s] for s in seeds if s in d}}

    return {
        "claim": claim, "experiment": experiment, "dataset": dataset, "score": short,
        "base": base, "new": new, "scale": scale, "updates": updates, "batch_size": batch_size,
        "data": data, "chance": chance,
        "base_score": summary(v[base]), "new_score": summary(v[new]),
        "base_control": summary(c[base]) if c[base] else None,
        "new_control": summary(c[new]) if c[new] else None,
        "diff": {"mean": float(np.mean(diff)), "interval95": [lo, hi]},
        "verdict": outcome, "why": why,
    }

def _score(s: dict[str, Any] | None, seeds: bool = True) -> str:
    if s is None:
        return "--"
    every = " (" + ", ".join(f"{100 * x:.1f}" for x in s["seeds"].values()) + ")" if seeds else ""
    return f"{100 * s['mean']:.1f} ± {100 * s['std']:.1f}{every}"

def verdict_table(verdicts: Sequence[dict[str, Any]]) -> str:
    """Markdown table of :func:`verdict` results, one row per claim and dataset: the score, both
    strategies (mean ± std and every seed, %), the new strategy's no-transition control, the
    difference with its bootstrap interval, the budget, and the verdict with its reason."""
    if not verdicts:
        return "_No verdict has been recorded yet (see `book/results/`)._"
    lines = [
        "| Sec. | claim | dataset | score | baseline | new strategy | its no-transition control "
        "| new − baseline [95% bootstrap] | budget | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for v in verdicts:
        lo, hi = v["diff"]["interval95"]
        budget = f"{v['updates']} updates × {v['batch_size']}" if v.get("updates") else ""
        budget = "; ".join(x for x in (budget, v.get("data"), v.get("scale") and f"{v['scale']} scale") if x)
        lines.append(
            f"| {v['experiment']} | {v['claim']} | {v['dataset']} | {v['score']} "
            f"| {v['base']}: {_score(v['base_score'])} | {v['new']}: {_score(v['new_score'])} "
            f"| {_score(v['new_control'])} "
            f"| {100 * v['diff']['mean']:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}] | {budget} "
            f"| **{v['verdict']}**: {v['why']} |"
        )
    return "\n".join(lines)

def verdict_table_compact(verdicts: Sequence[dict[str, Any]]) -> str:
    """:func:`verdict_table` narrowed to fit the book's text column: mean ± std over seeds only (the
    chapters give every seed), the reason left to the chapters, the claim named by its section."""
    if not verdicts:
        return "_No verdict has been recorded yet (see `book/results/`)._"
    cells = [{
        "Sec.": v["experiment"], "dataset": v["dataset"], "score": v["score"],
        "baseline": _score(v["base_score"], seeds=False),
        "new strategy": f"{v['new']}: {_score(v['new_score'], seeds=False)}",
        "its control": _score(v["new_control"], seeds=False),
        "new − baseline": f"{100 * v['diff']['mean']:+.1f} [{100 * v['diff']['interval95'][0]:+.1f}, "
                          f"{100 * v['diff']['interval95'][1]:+.1f}]",
        "verdict": f"**{v['verdict']}** ({v.get('updates', '?')} updates, {v.get('scale', '?')})",
    } for v in verdicts]
    return format_table(cells)

def verdict_markdown(verdicts: Sequence[dict[str, Any]]) -> str:
    """:func:`verdict` results as one short paragraph each (for a chapter's Verdict section): the
    outcome, both strategies with every seed, the no-transition control, the difference with its
    bootstrap interval over seeds, the budget, and why."""
    out = []
    for v in verdicts:
        lo, hi = v["diff"]["interval95"]
        budget = f"{v['updates']} updates of {v['batch_size']}" if v.get("updates") else "?"
        out.append(
            f"**{v['dataset']}: {v['verdict']}.** {v['score']} (%), mean ± std (every seed): "
            f"{v['new']} {_score(v['new_score'])}, {v['base']} {_score(v['base_score'])}; "
            f"no-transition control of {v['new']} {_score(v['new_control'])}. "
            f"Difference {100 * v['diff']['mean']:+.1f} points (95 % bootstrap interval over seeds "
            f"[{100 * lo:+.1f}, {100 * hi:+.1f}]). Budget: {budget} per run on {v.get('data') or '?'} "
            f"({v.get('scale') or '?'} scale). Why: {v['why']}."
        )
    return "\n\n".join(out)
