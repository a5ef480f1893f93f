"""The book's figures (matplotlib, imported when a figure is drawn): scores against roll-out
length and candidates, drawn negatives, latent trajectories, the local/global distance view,
frames, A3C returns and learning curves. A figure function takes arrays, embeddings or result rows
and draws; it loads no checkpoint."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from cswm_lib import vocabulary
from cswm_lib.curves import Curves, CurveSet, curve_key
from cswm_lib.data.episodes import Episodes
from cswm_lib.evaluate import NO_TRANSITION
from cswm_lib.experiments import select
from cswm_lib.figstyle import FONT, WIDTH  # widest figure (in), smallest text (pt)


def plot_steps(
    rows: list[dict[str, Any]],
    datasets: Sequence[str],
    strategies: Sequence[str],
    settings: Sequence[str],
    chance: dict[str, float] | None = None,
    names: dict[str, str] | None = None,
) -> Any:
    """Hits@1 (mean ± std over seeds, %) against the roll-out length L, one panel per setting: every
    (dataset, strategy) series has its own colour, and each dataset its own line style and marker
    (solid/o, dashed/s, dotted/^, ...), so no two series look alike. ``chance``
    (fraction per setting) adds a dotted chance line; ``names`` renames settings on the axis."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(settings), figsize=(min(WIDTH, 3.6 * len(settings)), 3.2), squeeze=False,
                             sharex=True)
    for ax, setting in zip(axes[0], settings, strict=True):
        for d, name in enumerate(datasets):
            for i, strategy in enumerate(strategies):
                r = select(rows, dataset=name, strategy=strategy, setting=setting, metric="Hits@1")
                ax.errorbar(
                    [x["num_steps"] for x in r],
                    [100 * x["mean"] for x in r],
                    [100 * x["std"] for x in r],
                    marker="os^Dv"[d % 5],
                    capsize=3,
                    color=f"C{(d * len(strategies) + i) % 10}",
                    ls=["-", "--", ":", "-."][d % 4],
                    label=f"{name}, {strategy}",
                )
        if chance and setting in chance:
            ax.axhline(100 * chance[setting], color="grey", lw=0.8, ls=":")
            ax.set_ylim(bottom=0)
        ax.set_xlabel("latent steps L")
        ax.xaxis.get_major_locator().set_params(integer=True)  # L is a whole number of steps
        ax.set_ylabel(f"Hits@1 (%), {(names or {}).get(setting, setting)}")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=FONT, frameon=False)  # outside the data
    _legend_below(fig, len(labels), 2)
    return fig

