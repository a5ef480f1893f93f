"""The book's tables, as markdown strings built by the project's one formatter
(:func:`cswm_lib.tables.format_table`): result tables (chapters, intro and README), the scores of
one model, the A3C splits, the lift over the no-transition control and when learned dynamics show.
A table function returns its table; the chapter shows it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cswm_lib import vocabulary
from cswm_lib.analysis import gap
from cswm_lib.curves import CurveSet, departure
from cswm_lib.evaluate import NEAREST_START, NO_TRANSITION
from cswm_lib.experiments import select
from cswm_lib.report.results import GLANCE_SETTINGS, history, recorded_results, recorded_verdicts
from cswm_lib.report.verdict_tables import history_table, verdict_table, verdict_table_compact
from cswm_lib.tables import format_table


def _metric(scores: dict[str, Any], metric: str) -> float:
    """``metric`` (``Hits@1``, ``MRR``) of a scores dict of :func:`cswm_lib.evaluate.evaluate`,
    whichever spelling its keys use (:func:`cswm_lib.vocabulary.name`)."""
    return next(v for k, v in scores.items() if vocabulary.name(k) == metric)


def _pct(x: float | None) -> str:
    return "--" if x is None else f"{100 * x:.1f}"

def markdown_table(rows: list[dict[str, Any]]) -> str:
    """Result rows as a markdown table, values in percent: ours (mean +- std over n seeds) next to the
    paper, and a note on what "--" in the paper column means."""
    cells = [
        {
            "experiment": r["experiment"],
            "dataset": r["dataset"],
            "strategy": r["strategy"],
            "setting": r["setting"],
            "num_steps": r["num_steps"],
            "metric": r["metric"],
            "ours (%)": f"{_pct(r['mean'])} ± {_pct(r['std'])}" if r["n_seeds"] > 1 else _pct(r["mean"]),
            "seeds": r["n_seeds"],
            "paper (%)": _pct(r["paper"]),
        }
        for r in rows
    ]
    notes = sorted({r["paper_note"] for r in rows if r["paper"] is None and r["paper_note"]})
    columns = ["experiment", "dataset", "strategy", "setting", "num_steps", "metric"]
    table = format_table(cells, [*columns, "ours (%)", "seeds", "paper (%)"])
    return "\n".join([table] + ([""] + [f"paper --: {n}" for n in notes] if notes else []))

def results_markdown(rows: list[dict[str, Any]], num_steps: int = 1, metric: str = "Hits@1") -> str:
    """The results at a glance (README and intro): one line per (section, dataset, evaluation setting,
    scale) with every negative-sampling strategy's score (mean ± std over seeds, in percent) side by
    side, and the paper's number or "not known to us". Only ``num_steps``-step ``metric`` rows in
    :data:`~cswm_lib.report.results.GLANCE_SETTINGS` are shown; the chapters have the rest."""
    rows = [
        r for r in rows
        if r["num_steps"] == num_steps and r["metric"] == metric and r["setting"] in GLANCE_SETTINGS
    ]
    if not rows:
        return "_No reference run has been recorded yet (see `book/results/`)._"
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["experiment"], r["dataset"], r["setting"], r["scale"]), []).append(r)
    ours_col = "ours: strategy → mean ± std (seeds)"
    eval_col = f"eval ({num_steps}-step {metric})"
    cells = []
    for (experiment, dataset, setting, scale), group in groups.items():
        papers = {f"{100 * r['paper']:.1f}" for r in group if r.get("paper") is not None}
        cells.append({
            "Sec.": experiment,
            "dataset": dataset,
            eval_col: setting,
            ours_col: "; ".join(
                f"{r['strategy']} → {100 * r['mean']:.1f} ± {100 * r['std']:.1f} ({r['n_seeds']})"
                for r in group
            ),
            "scale": scale,
            "paper": ", ".join(sorted(papers)) if papers else "not known to us",
        })
    return format_table(cells, ["Sec.", "dataset", eval_col, ours_col, "scale", "paper"])

def evaluation_table(results: dict[tuple[str, int], dict[str, Any]]) -> str:
    """Scores of :func:`cswm_lib.evaluate.evaluate` keyed ``(setting, L)`` as a markdown table: the
    queries ``N``, candidates per query and Hits@k / MRR in percent."""
    cells = []
    for (setting, num_steps), r in results.items():
        r = {vocabulary.name(k): v for k, v in r.items()}  # metric names as the book spells them
        scores = {k: f"{100 * v:.2f}" for k, v in r.items() if k.startswith("Hits@")}
        cells.append({"setting": setting, "L": num_steps, "N": r["N"], "cands": r["num_candidates"], **scores,
                      "MRR": f"{100 * r['MRR']:.2f}"})
    return format_table(cells)

def hits_by_steps(
    results: dict[tuple[str, int], dict[str, Any]], settings: Sequence[str], metric: str = "Hits@1"
) -> str:
    """``metric`` (%) of :func:`cswm_lib.evaluate.evaluate_settings` results keyed ``(setting, L)`` as a
    markdown table: one row per setting in ``settings``, one column per roll-out length L."""
    steps = list(dict.fromkeys(L for _, L in results))
    return format_table([
        {"setting": setting} | {f"L={L}": f"{100 * _metric(results[setting, L], metric):.2f}" for L in steps}
        for setting in settings
    ])

def split_table(stats: dict[str, dict[str, dict[str, Any]]]) -> str:
    """What the collection of A3C splits kept, from :func:`cswm_lib.a3c.collect.split_stats` per game
    (``{game: stats}``): a markdown table with a row per game and split (episodes kept, attempts
    started, attempts dropped per reason, mean burn-in, distinct start states), then a line per
    pair of splits with the start states and the states anywhere that both hold."""
    from cswm_lib.a3c.collect import DROP_REASONS

    cells, lines = [], []
    for game, by_key in stats.items():
        for key, v in by_key.items():
            if "shared_start" in v:  # a pair of splits
                lines.append(f"{game}, {key.replace('-', ' and ')}: {v['shared_start']} shared start states, "
                             f"{v['shared_any']} shared states anywhere in the episodes")
                continue
            short = game.removesuffix("Deterministic-v4")  # the column is narrow
            cells.append({"game": short, "split": key, "episodes": v["episodes"], "attempts": v["attempts"]}
                         | {r[:3] if r == "duplicate" else r: v[f"dropped_{r}"] for r in DROP_REASONS}
                         | {"burn-in": f"{v['mean_burnin']:.1f}", "starts": v["distinct_starts"]})
    note = ("ended / point / lives / dup: attempts dropped for that reason; burn-in: mean steps; "
            "starts: distinct start states in the split.")
    return "\n\n".join([format_table(cells), note, *(["\n".join(f"- {x}" for x in lines)] if lines else [])])

def standin_table(quality: dict[str, dict[str, Any]]) -> str:
    """How each stand-in burn-in policy plays against random actions, from
    :func:`cswm_lib.a3c.standin.versus_random` per game (``{game: result}``): a row per game and
    player with the games played, the mean return and its t-interval."""
    cells = []
    for game, q in quality.items():
        for side in [k for k in q if isinstance(q[k], dict) and "returns" in q[k]]:
            lo, hi = q[side]["interval"]
            cells.append({"game": game.removesuffix("Deterministic-v4"), "player": side,
                          "games": len(q[side]["returns"]), "mean return": f"{q[side]['mean']:.1f}",
                          f"{100 * q['level']:.0f} % interval": f"[{lo:.1f}, {hi:.1f}]"})
    eps = next(iter(quality.values()))["eps"]
    return format_table(cells) + (f"\n\nThe stand-in plays epsilon-greedily with ε = {eps}, as in the "
                                  "burn-in; random: uniformly random actions.")


def lift(
    rows: list[dict[str, Any]],
    datasets: Sequence[str],
    strategies: Sequence[str],
    settings: Sequence[str],
    local_setting: str = "local_dedup",
) -> tuple[dict[str, dict[str, float]], str]:
    """1-step Hits@1 of every (dataset, strategy) in each of ``settings`` (e.g. a setting and its
    ``_no_transition`` twin), plus ``nearest_start``: the share of ``local_setting`` queries whose
    prediction is nearest the episode's start state, keyed ``"<dataset> | <strategy>"``; and their
    markdown table (percent) for the chapter to show."""
    out: dict[str, dict[str, float]] = {}
    for name in datasets:
        for strategy in strategies:

            def mean(setting: str, metric: str = "Hits@1", name: str = name, strategy: str = strategy
                     ) -> float:
                hit = select(rows, dataset=name, strategy=strategy, setting=setting, num_steps=1,
                             metric=metric)
                return hit[0]["mean"]

            out[f"{name} | {strategy}"] = {m: mean(m) for m in settings} | {
                "nearest_start": mean(local_setting, NEAREST_START)
            }
    # shown as score_table lays it out (fits the text column): a column per setting, a row per model and
    # one below it for its no-transition twin in the same columns
    base = [m for m in settings if not m.endswith(NO_TRANSITION)]
    twins = any(m.endswith(NO_TRANSITION) for m in settings)
    pct = lambda v, m: f"{100 * v[m]:.1f}" if m in v else "--"  # noqa: E731
    cells = []
    for key, v in out.items():
        dataset, strategy = key.split(" | ")
        for predictor, suffix in [("model", "")] + ([("no_transition", NO_TRANSITION)] if twins else []):
            cells.append({"dataset": dataset, "strategy": strategy}
                         | ({"predictor": predictor} if twins else {})
                         | {m: pct(v, m + suffix) for m in base}
                         | {NEAREST_START: pct(v, "nearest_start") if not suffix else "--"})
    return out, (format_table(cells) + "\n\n1-step Hits@1 (%), mean over seeds; "
                 f"{NEAREST_START}: share of {local_setting} queries nearest the start state.")

def signs(
    rows: list[dict[str, Any]],
    datasets: Sequence[str],
    new: str,
    settings: Sequence[str],
    base: str = "baseline",
) -> tuple[dict[str, dict[str, float]], str]:
    """:func:`cswm_lib.analysis.gap` of ``new`` over ``base`` (1-step Hits@1) for every dataset and
    setting, and their markdown table with whether each has the paper's sign (the seed spread is the
    yardstick for noise), for the chapter to show."""
    out, cells = {}, []
    for name in datasets:
        for setting in settings:
            g = out[f"{name} | {setting}"] = gap(rows, name, new, base, setting=setting)
            verdict = (
                "paper's sign" if g["diff"] > 0 else ("no difference" if g["diff"] == 0 else "OPPOSITE sign")
            )
            cells.append({
                "dataset": name, "setting": setting, base: f"{100 * g['base']:.1f}",
                new: f"{100 * g['new']:.1f}",
                "diff": f"{100 * g['diff']:+.1f}",
                "ratio": f"{g['new'] / g['base']:.2f}" if g["base"] > 0 else "--",
                "spread": f"{100 * g['pooled_std']:.1f}", "verdict": verdict,
            })
    return out, (format_table(cells) + f"\n\n1-step Hits@1 (%), mean over seeds; diff: {new} − {base}; "
                 "spread: pooled std over seeds (the yardstick for noise).")

def score_table(
    rows: list[dict[str, Any]],
    settings: Sequence[str],
    num_steps: int = 1,
    metric: str = "Hits@1",
    start_setting: str | None = "local_dedup",
) -> str:
    """Compact markdown pivot of result rows that fits the text column: one column per evaluation
    setting (``metric`` at ``num_steps``, mean ± std over seeds in %), one row per (dataset, strategy)
    for the trained model and, when ``settings`` holds ``<setting>_no_transition`` twins, a row below it
    for its no-transition control (the same encoder, :math:`\\hat z_L = z_0`) in the same columns;
    plus the share of predictions nearest the start state (``nearest_start`` of ``start_setting``). A
    line under the table says what the numbers are and how many seeds they pool; a line above it names
    the eval set's size when every row gives the same ``eval_episodes``."""

    def cell(dataset: str, strategy: str, setting: str, m: str) -> str:
        hit = [r for r in rows if (r["dataset"], r["strategy"], r["setting"], r["num_steps"], r["metric"])
               == (dataset, strategy, setting, num_steps, m)]
        return f"{100 * hit[0]['mean']:.1f} ± {100 * hit[0]['std']:.1f}" if hit else "--"

    base = [m for m in settings if not m.endswith(NO_TRANSITION)]
    base += [m[: -len(NO_TRANSITION)] for m in settings if m.endswith(NO_TRANSITION)
             and m[: -len(NO_TRANSITION)] not in base]  # a control whose setting is not asked for
    controls = any(m.endswith(NO_TRANSITION) for m in settings)
    asked = set(settings)
    cols = ["dataset", "strategy", *(["predictor"] if controls else []), *base,
            *([NEAREST_START] if start_setting else [])]
    cells = []
    for dataset, strategy in dict.fromkeys((r["dataset"], r["strategy"]) for r in rows):
        predictors = [("model", "")] + ([("no_transition", NO_TRANSITION)] if controls else [])
        for predictor, suffix in predictors:
            row = {"dataset": dataset, "strategy": strategy, "predictor": predictor}
            row |= {m: cell(dataset, strategy, m + suffix, metric) if m + suffix in asked else "--"
                    for m in base}
            if start_setting:
                row[NEAREST_START] = cell(dataset, strategy, start_setting + suffix, NEAREST_START)
            cells.append(row)
    seeds = sorted({r["n_seeds"] for r in rows if r["num_steps"] == num_steps and r["metric"] == metric})
    n = " or ".join(str(s) for s in seeds) or "?"
    note = (f"{num_steps}-step {metric} (%), mean ± std over {n} seed(s)"
            + ("; no_transition: the same encoder predicting $\\hat z_L = z_0$" if controls else "")
            + (f"; {NEAREST_START}: share of {start_setting} queries nearest the start state $o_0$"
               if start_setting else "") + ".")
    sizes = {r.get("eval_episodes") for r in rows} - {None}
    head = f"On {sizes.pop()} eval episodes:\n\n" if len(sizes) == 1 else ""
    return head + format_table(cells, cols) + "\n\n" + note

