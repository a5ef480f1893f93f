"""Every table and figure of the book: result tables (chapters, intro and README), score plots,
training curves, latent trajectories and the local/global distance view.

Tables are markdown strings built by the one formatter :func:`cswm_lib.utils.format_table`;
figures are matplotlib (imported when a figure is drawn). Inputs are the result rows of
:mod:`cswm_lib.experiments` (``select`` filters them) and the measurements of :mod:`cswm_lib.analysis`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cswm_lib import CswmError
from cswm_lib.a3c.agent import read_curve
from cswm_lib.analysis import gap, slot_motion
from cswm_lib.checkpoint import load_model
from cswm_lib.data.episodes import Episodes
from cswm_lib.evaluate import embed_paths
from cswm_lib.experiments import START_METRIC, select
from cswm_lib.train import read_log
from cswm_lib.utils import format_table, get_device, project_root

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


def lift(
    rows: list[dict[str, Any]],
    datasets: Sequence[str],
    strategies: Sequence[str],
    modes: Sequence[str],
    local_mode: str = "local_dedup",
) -> dict[str, dict[str, float]]:
    """1-step Hits@1 of every (dataset, strategy) in each of ``modes`` (e.g. a mode and its
    ``_no_transition`` twin), plus ``local_argmin_o0``: the share of ``local_mode`` queries whose
    prediction is nearest the episode's start state. Printed as a table (percent); keys
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
    cells = [
        {"dataset | negatives": key}
        | {m: f"{100 * x:.1f}" for m, x in zip([*modes, START_METRIC], v.values(), strict=True)}
        for key, v in out.items()
    ]
    print(format_table(cells))
    return out


def signs(
    rows: list[dict[str, Any]],
    datasets: Sequence[str],
    new: str,
    modes: Sequence[str],
    base: str = "baseline",
) -> dict[str, dict[str, float]]:
    """:func:`cswm_lib.analysis.gap` of ``new`` over ``base`` (1-step Hits@1) for every dataset and
    mode, printed as a table with whether it has the paper's sign; the seed spread is the yardstick
    for noise."""
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
    print(format_table(cells))
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
    """Hits@1 (mean ± std over seeds, %) against the roll-out length L, one panel per mode: a
    colour per strategy, solid lines for the first dataset and dashed for the others. ``chance``
    (fraction per mode) adds a dotted chance line; ``names`` renames modes on the axis."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(modes), figsize=(5 * len(modes), 3.2), squeeze=False)
    for ax, mode in zip(axes[0], modes, strict=True):
        for d, name in enumerate(datasets):
            for i, label in enumerate(strategies):
                r = select(rows, dataset=name, negatives=label, mode=mode, metric="Hits@1")
                ax.errorbar(
                    [x["num_steps"] for x in r],
                    [100 * x["mean"] for x in r],
                    [100 * x["std"] for x in r],
                    marker="o",
                    capsize=3,
                    color=f"C{i}",
                    ls="-" if d == 0 else "--",
                    label=f"{name}, {label}",
                )
        if chance and mode in chance:
            ax.axhline(100 * chance[mode], color="grey", lw=0.8, ls=":")
            ax.set_ylim(bottom=0)
        ax.set_xlabel("latent steps L")
        ax.set_ylabel(f"Hits@1 (%), {(names or {}).get(mode, mode)}")
        ax.legend(fontsize=7)
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
    fig, axes = plt.subplots(len(data), len(strategies), figsize=(4.2 * len(strategies), 3.7 * len(data)))
    axes = np.asarray(axes).reshape(len(data), len(strategies))
    for row, (name, (train_set, _)) in enumerate(data.items()):
        for col, label in enumerate(strategies):
            model = load_model(folders[name][label, seed], get_device(device))
            emb = embed_paths(model, train_set, all_states=True, num_episodes=1, progress=False)
            z = emb["states"][0].numpy()
            motion[f"{name} | {label}"] = [round(float(x), 2) for x in slot_motion(z)]
            plot_trajectories(z, axes[row, col], f"{name}\n{label}")
            print(f"{name:17s} {label:24s} path length per slot: {motion[f'{name} | {label}']}")
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
