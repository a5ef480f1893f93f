"""Every table and figure of the book: result tables (chapters, intro and README), score plots,
training curves, latent trajectories and the local/global distance view.

Tables are markdown strings built by the project's one table formatter, :func:`format_table`;
figures are matplotlib (imported when a figure is drawn). Inputs are the result rows of
:mod:`cswm_lib.experiments` (``select`` filters them) and the measurements of :mod:`cswm_lib.analysis`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cswm_lib.a3c.agent import read_curve
from cswm_lib.analysis import gap, slot_motion
from cswm_lib.checkpoint import load_model
from cswm_lib.data.episodes import Episodes
from cswm_lib.errors import CswmError
from cswm_lib.evaluate import NO_TRANSITION, embed_paths
from cswm_lib.experiments import START_METRIC, select
from cswm_lib.tables import format_table, show_markdown
from cswm_lib.train import read_log
from cswm_lib.utils import get_device, project_root

# ------------------------------------------------------------------------------------------ tables


def _pct(x: float | None) -> str:
    return "--" if x is None else f"{100 * x:.1f}"


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """Result rows as a markdown table, values in percent: ours (mean +- std over n seeds) next to the
    paper, and a note on what "--" in the paper column means."""
    cells = [
        {
            "experiment": r["experiment"],
            "dataset": r["dataset"],
            "negatives": r["negatives"],
            "mode": r["mode"],
            "steps": r["num_steps"],
            "metric": r["metric"],
            "ours (%)": f"{_pct(r['mean'])} ± {_pct(r['std'])}" if r["n_seeds"] > 1 else _pct(r["mean"]),
            "seeds": r["n_seeds"],
            "paper (%)": _pct(r["paper"]),
        }
        for r in rows
    ]
    notes = sorted({r["paper_note"] for r in rows if r["paper"] is None and r["paper_note"]})
    columns = ["experiment", "dataset", "negatives", "mode", "steps", "metric"]
    table = format_table(cells, [*columns, "ours (%)", "seeds", "paper (%)"])
    return "\n".join([table] + ([""] + [f"paper --: {n}" for n in notes] if notes else []))


#: The scores a results-at-a-glance table shows (the paper's ranking modes and the local score).
GLANCE_MODES = ("global", "dedup", "batched_dedup", "local_dedup")
README_MARKERS = ("<!-- results:start -->", "<!-- results:end -->")


def recorded_results(folder: Path | None = None) -> list[dict[str, Any]]:
    """Rows of every results table recorded under ``book/results/<scale>/<chapter>.json``.

    These files are the ``results.json`` of reference runs (``cpu`` or ``full`` scale) kept in the
    repository; the README and the intro show them. Each row has the keys ``experiment``,
    ``dataset``, ``negatives``, ``mode``, ``num_steps``, ``metric``, ``mean``, ``std``, ``n_seeds``,
    ``scale``, ``paper`` and ``paper_note``.
    """
    folder = folder or project_root() / "book" / "results"
    rows: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*/*.json")):
        record = json.loads(path.read_text())
        for row in record.get("results", {}).get("table", []):
            rows.append({"scale": record.get("scale"), **row, "source": path.relative_to(folder).as_posix()})
    return rows


def results_markdown(rows: list[dict[str, Any]], num_steps: int = 1, metric: str = "Hits@1") -> str:
    """The results at a glance (README and intro): one line per (section, dataset, evaluation mode,
    scale) with every negative-sampling strategy's score (mean ± std over seeds, in percent) side by
    side, and the paper's number or "not known to us". Only ``num_steps``-step ``metric`` rows in
    :data:`GLANCE_MODES` are shown; the chapters have the rest."""
    rows = [
        r for r in rows if r["num_steps"] == num_steps and r["metric"] == metric and r["mode"] in GLANCE_MODES
    ]
    if not rows:
        return "_No reference run has been recorded yet (see `book/results/`)._"
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["experiment"], r["dataset"], r["mode"], r["scale"]), []).append(r)
    ours_col = "ours: negatives → mean ± std (seeds)"
    eval_col = f"eval ({num_steps}-step {metric})"
    cells = []
    for (experiment, dataset, mode, scale), group in groups.items():
        papers = {f"{100 * r['paper']:.1f}" for r in group if r.get("paper") is not None}
        cells.append({
            "Sec.": experiment,
            "dataset": dataset,
            eval_col: mode,
            ours_col: "; ".join(
                f"{r['negatives']} → {100 * r['mean']:.1f} ± {100 * r['std']:.1f} ({r['n_seeds']})"
                for r in group
            ),
            "scale": scale,
            "paper": ", ".join(sorted(papers)) if papers else "not known to us",
        })
    return format_table(cells, ["Sec.", "dataset", eval_col, ours_col, "scale", "paper"])


def recorded(chapter: str, scale: str = "cpu", folder: Path | None = None) -> dict[str, Any] | None:
    """The recorded reference run ``book/results/<scale>/<chapter>.json`` (its ``results.json``:
    ``scale``, ``results``, ``command``, ``wall_seconds``, ``load``), or None when none is recorded."""
    path = (folder or project_root() / "book" / "results") / scale / f"{chapter}.json"
    return json.loads(path.read_text()) if path.is_file() else None


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


def evaluation_table(results: dict[tuple[str, int], dict[str, Any]]) -> str:
    """Scores of :func:`cswm_lib.evaluate.evaluate` keyed ``(setting, L)`` as a markdown table: the
    queries ``N``, candidates per query and Hits@k / MRR in percent."""
    cells = []
    for (label, steps), r in results.items():
        scores = {f"H@{k.split('@')[1]}": f"{100 * v:.2f}" for k, v in r.items() if k.startswith("hits@")}
        cells.append({"setting": label, "L": steps, "N": r["N"], "cands": r["num_candidates"], **scores,
                      "MRR": f"{100 * r['mrr']:.2f}"})
    return format_table(cells)


def hits_by_steps(
    results: dict[tuple[str, int], dict[str, Any]], settings: Sequence[str], metric: str = "hits@1"
) -> str:
    """``metric`` (%) of :func:`cswm_lib.evaluate.evaluate_modes` results keyed ``(setting, L)`` as a
    markdown table: one row per setting in ``settings``, one column per roll-out length L."""
    steps = list(dict.fromkeys(L for _, L in results))
    return format_table([
        {"setting": label} | {f"L={L}": f"{100 * results[label, L][metric]:.2f}" for L in steps}
        for label in settings
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


def lift(
    rows: list[dict[str, Any]],
    datasets: Sequence[str],
    strategies: Sequence[str],
    modes: Sequence[str],
    local_mode: str = "local_dedup",
) -> dict[str, dict[str, float]]:
    """1-step Hits@1 of every (dataset, strategy) in each of ``modes`` (e.g. a mode and its
    ``_no_transition`` twin), plus ``local_argmin_o0``: the share of ``local_mode`` queries whose
    prediction is nearest the episode's start state. Shown as a table (percent, :func:`show_markdown`); keys
    ``"<dataset> | <strategy>"``."""
    out: dict[str, dict[str, float]] = {}
    for name in datasets:
        for label in strategies:

            def mean(mode: str, metric: str = "Hits@1", name: str = name, label: str = label) -> float:
                hit = select(rows, dataset=name, negatives=label, mode=mode, num_steps=1, metric=metric)
                return hit[0]["mean"]

            out[f"{name} | {label}"] = {m: mean(m) for m in modes} | {
                "local_argmin_o0": mean(local_mode, START_METRIC)
            }
    # shown as score_table lays it out (fits the text column): a column per mode, a row per model and
    # one below it for its no-transition twin in the same columns
    base = [m for m in modes if not m.endswith(NO_TRANSITION)]
    twins = any(m.endswith(NO_TRANSITION) for m in modes)
    pct = lambda v, m: f"{100 * v[m]:.1f}" if m in v else "--"  # noqa: E731
    cells = []
    for key, v in out.items():
        dataset, label = key.split(" | ")
        for predictor, suffix in [("model", "")] + ([("no_transition", NO_TRANSITION)] if twins else []):
            cells.append({"dataset": dataset, "negatives": label}
                         | ({"predictor": predictor} if twins else {})
                         | {m: pct(v, m + suffix) for m in base}
                         | {START_METRIC: pct(v, "local_argmin_o0") if not suffix else "--"})
    show_markdown(format_table(cells) + "\n\n1-step Hits@1 (%), mean over seeds; "
                  f"{START_METRIC}: share of {local_mode} queries nearest the start state.")
    return out


def signs(
    rows: list[dict[str, Any]],
    datasets: Sequence[str],
    new: str,
    modes: Sequence[str],
    base: str = "baseline",
) -> dict[str, dict[str, float]]:
    """:func:`cswm_lib.analysis.gap` of ``new`` over ``base`` (1-step Hits@1) for every dataset and
    mode, shown as a table (:func:`show_markdown`) with whether it has the paper's sign; the seed
    spread is the yardstick for noise."""
    out, cells = {}, []
    for name in datasets:
        for mode in modes:
            g = out[f"{name} | {mode}"] = gap(rows, name, new, base, mode=mode)
            verdict = (
                "paper's sign" if g["diff"] > 0 else ("no difference" if g["diff"] == 0 else "OPPOSITE sign")
            )
            cells.append({
                "dataset": name, "mode": mode, base: f"{100 * g['base']:.1f}", new: f"{100 * g['new']:.1f}",
                "diff": f"{100 * g['diff']:+.1f}",
                "ratio": f"{g['new'] / g['base']:.2f}" if g["base"] > 0 else "--",
                "spread": f"{100 * g['pooled_std']:.1f}", "verdict": verdict,
            })
    show_markdown(format_table(cells) + f"\n\n1-step Hits@1 (%), mean over seeds; diff: {new} − {base}; "
                  "spread: pooled std over seeds (the yardstick for noise).")
    return out


# ----------------------------------------------------------------------------------------- figures


def plot_steps(
    rows: list[dict[str, Any]],
    datasets: Sequence[str],
    strategies: Sequence[str],
    modes: Sequence[str],
    chance: dict[str, float] | None = None,
    names: dict[str, str] | None = None,
) -> Any:
    """Hits@1 (mean ± std over seeds, %) against the roll-out length L, one panel per mode: every
    (dataset, strategy) series has its own colour, and each dataset its own line style and marker
    (solid/o, dashed/s, dotted/^, ...), so no two series look alike. ``chance``
    (fraction per mode) adds a dotted chance line; ``names`` renames modes on the axis."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(modes), figsize=(min(7.5, 3.75 * len(modes)), 3.2), squeeze=False)
    for ax, mode in zip(axes[0], modes, strict=True):
        for d, name in enumerate(datasets):
            for i, label in enumerate(strategies):
                r = select(rows, dataset=name, negatives=label, mode=mode, metric="Hits@1")
                ax.errorbar(
                    [x["num_steps"] for x in r],
                    [100 * x["mean"] for x in r],
                    [100 * x["std"] for x in r],
                    marker="os^Dv"[d % 5],
                    capsize=3,
                    color=f"C{(d * len(strategies) + i) % 10}",
                    ls=["-", "--", ":", "-."][d % 4],
                    label=f"{name}, {label}",
                )
        if chance and mode in chance:
            ax.axhline(100 * chance[mode], color="grey", lw=0.8, ls=":")
            ax.set_ylim(bottom=0)
        ax.set_xlabel("latent steps L")
        ax.xaxis.get_major_locator().set_params(integer=True)  # L is a whole number of steps
        ax.set_ylabel(f"Hits@1 (%), {(names or {}).get(mode, mode)}")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=7, frameon=False)  # outside the data
    fig.tight_layout(rect=(0, min(0.5, 0.07 * (1 + (len(labels) + 1) // 2)), 1, 1))
    return fig


def plot_settings(results: dict[tuple[str, int], dict[str, Any]], metric: str = "hits@1") -> Any:
    """``metric`` (%) of one model in every evaluation setting: a group of bars per setting, one bar
    (own colour and hatch) per roll-out length L, from :func:`cswm_lib.evaluate.evaluate_modes`
    results keyed ``(setting, L)``. Returns the figure (7.5 in wide)."""
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(label for label, _ in results))
    steps = list(dict.fromkeys(L for _, L in results))
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    width = 0.8 / len(steps)
    for i, L in enumerate(steps):
        ax.bar(np.arange(len(labels)) + i * width, [100 * results[lb, L][metric] for lb in labels], width,
               color=f"C{i}", hatch=["", "//", "..", "xx"][i % 4], edgecolor="k", lw=0.4,
               label=f"{L} step(s)")
    ax.set_xticks(np.arange(len(labels)) + width * (len(steps) - 1) / 2, labels, rotation=35, ha="right",
                  fontsize=8)
    ax.set_ylabel(f"{metric.replace('hits', 'Hits')} (%)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_candidates(sweep: dict[int, dict[int, dict[str, float]]]) -> Any:
    """Hits@1 and MRR (%) against the number of candidates per query B (log axis), one line (own
    colour, style and marker) per roll-out length L, and the chance level 1/B; ``sweep`` is
    ``{L: scores_by_batch_size(...)}`` (:func:`cswm_lib.evaluate.scores_by_batch_size`)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(7.5, 3), sharex=True)
    for i, (steps, by_size) in enumerate(sweep.items()):
        for ax, key in zip(axes, ("hits@1", "mrr"), strict=True):
            ax.plot(list(by_size), [100 * r[key] for r in by_size.values()], marker="os^Dv"[i % 5],
                    ls=_STYLES[i % len(_STYLES)], color=f"C{i}", label=f"{steps} step(s)")
    sizes = np.array(sorted({b for by_size in sweep.values() for b in by_size}), dtype=float)
    axes[0].plot(sizes, 100 / sizes, "k:", label="chance (1/B)")
    for ax, name in zip(axes, ("Hits@1 (%)", "MRR (%)"), strict=True):
        ax.set_xscale("log")
        ax.set_xlabel("candidates per query (batch size B)")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_negatives(
    frames: np.ndarray,
    positive: tuple[int, int],
    drawn: dict[str, Any],
    num_show: int,
    member: int = 0,
    channels: slice = slice(0, 3),
    with_next: bool = True,
    caption: Callable[[int, int], str] | None = None,
) -> Any:
    """The negatives each strategy drew for one positive, as pictures: one row per strategy of
    ``drawn`` (``{strategy: Negatives}``, :func:`cswm_lib.negatives.sample_negatives`) with the
    positive's frame ``o_t`` (``positive = (episode, step)``; with ``with_next`` also ``o_{t+1}``),
    then the first ``num_show`` negatives of batch member ``member``, each titled with its episode
    and step and ``caption(e, t)`` when given. ``frames`` uint8 ``[E, T+1, C, H, W]``; ``channels``
    picks the RGB frame (``slice(3, 6)``: the current one of a stacked Atari observation)."""
    import matplotlib.pyplot as plt

    lead = 2 if with_next else 1
    cols = lead + num_show
    fig, axes = plt.subplots(len(drawn), cols, figsize=(min(7.5, 1.5 * cols), 1.75 * len(drawn)),
                             squeeze=False)

    def show(ax: Any, e: int, t: int, title: str) -> None:
        ax.imshow(frames[e, t, channels].transpose(1, 2, 0))
        ax.set_title(title, fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])

    e0, t0 = positive
    for row, (strategy, neg) in enumerate(drawn.items()):
        show(axes[row, 0], e0, t0, f"$o_t$ (e={e0}, t={t0})")
        if with_next:
            show(axes[row, 1], e0, t0 + 1, "$o_{t+1}$")
        axes[row, 0].set_ylabel(strategy, fontsize=9)
        for n in range(num_show):
            e, t = int(neg.episode[member, n]), int(neg.step[member, n])
            show(axes[row, lead + n], e, t, f"e={e}, t={t}" + (f"\n{caption(e, t)}" if caption else ""))
    fig.tight_layout()
    return fig


def plot_bars(
    rows: list[dict[str, Any]],
    ax: Any,
    metric: str = "Hits@1",
    num_steps: int = 1,
    modes: Sequence[str] | None = None,
) -> Any:
    """Grouped bars (one group per dataset x mode, one bar per strategy) with +-std error bars."""
    rows = select(rows, metric=metric, num_steps=num_steps)
    if modes is not None:
        rows = select(rows, mode=list(modes))
    groups = list(dict.fromkeys((r["dataset"], r["mode"]) for r in rows))
    labels = list(dict.fromkeys(r["negatives"] for r in rows))
    width = 0.8 / max(1, len(labels))
    for i, label in enumerate(labels):
        mean, std = [], []
        for d, m in groups:
            hit = select(rows, dataset=d, mode=m, negatives=label)
            mean.append(100 * hit[0]["mean"] if hit else np.nan)
            std.append(100 * hit[0]["std"] if hit else 0.0)
        ax.bar(np.arange(len(groups)) + i * width, mean, width, yerr=std, capsize=3, label=label)
    ax.set_xticks(
        np.arange(len(groups)) + width * (len(labels) - 1) / 2, [f"{d}\n{m}" for d, m in groups], fontsize=8
    )
    ax.set_ylabel(f"{metric} (%), {num_steps} step(s)")
    ax.legend(fontsize=8)
    return ax


def plot_losses(folders: dict[tuple[str, int], Path], ax: Any, key: str = "loss") -> Any:
    """Training curves (``key`` of ``log.jsonl`` per epoch), one colour per strategy, one line per seed."""
    colours: dict[str, str] = {}
    for (label, _seed), folder in folders.items():
        log = read_log(folder)
        first = label not in colours
        c = colours.setdefault(label, f"C{len(colours)}")
        ax.plot(
            [r["epoch"] for r in log],
            [r[key] for r in log],
            color=c,
            alpha=0.8,
            label=label if first else None,
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"training {key}")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    return ax


def plot_loss_grid(folders: dict[str, dict[tuple[str, int], Path]]) -> Any:
    """One :func:`plot_losses` panel per experiment, side by side; returns the figure."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(folders), figsize=(4.5 * len(folders), 3), squeeze=False)
    for ax, (name, f) in zip(axes[0], folders.items(), strict=True):
        plot_losses(f, ax)
        ax.set_title(name, fontsize=9)
    fig.tight_layout()
    return fig


def plot_trajectories(
    z: np.ndarray,
    ax: Any,
    title: str = "",
    dims: tuple[int, int] = (0, 1),
    names: Sequence[str] | None = None,
) -> Any:
    """Plot each object slot's path through latent dims ``dims`` over an episode (``z [T+1, K, D]``):
    a line per slot, a circle at the start and a cross at the end."""
    for k in range(z.shape[1]):
        x, y = z[:, k, dims[0]], z[:, k, dims[1]]
        line = ax.plot(x, y, "-", alpha=0.7, label=names[k] if names else f"slot {k}")[0]
        ax.plot(x[0], y[0], "o", color=line.get_color())
        ax.plot(x[-1], y[-1], "x", color=line.get_color())
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(f"z[{dims[0]}]")
    ax.set_ylabel(f"z[{dims[1]}]")
    return ax


def plot_transition(
    z: np.ndarray, prediction: np.ndarray, target: np.ndarray, index: int, ax: Any = None, title: str = ""
) -> Any:
    """Object embeddings of a batch of states in the plane (``z [B, K, 2]``), one colour per slot,
    and one transition ``index`` on top: an arrow per slot from its state ``z_t`` to its prediction
    ``z_t + Delta`` (``prediction [B, K, 2]``), and the encoded next state (``target``) as a cross."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(5.5, 5))[1]
    colours = plt.cm.tab10(np.arange(z.shape[1]) % 10)
    for k in range(z.shape[1]):
        ax.scatter(z[:, k, 0], z[:, k, 1], s=6, color=colours[k], alpha=0.5, label=f"slot {k}")
    for k in range(z.shape[1]):
        ax.annotate("", xy=prediction[index, k].tolist(), xytext=z[index, k].tolist(),
                    arrowprops=dict(arrowstyle="->", lw=1.5))
        ax.scatter(*target[index, k].tolist(), marker="x", color="k", s=40)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, markerscale=2)
    return ax


def plot_slot_grid(
    data: dict[str, tuple[Episodes, Episodes]],
    folders: dict[str, dict[tuple[str, int], Path]],
    strategies: Sequence[str],
    seed: int,
    device: str | torch.device | None = None,
) -> tuple[Any, dict[str, list[float]]]:
    """Object-slot trajectories over training episode 0 (:func:`plot_trajectories`), one panel per
    (dataset, strategy) for the model of ``seed``, and each slot's path length
    (:func:`cswm_lib.analysis.slot_motion`). Returns ``(figure, {"<dataset> | <strategy>": lengths})``."""
    import matplotlib.pyplot as plt

    motion = {}
    size = (min(7.5, 3.75 * len(strategies)), 3.4 * len(data))
    fig, axes = plt.subplots(len(data), len(strategies), figsize=size)
    axes = np.asarray(axes).reshape(len(data), len(strategies))
    for row, (name, (train_set, _)) in enumerate(data.items()):
        for col, label in enumerate(strategies):
            model = load_model(folders[name][label, seed], get_device(device))
            emb = embed_paths(model, train_set, all_states=True, num_episodes=1, progress=False)
            z = emb["states"][0].numpy()
            motion[f"{name} | {label}"] = [round(float(x), 2) for x in slot_motion(z)]
            plot_trajectories(z, axes[row, col], f"{name}\n{label}")
    width = max(len(key) for key in motion)
    print(f"path length per slot over training episode 0 (model of seed {seed}):")
    for key, lengths in motion.items():
        print(f"{key.replace(' | ', ', '):{width}s}  " + " ".join(f"{x:6.2f}" for x in lengths))
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return fig, motion


def plot_local_global(view: dict[str, Any], ax_local: Any, ax_global: Any, title: str = "") -> None:
    """Draw a :func:`cswm_lib.analysis.local_global_view`: the distances to the episode's states
    (target, states with the target's id and the nearest one marked) and the batch's sorted distances
    with the true pair."""
    local, L, best = view["local_distances"], view["num_steps"], view["nearest_t"]
    ax_local.plot(range(len(local)), local, "o-", color="C0")
    ax_local.plot(L, local[L], "o", color="red", ms=9, label="target $z_L$")
    if view["same_state"]:
        dup = view["same_state"]
        ax_local.plot(dup, local[dup], "s", mfc="none", mec="red", ms=11, label="same id as target")
    ax_local.plot(best, local[best], "k*", ms=12, label="nearest")
    ax_local.set_xticks(range(len(local)))
    ax_local.set_xlabel("state $t$ of the episode", fontsize=8)
    ax_local.set_ylabel(r"$\|\hat z_L - z_t\|^2$", fontsize=8)
    ax_local.set_title(f"{title} -- local: nearest t={best}, target t={L}", fontsize=8)
    ax_local.legend(fontsize=7)
    glob, own, rank = view["global_distances"], view["global_index"], view["global_rank"]
    ax_global.plot(range(1, len(glob) + 1), np.sort(glob, kind="stable"), "o", color="C0", ms=4)
    ax_global.plot(rank, glob[own], "o", color="red", ms=7)
    ax_global.set_xticks(range(1, len(glob) + 1, max(1, len(glob) // 5)))
    ax_global.set_xlabel("rank in the batch", fontsize=8)
    ax_global.set_ylabel(r"$\|z_L - \hat z^{(j)}_L\|^2$", fontsize=8)
    ax_global.set_title(f"global: rank {rank} of {len(glob)}", fontsize=8)


def plot_cube_crops(scene: np.ndarray) -> Any:
    """A Cubes state ``scene [K, 2]`` three ways: the whole 640 x 480 matplotlib canvas with our crop
    (``CUBE_CROP`` of :mod:`cswm_lib.envs.block_pushing`, cyan) and the original's (gold), our 50 x 50
    frame, and the frame in the original's framing. Returns the figure."""
    import matplotlib.pyplot as plt

    from cswm_lib.envs import block_pushing as bp

    fig, axes = plt.subplots(1, 3, figsize=(7.5, 2.6))
    axes[0].imshow(bp.render_cube_canvas(scene))
    for crop, color, label in ((bp.CUBE_CROP, "cyan", "ours"), (bp.ORIGINAL_CUBE_CROP, "gold", "original")):
        (r0, r1), (c0, c1) = (crop[0].start, crop[0].stop), (crop[1].start, crop[1].stop)
        axes[0].add_patch(plt.Rectangle((c0, r0), c1 - c0, r1 - r0, fill=False, color=color, lw=1.5,
                                        label=label))
    axes[0].legend(fontsize=7, loc="upper right")
    frames = (bp.render_cubes(scene), bp.render_cubes_matplotlib(scene, framing="original"))
    for ax, img in zip(axes[1:], frames, strict=True):
        ax.imshow(img.transpose(1, 2, 0))
    for ax, title in zip(axes, ("640 x 480 canvas", "our frame", "original framing"), strict=True):
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_episode_frames(
    episodes: Episodes,
    episode: int = 0,
    highlight: int | None = None,
    actions: bool = False,
    title: str = "",
    channels: slice = slice(3, 6),
) -> Any:
    """The T + 1 frames of one episode side by side, ``t`` above each (with ``actions`` also the
    action taken after it; step ``highlight`` in red). ``channels`` picks the RGB frame: by default
    the current screen of a stacked (previous, current) Atari observation. Returns the figure."""
    import matplotlib.pyplot as plt

    T1 = episodes.episode_length + 1
    fig, axes = plt.subplots(1, T1, figsize=(7.5, 1.3 if actions else 1.1), squeeze=False)
    for t, ax in enumerate(axes[0]):
        ax.imshow(episodes.frames[episode, t, channels].transpose(1, 2, 0))
        label = f"t={t}" + (f"\na={episodes.actions[episode, t]}" if actions and t < T1 - 1 else "")
        ax.set_title(label, fontsize=7, color="red" if t == highlight else "black")
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def plot_local_global_grid(views: dict[str, dict[str, Any]], title: str = "") -> Any:
    """One row per model of ``views`` (``{label: cswm_lib.analysis.local_global_view(...)}``, all of
    one query): its local distances (wide, left) and its global distances (right), drawn by
    :func:`plot_local_global`. Returns the figure (7.5 in wide)."""
    import matplotlib.pyplot as plt

    T1 = len(next(iter(views.values()))["local_distances"])
    # constrained layout: tight_layout could not fit the right panel's labels into a 1-column gap
    fig = plt.figure(figsize=(7.5, 2.4 * len(views)), layout="constrained")
    grid = fig.add_gridspec(len(views), 2, width_ratios=[T1, 4])
    for row, (label, view) in enumerate(views.items()):
        local, glob = fig.add_subplot(grid[row, 0]), fig.add_subplot(grid[row, 1])
        plot_local_global(view, local, glob, title=f"{title}, {label}" if title else label)
    return fig


def plot_agent_curve(curve: list[dict[str, float]] | str | Path, ax: Any = None, target: float | None = None,
                     label: str = "") -> Any:
    """An A3C training curve (:func:`cswm_lib.a3c.agent.read_curve` of a folder, or its rows): episode
    returns against frames, with the running mean of the last episodes."""
    import matplotlib.pyplot as plt

    rows = read_curve(curve) if isinstance(curve, (str, Path)) else curve
    ax = ax or plt.subplots(figsize=(6, 3.5))[1]
    if rows:
        x = [r["frames"] for r in rows]
        ax.plot(x, [r["return"] for r in rows], ".", ms=2, alpha=0.3, label=f"{label} episode return".strip())
        ax.plot(x, [r["mean_recent"] for r in rows], lw=2, label=f"{label} mean of last episodes".strip())
    if target is not None:
        ax.axhline(target, color="k", ls="--", lw=1, label=f"target {target:g}")
    ax.set_xlabel("frames (agent steps, all workers)")
    ax.set_ylabel("return")
    ax.legend(loc="best", fontsize=8)
    return ax


# ------------------------------------------------------------------------------ learning curves


#: line styles of strategies in curve figures (colour C0, C1, ... as well)
_STYLES = ("-", "--", "-.", ":")


def plot_curves(
    curves: dict[str, dict[str, dict[str, list]]],
    ax: Any,
    mode: str = "local_dedup",
    num_steps: int = 1,
    metric: str = "Hits@1",
    control: bool = True,
    title: str = "",
) -> Any:
    """Learning curves of one score from a :func:`cswm_lib.curves.curve_table`: per strategy (own
    colour and line style) the mean over seeds with a min-max band, and every seed as a thin line;
    with ``control`` the mean of the strategy's no-transition control (``<mode>_no_transition``),
    grey."""
    from cswm_lib.curves import curve_key

    for i, (label, seeds) in enumerate(curves.items()):
        colour, style = f"C{i}", _STYLES[i % len(_STYLES)]
        n = min(len(s["updates"]) for s in seeds.values())
        x = np.asarray(next(iter(seeds.values()))["updates"][:n])

        def series(key: str, seeds: dict = seeds, n: int = n) -> np.ndarray:
            return 100 * np.array([s[key][:n] for s in seeds.values()], dtype=float)

        y = series(curve_key(mode, num_steps, metric))
        for row in y:
            ax.plot(x, row, color=colour, ls=style, lw=0.7, alpha=0.6)
        ax.fill_between(x, y.min(0), y.max(0), color=colour, alpha=0.15, lw=0)
        ax.plot(x, y.mean(0), color=colour, ls=style, lw=2, label=f"{label} ({len(y)} seeds)")
        control_key = curve_key(f"{mode}{NO_TRANSITION}", num_steps, metric)
        if control and control_key in next(iter(seeds.values())):
            ax.plot(x, series(control_key).mean(0), color="grey", ls=style, lw=1.2,
                    label=f"{label}: no-transition control")
    ax.set_xlabel("optimizer updates")
    ax.set_ylabel(f"{metric} (%)")
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def departure(
    curves: dict[str, dict[str, dict[str, list]]],
    strategy: str,
    mode: str = "local_dedup",
    num_steps: int = 1,
    metric: str = "Hits@1",
    margin: float = 0.05,
) -> int | None:
    """The first curve point (in updates) where ``strategy``'s mean score over seeds exceeds the mean
    of its own no-transition control by more than ``margin``: when the learned dynamics start to
    show. None when that never happens within the recorded budget."""
    from cswm_lib.curves import curve_key

    seeds = curves[strategy].values()
    n = min(len(s["updates"]) for s in seeds)
    x = next(iter(seeds))["updates"][:n]
    score = np.mean([s[curve_key(mode, num_steps, metric)][:n] for s in seeds], 0)
    control = np.mean([s[curve_key(f"{mode}{NO_TRANSITION}", num_steps, metric)][:n] for s in seeds], 0)
    above = np.flatnonzero(score - control > margin)
    return int(x[above[0]]) if above.size else None


def departure_markdown(
    curves: dict[str, dict[str, dict[str, dict[str, list]]]],
    strategies: Sequence[str] | None = None,
    mode: str = "local_dedup",
    margin: float = 0.05,
) -> str:
    """When learned dynamics show, as a markdown list: per dataset of ``curves`` (``{dataset:
    curve_table}``) and strategy in ``strategies`` (default: every strategy with curves), the
    :func:`departure` from its no-transition control (1-step Hits@1 of ``mode``, mean over seeds, by
    more than ``margin``), or that there is none within the updates the strategy's curves reach."""
    lines = []
    for name, runs in curves.items():
        said = []
        for label in strategies or runs:
            at = departure(runs, label, mode=mode, margin=margin)
            last = max(max(s["updates"]) for s in runs[label].values())
            said.append(f"{label} rises above its no-transition control (by more than {100 * margin:.0f} "
                        f"points, mean over seeds) at {at} updates" if at is not None else
                        f"{label} does not rise above its no-transition control within {last} updates")
        lines.append(f"* {name}: " + "; ".join(said) + ".")
    return "\n".join(lines)


def budget_markdown(
    curves: dict[str, dict[str, dict[str, dict[str, list]]]],
    strategy: str,
    seconds_per_update: Callable[[str], float],
    mode: str = "local_dedup",
    margin: float = 0.05,
) -> str:
    """What budget a world whose ``strategy`` never left its no-transition control would need at
    least, as markdown lines: the updates the *slowest seed* of a world that did leave it needed
    (per-seed :func:`departure`; a lower bound, since the harder world may need more), and what that
    costs per run and for all runs at ``seconds_per_update(world)`` (measured, one core; called only
    for the worlds that need the estimate). Empty when every world left its control, or none did (no
    yardstick)."""
    def seed_departures(runs: dict[str, dict[str, list]]) -> list[int | None]:
        return [departure({strategy: {s: c}}, strategy, mode=mode, margin=margin) for s, c in runs.items()]

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


def plot_curve_grid(
    curves: dict[str, dict[str, dict[str, dict[str, list]]]],
    panels: Sequence[tuple[str, int]] = (("local_dedup", 1), ("dedup", 1)),
    metric: str = "Hits@1",
) -> Any:
    """A row of :func:`plot_curves` panels per dataset (``curves = {dataset: curve_table}``), one
    column per ``(mode, num_steps)``; one legend below the figure. Returns the figure (7.5 in wide)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(curves), len(panels), figsize=(7.5, 2.6 * len(curves) + 0.6),
                             squeeze=False)
    for row, (name, runs) in enumerate(curves.items()):
        for col, (mode, steps) in enumerate(panels):
            plot_curves(runs, axes[row, col], mode, steps, metric, title=f"{name}: {mode}, {steps} step(s)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.12 if len(curves) > 1 else 0.2, 1, 1))
    return fig


# ------------------------------------------------------------------------------------- verdicts


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


def score_table(
    rows: list[dict[str, Any]],
    modes: Sequence[str],
    num_steps: int = 1,
    metric: str = "Hits@1",
    start_mode: str | None = "local_dedup",
) -> str:
    """Compact markdown pivot of result rows that fits the text column: one column per evaluation
    mode (``metric`` at ``num_steps``, mean ± std over seeds in %), one row per (dataset, strategy)
    for the trained model and, when ``modes`` holds ``<mode>_no_transition`` twins, a row below it
    for its no-transition control (the same encoder, :math:`\\hat z_L = z_0`) in the same columns;
    plus the share of predictions nearest the start state (``argmin=o_0`` of ``start_mode``). A
    line under the table says what the numbers are and how many seeds they pool."""

    def cell(dataset: str, label: str, mode: str, m: str) -> str:
        hit = [r for r in rows if (r["dataset"], r["negatives"], r["mode"], r["num_steps"], r["metric"])
               == (dataset, label, mode, num_steps, m)]
        return f"{100 * hit[0]['mean']:.1f} ± {100 * hit[0]['std']:.1f}" if hit else "--"

    base = [m for m in modes if not m.endswith(NO_TRANSITION)]
    base += [m[: -len(NO_TRANSITION)] for m in modes if m.endswith(NO_TRANSITION)
             and m[: -len(NO_TRANSITION)] not in base]  # a control whose mode is not asked for
    controls = any(m.endswith(NO_TRANSITION) for m in modes)
    asked = set(modes)
    cols = ["dataset", "negatives", *(["predictor"] if controls else []), *base,
            *([START_METRIC] if start_mode else [])]
    cells = []
    for dataset, label in dict.fromkeys((r["dataset"], r["negatives"]) for r in rows):
        predictors = [("model", "")] + ([("no_transition", NO_TRANSITION)] if controls else [])
        for predictor, suffix in predictors:
            row = {"dataset": dataset, "negatives": label, "predictor": predictor}
            row |= {m: cell(dataset, label, m + suffix, metric) if m + suffix in asked else "--"
                    for m in base}
            if start_mode:
                row[START_METRIC] = cell(dataset, label, start_mode + suffix, START_METRIC)
            cells.append(row)
    seeds = sorted({r["n_seeds"] for r in rows if r["num_steps"] == num_steps and r["metric"] == metric})
    n = " or ".join(str(s) for s in seeds) or "?"
    note = (f"{num_steps}-step {metric} (%), mean ± std over {n} seed(s)"
            + ("; no_transition: the same encoder predicting $\\hat z_L = z_0$" if controls else "")
            + (f"; {START_METRIC}: share of {start_mode} queries nearest the start state $o_0$"
               if start_mode else "") + ".")
    return format_table(cells, cols) + "\n\n" + note


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


def recorded_verdicts(folder: Path | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """The verdicts of every recorded reference run (``book/results/<scale>/<chapter>.json``), and the
    names of recorded runs that hold none (recorded before verdicts existed)."""
    folder = folder or project_root() / "book" / "results"
    verdicts, without = [], []
    for path in sorted(folder.glob("*/*.json")):
        record = json.loads(path.read_text())
        found = record.get("results", {}).get("verdicts")
        if found:
            verdicts += found
        else:
            without.append(path.relative_to(folder).as_posix())
    return verdicts, without


def glance_markdown(folder: Path | None = None, compact: bool = False) -> str:
    """The "Results at a glance" block of the README and the intro: :func:`verdict_table` of every
    recorded verdict, one row per claim and dataset; recorded runs without verdicts (recorded before
    verdicts existed) follow as their :func:`results_markdown` rows. ``compact``: the narrow table of
    :func:`verdict_table_compact` (the book's intro, whose text column holds no ten-column table)."""
    verdicts, without = recorded_verdicts(folder)
    table = verdict_table_compact(verdicts) if compact else verdict_table(verdicts)
    if without:
        rows = [r for r in recorded_results(folder) if r["source"] in without]
        table += "\n\nRecorded without a verdict (" + ", ".join(f"`{w}`" for w in without) + "):\n\n"
        table += results_markdown(rows)
    return table