def departure_markdown(
    curves: CurveSet,
    strategies: Sequence[str] | None = None,
    setting: str = "local_dedup",
    margin: float = 0.05,
) -> str:
    """When learned dynamics show, as a markdown list: per dataset of ``curves`` (``{dataset:
    curve_table}``) and strategy in ``strategies`` (default: every strategy with curves), the
    :func:`~cswm_lib.curves.departure` from its no-transition control (1-step Hits@1 of ``setting``, mean
    over seeds, by
    more than ``margin``), or that there is none within the updates the strategy's curves reach."""
    lines = []
    for name, runs in curves.items():
        said = []
        for strategy in strategies or runs:
            at = departure(runs, strategy, setting=setting, margin=margin)
            last = max(max(s["updates"]) for s in runs[strategy].values())
            said.append(f"{strategy} rises above its no-transition control (by more than {100 * margin:.0f} "
                        f"points, mean over seeds) at {at} updates" if at is not None else
                        f"{strategy} does not rise above its no-transition control within {last} updates")
        lines.append(f"* {name}: " + "; ".join(said) + ".")
    return "\n".join(lines)

def budget_markdown(
    curves: CurveSet,
    strategy: str,
    seconds_per_update: Callable[[str], float],
    setting: str = "local_dedup",
    margin: float = 0.05,
) -> str:
    """What budget a world whose ``strategy`` never left its no-transition control would need at
    least, as markdown lines: the updates the *slowest seed* of a world that did leave it needed
    (per-seed :func:`~cswm_lib.curves.departure`; a lower bound, since the harder world may need more),
    and what that
    costs per run and for all runs at ``seconds_per_update(world)`` (measured, one core; called only
    for the worlds that need the estimate). Empty when every world left its control, or none did (no
    yardstick)."""
    def seed_departures(runs: dict[str, dict[str, list]]) -> list[int | None]:
        return [departure({strategy: {s: c}}, strategy, setting=setting, margin=margin)
                for s, c in runs.items()]

    left = {name: seed_departures(runs[strategy]) for name, runs in curves.items() if strategy in runs}
    done = {name: max(d) for name, d in left.items() if d and None not in d}
    if not done:
        return ""
    ref, need = max(done.items(), key=lambda kv: kv[1])
    lines = []
    for name, d in left.items():
        if all(x is None for x in d):
            seconds = seconds_per_update(name)
            per_run = need * seconds
            runs = sum(len(r) for r in curves[name].values())
            lines.append(f"* {name}: at least the {need:,} updates the slowest seed of {ref} needed; at "
                         f"{seconds:.2f} s per update (one core, measured here) that is "
                         f"{per_run / 60:.0f} min per run, {runs * per_run / 3600:.1f} h for its {runs} "
                         "runs.")
    return "\n".join(lines)