def _legend_below(fig: Any, num_labels: int, ncol: int) -> None:
    """Lay ``fig`` out (tight) with room at the bottom for a figure legend of ``num_labels`` entries
    in ``ncol`` columns at ``figstyle.FONT`` pt."""
    rows = -(-num_labels // ncol)
    height = fig.get_size_inches()[1]
    fig.tight_layout(rect=(0, min(0.6, (0.1 + 0.2 * rows) / height), 1, 1))


def _book_names(scores: dict[str, Any]) -> dict[str, Any]:
    """A scores dict of :mod:`cswm_lib.evaluate` keyed by the book's metric names (``Hits@1``, ``MRR``)."""
    return {vocabulary.name(k): v for k, v in scores.items()}


def plot_settings(results: dict[tuple[str, int], dict[str, Any]], metric: str = "Hits@1") -> Any:
    """``metric`` (%) of one model in every evaluation setting: a group of bars per setting, one bar
    (own colour and hatch) per roll-out length L, from :func:`cswm_lib.evaluate.evaluate_settings`
    results keyed ``(setting, L)``; the legend sits right of the bars. Returns the figure."""
    import matplotlib.pyplot as plt

    settings = list(dict.fromkeys(setting for setting, _ in results))
    steps = list(dict.fromkeys(L for _, L in results))
    fig, ax = plt.subplots(figsize=(WIDTH, 3.4))
    width = 0.8 / len(steps)
    for i, L in enumerate(steps):
        ax.bar(np.arange(len(settings)) + i * width,
               [100 * _book_names(results[s, L])[metric] for s in settings], width,
               color=f"C{i}", hatch=["", "//", "..", "xx"][i % 4], edgecolor="k", lw=0.4,
               label=f"{L} step(s)")
    ax.set_xticks(np.arange(len(settings)) + width * (len(steps) - 1) / 2, settings, rotation=35,
                  ha="right", fontsize=FONT)
    ax.set_ylabel(f"{metric} (%)")
    ax.legend(fontsize=FONT, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    fig.tight_layout()
    return fig

def plot_candidates(sweep: dict[int, dict[int, dict[str, float]]]) -> Any:
    """Hits@1 and MRR (%) against the number of candidates per query B (log axis), one line (own
    colour, style and marker) per roll-out length L, and the chance level 1/B; ``sweep`` is
    ``{L: scores_by_batch_size(...)}`` (:func:`cswm_lib.ranking.scores_by_batch_size`)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 3.4), sharex=True)
    for i, (steps, by_size) in enumerate(sweep.items()):
        for ax, key in zip(axes, ("Hits@1", "MRR"), strict=True):
            ax.plot(list(by_size), [100 * _book_names(r)[key] for r in by_size.values()],
                    marker="os^Dv"[i % 5], ls=_STYLES[i % len(_STYLES)], color=f"C{i}",
                    label=f"{steps} step(s)")
    sizes = np.array(sorted({b for by_size in sweep.values() for b in by_size}), dtype=float)
    axes[0].plot(sizes, 100 / sizes, "k:", label="chance (1/B)")
    for ax, name in zip(axes, ("Hits@1 (%)", "MRR (%)"), strict=True):
        ax.set_xscale("log")
        ax.set_xlabel("candidates per query (batch size B)")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    ncol = min(4, len(labels))
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=FONT, frameon=False)
    _legend_below(fig, len(labels), ncol)  # below the panels: it hides no curve
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
    fig, axes = plt.subplots(len(drawn), cols, figsize=(min(WIDTH, 1.45 * cols),
                                                          (2.2 if caption else 1.8) * len(drawn)),
                             squeeze=False)

    def show(ax: Any, e: int, t: int, title: str) -> None:
        ax.imshow(visible(frames[e, t, channels]).transpose(1, 2, 0))
        ax.set_title(title, fontsize=FONT)
        ax.set_xticks([])
        ax.set_yticks([])

    e0, t0 = positive
    for row, (strategy, neg) in enumerate(drawn.items()):
        show(axes[row, 0], e0, t0, f"$o_t$ (e={e0}, t={t0})")
        if with_next:
            show(axes[row, 1], e0, t0 + 1, "$o_{t+1}$")
        axes[row, 0].set_ylabel(strategy, fontsize=FONT)
        for n in range(num_show):
            e, t = int(neg.episode[member, n]), int(neg.step[member, n])
            show(axes[row, lead + n], e, t, f"e={e}, t={t}" + (f"\n{caption(e, t)}" if caption else ""))
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

    ax = ax or plt.subplots(figsize=(5.2, 4.6))[1]
    colours = plt.cm.tab10(np.arange(z.shape[1]) % 10)
    for k in range(z.shape[1]):
        ax.scatter(z[:, k, 0], z[:, k, 1], s=6, color=colours[k], alpha=0.5, label=f"slot {k}")
    for k in range(z.shape[1]):
        ax.annotate("", xy=prediction[index, k].tolist(), xytext=z[index, k].tolist(),
                    arrowprops=dict(arrowstyle="->", lw=1.5))
        ax.scatter(*target[index, k].tolist(), marker="x", color="k", s=40)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=FONT, markerscale=2, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return ax

def plot_slot_grid(paths: dict[tuple[str, str], np.ndarray]) -> Any:
    """Object-slot trajectories (:func:`plot_trajectories`), one panel per (dataset, strategy) of
    ``paths`` (:func:`cswm_lib.analysis.slot_paths`: ``{(dataset, strategy): z [T+1, K, D]}``): a
    row per dataset, a column per strategy, all on the same axes so that path lengths compare; the
    slots' legend sits below. Returns the figure (at most ``figstyle.WIDTH`` in wide)."""
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(name for name, _ in paths))
    strategies = list(dict.fromkeys(strategy for _, strategy in paths))
    size = (min(WIDTH, 3.6 * len(strategies)), 3.2 * len(datasets) + 0.5)
    fig, axes = plt.subplots(len(datasets), len(strategies), figsize=size, sharex=True, sharey=True)
    axes = np.asarray(axes).reshape(len(datasets), len(strategies))
    for (name, strategy), z in paths.items():
        ax = axes[datasets.index(name), strategies.index(strategy)]
        plot_trajectories(z, ax, f"{name}\n{strategy}")
    for ax in axes.flat:
        ax.label_outer()  # shared axes: labels on the outer panels only
    handles, labels = axes[0, 0].get_legend_handles_labels()
    ncol = min(5, len(labels))
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=FONT, frameon=False)
    _legend_below(fig, len(labels), ncol)
    return fig