def run_summary(record: dict[str, Any], width: int = 80) -> str:
    """A few lines (each at most ``width`` characters, so they fit the book's text column) on a
    recorded run (``book/results/<scale>/<chapter>.json``): scale, the command that produced it
    (continued with ``\\`` where it is longer), wall time, machine load and the run's note."""
    import textwrap

    command = record.get("command") or "command not recorded"
    lines = [f"recorded {record.get('scale')} run, made by:"]
    lines += [line + " \\" for line in textwrap.wrap(command, width - 6, break_long_words=False,
                                                        break_on_hyphens=False)]
    lines[-1] = lines[-1].removesuffix(" \\")
    lines[1:] = ["    " + line for line in lines[1:]]
    wall, load = record.get("wall_seconds"), record.get("load")
    facts = (f"{wall / 60:.0f} min wall for that invocation (runs it found finished are not counted)"
             if wall else "")
    facts += (f" on {record.get('cores')} cores, load average {load[0]:.1f}" if load else "")
    for text in (facts.strip(), record.get("note") or ""):
        lines += textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False)
    return "\n".join(lines)

def glance_markdown(folder: Path | None = None, compact: bool = False) -> str:
    """The "Results at a glance" block of the README and the intro:
    :func:`~cswm_lib.report.verdict_tables.verdict_table` of every
    recorded verdict, one row per claim and dataset; recorded runs without verdicts (recorded before
    verdicts existed) follow as their :func:`results_markdown` rows. ``compact``: the narrow table of
    :func:`~cswm_lib.report.verdict_tables.verdict_table_compact` (the book's intro, whose text column
    holds no ten-column table)."""
    verdicts, without = recorded_verdicts(folder)
    table = verdict_table_compact(verdicts) if compact else verdict_table(verdicts)
    earlier = history(folder=folder)
    if earlier:
        table += "\n\nEarlier sweeps, kept as recorded:\n\n" + history_table(earlier)
    if without:
        rows = [r for r in recorded_results(folder) if r["source"] in without]
        table += "\n\nRecorded without a verdict (" + ", ".join(f"`{w}`" for w in without) + "):\n\n"
        table += results_markdown(rows)
    return table


def slot_lengths_text(lengths: dict[str, list[float]], seed: int) -> str:
    """The path length of every slot (:func:`cswm_lib.analysis.slot_lengths`) as aligned lines, one
    per (dataset, strategy), under a line naming the episode and the seed."""
    width = max(len(key) for key in lengths)
    lines = [f"path length per slot over training episode 0 (model of seed {seed}):"]
    lines += [f"{key.replace(' | ', ', '):{width}s}  " + " ".join(f"{x:6.2f}" for x in v)
              for key, v in lengths.items()]
    return "\n".join(lines)