def plot_local_global(view: dict[str, Any], ax_local: Any, ax_global: Any, title: str = "",
                      legend: bool = True) -> None:
    """Draw a :func:`cswm_lib.analysis.local_global_view`: the distances to the episode's states
    (target, states with the target's id and the nearest one marked) and the batch's sorted distances
    with the true pair. With ``legend`` the local panel's legend sits above it."""
    local, L, best = view["local_distances"], view["num_steps"], view["nearest_t"]
    ax_local.plot(range(len(local)), local, "o-", color="C0")
    ax_local.plot(L, local[L], "o", color="red", ms=9, label="target $z_L$")
    if view["same_state"]:
        dup = view["same_state"]
        ax_local.plot(dup, local[dup], "s", mfc="none", mec="red", ms=11, label="same id as target")
    ax_local.plot(best, local[best], "k*", ms=12, label="nearest")
    ax_local.set_xticks(range(len(local)))
    ax_local.set_xlabel("state $t$ of the episode", fontsize=FONT)
    ax_local.set_ylabel(r"$\|\hat z_L - z_t\|^2$", fontsize=FONT)
    ax_local.set_title(f"{title} -- local: nearest t={best}, target t={L}", fontsize=FONT)
    if legend:
        ax_local.legend(fontsize=FONT, loc="lower left", bbox_to_anchor=(0, 1.12), ncol=3, frameon=False)
    glob, own, rank = view["global_distances"], view["global_index"], view["global_rank"]
    ax_global.plot(range(1, len(glob) + 1), np.sort(glob, kind="stable"), "o", color="C0", ms=4)
    ax_global.plot(rank, glob[own], "o", color="red", ms=7)
    ax_global.set_xticks(range(1, len(glob) + 1, max(1, len(glob) // 5)))
    ax_global.set_xlabel("rank in the batch", fontsize=FONT)
    ax_global.set_ylabel(r"$\|z_L - \hat z^{(j)}_L\|^2$", fontsize=FONT)
    ax_global.set_title(f"global: rank {rank} of {len(glob)}", fontsize=FONT)

def plot_cube_crops(scene: np.ndarray) -> Any:
    """A Cubes state ``scene [K, 2]`` three ways: the whole 640 x 480 matplotlib canvas with our crop
    (``CUBE_CROP`` of :mod:`cswm_lib.envs.block_pushing`, cyan) and the original's (gold), our 50 x 50
    frame, and the frame in the original's framing. Returns the figure."""
    import matplotlib.pyplot as plt

    from cswm_lib.envs import block_pushing as bp

    fig, axes = plt.subplots(1, 3, figsize=(WIDTH, 2.9))
    axes[0].imshow(bp.render_cube_canvas(scene))
    for crop, color, label in ((bp.CUBE_CROP, "cyan", "ours"), (bp.ORIGINAL_CUBE_CROP, "gold", "original")):
        (r0, r1), (c0, c1) = (crop[0].start, crop[0].stop), (crop[1].start, crop[1].stop)
        axes[0].add_patch(plt.Rectangle((c0, r0), c1 - c0, r1 - r0, fill=False, color=color, lw=1.5,
                                        label=label))
    axes[0].legend(fontsize=FONT, loc="upper center", bbox_to_anchor=(0.5, 0), ncol=2, frameon=False)
    frames = (bp.render_cubes(scene), bp.render_cubes_matplotlib(scene, framing="original"))
    for ax, img in zip(axes[1:], frames, strict=True):
        ax.imshow(img.transpose(1, 2, 0))
    for ax, title in zip(axes, ("640 x 480 canvas", "our frame", "original framing"), strict=True):
        ax.set_title(title, fontsize=FONT)
        ax.axis("off")
    fig.tight_layout()
    return fig

def visible(frame: np.ndarray, stretch: bool | None = None) -> np.ndarray:
    """An RGB ``frame [3, H, W]`` (uint8) made readable as a thumbnail. An Atari screen is one
    coloured background with a few small objects (Pong at 50 x 50: paddles and ball are a few
    pixels on brown), which a thumbnail shows as a blank square; stretched, every pixel shows how far
    its colour is from the background's (square root: faint objects too; black background, the
    objects bright in their own hue).
    ``stretch=None`` stretches when one colour that is neither near-black nor near-white covers at
    least 90 % of the frame; block-pushing frames (black or white backgrounds) stay as they are."""
    pixels = frame.reshape(frame.shape[0], -1).T.astype(np.int16)
    colours, counts = np.unique(pixels, axis=0, return_counts=True)
    background = colours[counts.argmax()]
    if stretch is None:
        stretch = counts.max() >= 0.9 * len(pixels) and 60 < int(background.sum()) < 700
    if not stretch:
        return frame
    distance = np.abs(frame.astype(np.int16) - background[:, None, None]).astype(float)
    peak = distance.max()
    return (255 * np.sqrt(distance / peak)).astype(np.uint8) if peak else np.zeros_like(frame)


def plot_episode_frames(
    episodes: Episodes,
    episode: int = 0,
    highlight: int | None = None,
    actions: bool = False,
    title: str = "",
    channels: slice = slice(3, 6),
) -> Any:
    """The T + 1 frames of one episode in order, ``t`` above each (with ``actions`` also the
    action taken after it; step ``highlight`` in red), in one row of up to 8 frames, else two rows.
    ``channels`` picks the RGB frame: by default the current screen of a stacked (previous,
    current) Atari observation; Atari screens are contrast-stretched (:func:`visible`). Returns the
    figure (``figstyle.WIDTH`` in wide at most)."""
    import matplotlib.pyplot as plt

    T1 = episodes.episode_length + 1
    cols = T1 if T1 <= 8 else -(-T1 // 2)
    rows = -(-T1 // cols)
    side = min(0.9, WIDTH / cols)
    height = rows * (side + (0.55 if actions else 0.35)) + (0.3 if title else 0)
    fig, axes = plt.subplots(rows, cols, figsize=(side * cols, height), squeeze=False)
    for t, ax in enumerate(axes.flat):
        ax.axis("off")
        if t >= T1:
            continue
        ax.imshow(visible(episodes.frames[episode, t, channels]).transpose(1, 2, 0))
        label = f"t={t}" + (f"\na={episodes.actions[episode, t]}" if actions and t < T1 - 1 else "")
        ax.set_title(label, fontsize=FONT, color="red" if t == highlight else "black")
    if title:
        fig.suptitle(title, fontsize=FONT + 1)
    fig.tight_layout(pad=0.3)
    return fig

def plot_local_global_grid(views: dict[str, dict[str, Any]], title: str = "") -> Any:
    """One row per model of ``views`` (``{label: cswm_lib.analysis.local_global_view(...)}``, all of
    one query): its local distances (wide, left) and its global distances (right), drawn by
    :func:`plot_local_global`, one legend below. Returns the figure (``figstyle.WIDTH`` in wide)."""
    import matplotlib.pyplot as plt

    T1 = len(next(iter(views.values()))["local_distances"])
    # constrained layout: tight_layout could not fit the right panel's labels into a 1-column gap
    fig = plt.figure(figsize=(WIDTH - 0.2, 2.6 * len(views) + 0.4), layout="constrained")
    grid = fig.add_gridspec(len(views), 2, width_ratios=[T1, 4])
    legend: dict[str, Any] = {}
    for row, (label, view) in enumerate(views.items()):
        local, glob = fig.add_subplot(grid[row, 0]), fig.add_subplot(grid[row, 1])
        plot_local_global(view, local, glob, title=f"{title}, {label}" if title else label,
                          legend=False)
        for handle, name in zip(*local.get_legend_handles_labels(), strict=True):
            legend.setdefault(name, handle)
    fig.legend(legend.values(), legend.keys(), loc="outside lower center", ncol=len(legend),
               fontsize=FONT, frameon=False)
    return fig

def plot_agent_curve(curve: list[dict[str, float]], ax: Any = None, target: float | None = None,
                     label: str = "") -> Any:
    """An A3C training curve (the rows of :func:`cswm_lib.a3c.agent.read_returns`): episode returns
    against frames, with the running mean of the last episodes; the legend sits below the axes."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(6, 3.6))[1]
    if curve:
        x = [r["frames"] for r in curve]
        ax.plot(x, [r["return"] for r in curve], ".", ms=2, alpha=0.3,
                label=f"{label} episode return".strip())
        ax.plot(x, [r["mean_recent"] for r in curve], lw=2, label=f"{label} mean of last episodes".strip())
    if target is not None:
        ax.axhline(target, color="k", ls="--", lw=1, label=f"target {target:g}")
    ax.set_xlabel("frames (agent steps, all workers)")
    ax.set_ylabel("return")
    wide = ax.get_position().width * ax.get_figure().get_size_inches()[0] > 4  # room for 2 columns
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2 if wide else 1, fontsize=FONT,
              frameon=False)  # below the frames axis label: the title stays free
    return ax


#: line styles of strategies in curve figures (colour C0, C1, ... as well)
_STYLES = ("-", "--", "-.", ":")

def plot_curves(
    curves: Curves,
    ax: Any,
    setting: str = "local_dedup",
    num_steps: int = 1,
    metric: str = "Hits@1",
    control: bool = True,
    title: str = "",
) -> Any:
    """Learning curves of one score from a :func:`cswm_lib.curves.curve_table`: per strategy (own
    colour and line style) the mean over seeds with a min-max band, and every seed as a thin line;
    with ``control`` the mean of the strategy's no-transition control (``<setting>_no_transition``),
    grey."""
    for i, (strategy, seeds) in enumerate(curves.items()):
        colour, style = f"C{i}", _STYLES[i % len(_STYLES)]
        n = min(len(s["updates"]) for s in seeds.values())
        x = np.asarray(next(iter(seeds.values()))["updates"][:n])

        def series(key: str, seeds: dict = seeds, n: int = n) -> np.ndarray:
            return 100 * np.array([s[key][:n] for s in seeds.values()], dtype=float)

        y = series(curve_key(setting, num_steps, metric))
        for row in y:
            ax.plot(x, row, color=colour, ls=style, lw=0.7, alpha=0.6)
        ax.fill_between(x, y.min(0), y.max(0), color=colour, alpha=0.15, lw=0)
        ax.plot(x, y.mean(0), color=colour, ls=style, lw=2, label=f"{strategy} ({len(y)} seeds)")
        control_key = curve_key(f"{setting}{NO_TRANSITION}", num_steps, metric)
        if control and control_key in next(iter(seeds.values())):
            ax.plot(x, series(control_key).mean(0), color="grey", ls=style, lw=1.2,
                    label=f"{strategy}: no-transition control")
    ax.set_xlabel("optimizer updates")
    ax.set_ylabel(f"{metric} (%)")
    if title:
        ax.set_title(title, fontsize=9)
    return ax

def plot_curve_grid(
    curves: CurveSet,
    panels: Sequence[tuple[str, int]] = (("local_dedup", 1), ("global_dedup", 1)),
    metric: str = "Hits@1",
) -> Any:
    """A row of :func:`plot_curves` panels per dataset (``curves = {dataset: curve_table}``), one
    column per ``(setting, num_steps)``, sharing the y axis; one legend below the figure. Returns the
    figure (``figstyle.WIDTH`` in wide)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(curves), len(panels), figsize=(WIDTH, 2.7 * len(curves) + 0.8),
                             squeeze=False, sharey=True)
    for row, (name, runs) in enumerate(curves.items()):
        for col, (setting, num_steps) in enumerate(panels):
            plot_curves(runs, axes[row, col], setting, num_steps, metric,
                        title=f"{name}: {setting}, {num_steps} step(s)")
    for ax in axes[:, 1:].flat:
        ax.set_ylabel("")  # the shared y axis is labelled once per row
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=FONT, frameon=False)
    _legend_below(fig, len(labels), 2)
    return fig
