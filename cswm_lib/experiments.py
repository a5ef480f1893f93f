"""Experiments as data: one spec per (dataset, comparison), one call to train, evaluate and aggregate::

    spec = Experiment(experiment="4.1", dataset="Shapes immovable", train_data="shapes_imm_train",
                      eval_data="shapes_imm_eval", model={"encoder": "small"},
                      strategies={"baseline": {}, "episodic+ooe": {"negatives": "mixed", "beta": 0.5,
                                                                   "time_aligned": False}},
                      seeds=[1, 2, 3], epochs=100, modes=["dedup", "local"], num_steps=[1, 5, 10])
    rows = run(spec)               # = aggregate(spec, evaluate_all(spec, train_all(spec)))
    print(markdown_table(rows))

``run`` ensures both README datasets exist (reduced by the divisors), trains every
(strategy, seed) model into ``checkpoints/<spec.folder_name()>/<label>_s<seed>`` -- a finished run is
reused, an interrupted one resumed (:func:`cswm_lib.train.train`) -- encodes every eval frame once
per model, scores each requested mode and roll-out length, and returns one row per
(strategy, mode, steps, metric) with the mean and sample standard deviation over seeds::

    {"experiment": "4.1", "dataset": "Shapes immovable", "negatives": "baseline", "mode": "dedup",
     "num_steps": 1, "metric": "Hits@1", "mean": 0.93, "std": 0.02, "n_seeds": 3, "scale": "cpu",
     "paper": None, "paper_note": "not known to us ..."}

Modes (see :func:`cswm_lib.evaluate.evaluate`): ``global`` (``eval.py``: all eval episodes are
candidates), ``dedup`` (``eval_ids.py --dedup``), ``batched`` (``eval_ids_b.py --dedup``, batches of
100, published averaging), ``local`` (``eval_ids_b_inep.py --dedup``: the T+1 states of the query's
own episode). A ``_z0`` suffix scores the *no-transition* predictor ``p = z_0`` with the same
encoder: what a model gets without any learned dynamics. Local modes add the metric
``argmin=o_0``: the fraction of queries whose prediction is closest to the episode's START state.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cswm_lib import CswmError
from cswm_lib.checkpoint import load_model
from cswm_lib.data.episodes import Episodes
from cswm_lib.data.generate import README_DATASETS, readme_dataset
from cswm_lib.data.hdf5 import load_episodes
from cswm_lib.evaluate import embed_paths, evaluate
from cswm_lib.train import TrainConfig, read_log, total_updates, train
from cswm_lib.utils import checkpoints_dir, get_device

#: What the results table says where the paper's number is not known to us.
PAPER_UNKNOWN = (
    "not known to us: the paper's table values were not found (shared/reference/original-code.md sec. 3)"
)
#: Evaluation settings by name (keyword arguments of :func:`cswm_lib.evaluate.evaluate`).
EVAL_MODES: dict[str, dict[str, Any]] = {
    "global": dict(mode="global"),
    "dedup": dict(mode="dedup"),
    "batched": dict(mode="batched", dedup="published", averaging="published"),
    "local": dict(mode="local", dedup="published"),
}
#: Metric names in result rows -> keys of the dict :func:`cswm_lib.evaluate.evaluate` returns.
METRICS = {"Hits@1": "hits@1", "Hits@5": "hits@5", "Hits@10": "hits@10", "MRR": "mrr"}
START_METRIC = "argmin=o_0"  # local modes only: prediction closest to the start state o_0
ROW_KEYS = (
    "experiment",
    "dataset",
    "negatives",
    "mode",
    "num_steps",
    "metric",
    "mean",
    "std",
    "n_seeds",
    "scale",
    "paper",
    "paper_note",
)


@dataclass
class Experiment:
    """One comparison of negative-sampling strategies on one dataset.

    Attributes:
        experiment: paper section, e.g. ``"4.1"``; dataset: table label, e.g. ``"Shapes immovable"``.
        train_data, eval_data: names in :data:`cswm_lib.data.generate.README_DATASETS`, or paths of
            existing ``.h5`` files (e.g. the A3C splits of :func:`cswm_lib.a3c.collect.split_path`; the
            divisors do not apply to them); for README names the files
            hold ``README size // divisor`` episodes (at least ``min_episodes``).
        model: TrainConfig fields shared by all runs (the README flags: encoder, embedding_dim, ...).
        strategies: ``{label: TrainConfig overrides}``, e.g.
            ``{"time-aligned": {"negatives": "time_aligned"}}``.
        seeds, epochs, batch_size, learning_rate: training; one model per (strategy, seed).
        num_updates: the budget in optimizer updates (wins over ``epochs``).
        eval_every, eval_episodes: a learning curve (:mod:`cswm_lib.curves`) every ``eval_every``
            updates on the first ``eval_episodes`` eval episodes; 0 = none.
        modes: keys of :data:`EVAL_MODES`, optionally with the suffix ``_z0`` (no-transition predictor).
        num_steps: latent roll-out lengths L; metrics: keys of :data:`METRICS`.
        paper: published values, keyed ``"<label>|<mode>|<num_steps>|<metric>"``; others are ``None``.
        paper_note: what the ``paper`` column means (default: :data:`PAPER_UNKNOWN`).
    """

    experiment: str
    dataset: str
    train_data: str
    eval_data: str
    train_divisor: int = 1
    eval_divisor: int = 1
    min_episodes: int = 2
    model: dict[str, Any] = field(default_factory=dict)
    strategies: dict[str, dict[str, Any]] = field(default_factory=lambda: {"baseline": {}})
    seeds: Sequence[int] = (42,)
    epochs: int = 100
    num_updates: int | None = None  # budget in optimizer updates per run (wins over epochs)
    eval_every: int = 0  # learning curve: updates between curve points (0: none)
    eval_episodes: int = 1000  # learning curve: the fixed subset of the eval set it scores
    batch_size: int = 1024
    eval_batch_size: int = 100  # batch of the ``batched`` mode (eval_ids_b.py: 100)
    learning_rate: float = 5e-4
    modes: Sequence[str] = ("dedup",)
    num_steps: Sequence[int] = (1,)
    metrics: Sequence[str] = ("Hits@1", "MRR")
    scale: str = "small"
    paper: dict[str, float] = field(default_factory=dict)
    paper_note: str = PAPER_UNKNOWN
    device: str | None = None
    progress: bool = False

    def __post_init__(self) -> None:
        for name in (self.train_data, self.eval_data):
            if name not in README_DATASETS and not _is_file_name(name):
                raise CswmError(
                    f"experiment {self.experiment}: unknown dataset {name!r} "
                    f"(expected one of {', '.join(README_DATASETS)} or a path ending in .h5)"
                )
        for m in self.modes:
            if m.removesuffix("_z0") not in EVAL_MODES:
                raise CswmError(
                    f"unknown eval mode {m!r}: expected one of {', '.join(EVAL_MODES)} "
                    "(optionally with the suffix _z0)"
                )
        bad = [m for m in self.metrics if m not in METRICS]
        if bad:
            raise CswmError(f"unknown metric(s) {bad}: expected some of {', '.join(METRICS)}")
        if not self.seeds or not self.strategies or not self.num_steps:
            raise CswmError(
                f"experiment {self.experiment}: seeds, strategies and num_steps must be non-empty"
            )

    def train_config(
        self, label: str, seed: int, dataset: str | Path, eval_dataset: str | Path | None = None
    ) -> TrainConfig:
        """The :class:`TrainConfig` of one run (``<label>_s<seed>`` under :meth:`folder_name`)."""
        return TrainConfig(
            dataset=str(dataset),
            name=f"{label}_s{seed}",
            save_folder=str(checkpoints_dir() / self.folder_name()),
            epochs=self.epochs,
            num_updates=self.num_updates,
            eval_dataset=None if eval_dataset is None or not self.eval_every else str(eval_dataset),
            eval_every=self.eval_every,
            eval_episodes=self.eval_episodes,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            seed=seed,
            device=self.device,
            progress=self.progress,
            **{**self.model, **self.strategies[label]},
        )

    def folder_name(self) -> str:
        """``<experiment>_<train data>_div<d>_<budget>_<hash>``: one folder per training setting
        (budget ``e<epochs>`` or ``u<updates>``; the hash covers model flags, batch size, learning
        rate and the curve settings), so scales never share runs."""
        key = [self.model, self.batch_size, self.learning_rate]
        if self.eval_every:
            key += [self.eval_every, self.eval_episodes, self.eval_data, self.eval_divisor]
        digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:8]
        budget = f"e{self.epochs}" if self.num_updates is None else f"u{self.num_updates}"
        if _is_file_name(self.train_data):
            return f"{self.experiment}_{Path(self.train_data).stem}_{budget}_{digest}"
        return f"{self.experiment}_{self.train_data}_div{self.train_divisor}_{budget}_{digest}"


def _is_file_name(name: str | Path) -> bool:
    return str(name).endswith(".h5")


def _dataset(name: str, divisor: int, **kw: Any) -> Path:
    if not _is_file_name(name):
        return readme_dataset(name, divisor, **kw)
    if not Path(name).is_file():
        raise CswmError(f"dataset file not found: {name}")
    return Path(name)


def datasets(spec: Experiment) -> tuple[Path, Path]:
    """Ensure (generate or reuse) the train and eval files of ``spec``; return their paths."""
    kw = dict(min_episodes=spec.min_episodes, progress=spec.progress)
    return (
        _dataset(spec.train_data, spec.train_divisor, **kw),
        _dataset(spec.eval_data, spec.eval_divisor, **kw),
    )


def _finished(config: TrainConfig) -> bool:
    """Whether the run's log reaches its budget (updates, or epochs for logs without updates)."""
    try:
        log = read_log(config.folder())
    except CswmError:
        return False
    if config.num_updates is not None:
        return bool(log) and log[-1].get("updates", 0) >= config.num_updates
    return len(log) >= config.epochs


def train_all(spec: Experiment) -> dict[tuple[str, int], Path]:
    """Train (or reuse / resume) every (strategy label, seed) model; return their checkpoint folders."""
    train_path, eval_path = datasets(spec)
    episodes: Episodes | None = None  # loaded only if some run still has updates to go
    eval_set: Episodes | None = None
    folders = {}
    for label in spec.strategies:
        for seed in spec.seeds:
            cfg = spec.train_config(label, seed, train_path, eval_path)
            if not _finished(cfg):
                episodes = episodes if episodes is not None else load_episodes(train_path)
                if spec.eval_every and eval_set is None:
                    eval_set = load_episodes(eval_path)
                t0 = time.perf_counter()
                train(cfg, episodes, eval_set)
                budget = total_updates(cfg, episodes.num_transitions)
                print(
                    f"[{spec.experiment} {spec.dataset}] trained {cfg.name}: {budget} updates of "
                    f"{cfg.batch_size} on {episodes.num_transitions} transitions in "
                    f"{time.perf_counter() - t0:.0f} s",
                    flush=True,
                )
            folders[label, seed] = cfg.folder()
    return folders


@torch.no_grad()
def embed_rollouts(
    model: torch.nn.Module,
    episodes: Episodes,
    num_steps: Sequence[int],
    device: str | torch.device | None = None,
) -> dict[int, dict[str, torch.Tensor | None]]:
    """Encode every frame of every eval episode once and roll predictions out for each ``L``.

    Returns ``{L: embeddings}`` in the form :func:`cswm_lib.evaluate.evaluate` accepts:
    ``predictions [N, K, D]`` (z_0 advanced L times), ``targets [N, K, D]`` (= states[:, L]),
    ``states [N, T+1, K, D]``, ``target_ids`` / ``state_ids`` (or None) and ``start [N, K, D]`` (z_0).
    """
    base = embed_paths(model, episodes, 1, device=device, all_states=True, progress=False)
    states, ids = base["states"], base["state_ids"]
    dev = next(model.parameters()).device
    actions = torch.from_numpy(episodes.actions).to(dev)
    pred, out = states[:, 0].to(dev), {}
    for step in range(1, max(num_steps) + 1):
        pred = torch.cat(
            [
                model.predict(p, a)
                for p, a in zip(pred.split(4096), actions[:, step - 1].split(4096), strict=True)
            ]
        )
        if step in num_steps:
            out[step] = {
                "predictions": pred.cpu(),
                "targets": states[:, step],
                "states": states,
                "target_ids": None if ids is None else ids[:, step],
                "state_ids": ids,
                "start": states[:, 0],
            }
    return out


def local_global_view(
    model: torch.nn.Module,
    episodes: Episodes,
    episode: int,
    num_steps: int,
    batch_size: int,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """The distances behind one query's local and global score (Sec. 4.3).

    For eval episode ``episode``, the prediction ``z_L`` rolled out ``num_steps`` = L steps from its
    first state is compared with the episode's own T + 1 states (local: ``local_distances [T+1]``,
    ``nearest_t``), and its target ``z_L`` with the predictions of the ``batch_size`` episodes of its
    batch (global: ``global_distances [B]``, ``global_rank``, 1 = best; ties go to the true pair).
    ``same_state`` lists the steps whose ground-truth id equals the target's (dedup counts them).
    """
    emb = embed_rollouts(model, episodes, [num_steps], device)[num_steps]
    local = (emb["states"][episode] - emb["predictions"][episode]).pow(2).sum((-1, -2)).numpy()
    start = episode - episode % batch_size
    batch = emb["predictions"][start : start + batch_size]
    glob = (batch - emb["targets"][episode]).pow(2).sum((-1, -2)).numpy()
    own = episode - start
    same: list[int] = []
    if episodes.state_ids is not None:
        ids = episodes.state_ids[episode]
        same = [int(t) for t in np.flatnonzero((ids == ids[num_steps]).all(-1)) if t != num_steps]
    return {
        "num_steps": num_steps,
        "local_distances": local,
        "nearest_t": int(local.argmin()),
        "same_state": same,
        "global_distances": glob,
        "global_index": own,
        "global_rank": 1 + int((glob < glob[own]).sum()),
    }


def plot_local_global(view: dict[str, Any], ax_local: Any, ax_global: Any, title: str = "") -> None:
    """Draw a :func:`local_global_view`: the distances to the episode's states (target, states with
    the target's id and the nearest one marked) and the batch's sorted distances with the true pair."""
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


def start_state_argmin(predictions: torch.Tensor, states: torch.Tensor) -> float:
    """Fraction of queries whose prediction ``[N, K, D]`` is nearest (squared L2, ties -> earliest)
    to the episode's first state among ``states [N, S, K, D]``: a model without dynamics scores 1."""
    d = (states.flatten(2).double() - predictions.flatten(1).double()[:, None]).pow(2).sum(-1)  # [N, S]
    return (d.argmin(1) == 0).double().mean().item()


def score_model(spec: Experiment, model: torch.nn.Module, episodes: Episodes) -> list[dict[str, Any]]:
    """Scores of one model in every mode, roll-out length and metric of ``spec``:
    ``[{"mode", "num_steps", "metric", "value"}]``."""
    records = []
    for steps, emb in embed_rollouts(model, episodes, spec.num_steps, spec.device).items():
        for mode in spec.modes:
            base = mode.removesuffix("_z0")
            e = dict(emb, predictions=emb["start"]) if mode.endswith("_z0") else emb
            cands = (
                episodes.num_episodes
                if base == "global" or base == "dedup"
                else (spec.eval_batch_size if base == "batched" else episodes.episode_length + 1)
            )
            ks = [k for k in (1, 5, 10) if k <= cands]
            r = evaluate(
                model,
                episodes,
                steps,
                ks=ks,
                progress=False,
                embeddings=e,
                batch_size=spec.eval_batch_size,
                **EVAL_MODES[base],
            )
            for metric in spec.metrics:
                if METRICS[metric] in r:
                    records.append(dict(mode=mode, num_steps=steps, metric=metric, value=r[METRICS[metric]]))
            if base == "local":
                records.append(
                    dict(
                        mode=mode,
                        num_steps=steps,
                        metric=START_METRIC,
                        value=start_state_argmin(e["predictions"], e["states"]),
                    )
                )
    return records


def evaluate_all(spec: Experiment, folders: dict[tuple[str, int], Path]) -> list[dict[str, Any]]:
    """Score every trained model; one record per (label, seed, mode, steps, metric) with its ``value``."""
    _, eval_path = datasets(spec)
    episodes = load_episodes(eval_path)
    episodes.attrs.setdefault("path", str(eval_path))
    device = get_device(spec.device)
    records = []
    for (label, seed), folder in folders.items():
        model = load_model(folder, device)
        records += [dict(negatives=label, seed=seed, **r) for r in score_model(spec, model, episodes)]
    return records


def aggregate(spec: Experiment, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and sample standard deviation (ddof 1; 0 for one seed) over seeds -> result rows."""
    groups: dict[tuple, list[float]] = defaultdict(list)
    for r in records:
        groups[r["negatives"], r["mode"], r["num_steps"], r["metric"]].append(float(r["value"]))
    rows = []
    for (label, mode, steps, metric), values in groups.items():
        v = np.asarray(values)
        paper = spec.paper.get(f"{label}|{mode}|{steps}|{metric}")
        rows.append(
            dict(
                experiment=spec.experiment,
                dataset=spec.dataset,
                negatives=label,
                mode=mode,
                num_steps=int(steps),
                metric=metric,
                mean=float(v.mean()),
                std=float(v.std(ddof=1)) if len(v) > 1 else 0.0,
                n_seeds=len(v),
                scale=spec.scale,
                paper=None if paper is None else float(paper),
                paper_note=spec.paper_note,
            )
        )
    return rows


def run(spec: Experiment) -> list[dict[str, Any]]:
    """Datasets, training (reused/resumed), evaluation and aggregation of one experiment -> rows."""
    return aggregate(spec, evaluate_all(spec, train_all(spec)))


# ----------------------------------------------------------------------------------------- reporting


def train_specs(specs: dict[str, Experiment]) -> dict[str, dict[tuple[str, int], Path]]:
    """:func:`train_all` for several experiments, saying how long each took: ``{name: folders}``."""
    folders = {}
    for name, spec in specs.items():
        t0 = time.perf_counter()
        folders[name] = train_all(spec)
        print(
            f"{name}: {len(folders[name])} models ready in {time.perf_counter() - t0:.0f} s "
            f"(checkpoints/{spec.folder_name()})"
        )
    return folders


def score_specs(
    specs: dict[str, Experiment], folders: dict[str, dict[tuple[str, int], Path]]
) -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]]]:
    """:func:`evaluate_all` + :func:`aggregate` for several experiments: ``(records by name, rows)``."""
    records, rows = {}, []
    for name, spec in specs.items():
        t0 = time.perf_counter()
        records[name] = evaluate_all(spec, folders[name])
        rows += aggregate(spec, records[name])
        print(f"{name}: scored in {time.perf_counter() - t0:.1f} s")
    return records, rows


def plot_loss_grid(folders: dict[str, dict[tuple[str, int], Path]]) -> Any:
    """One :func:`plot_losses` panel per experiment, side by side; returns the figure."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(folders), figsize=(4.5 * len(folders), 3), squeeze=False)
    for ax, (name, f) in zip(axes[0], folders.items(), strict=True):
        plot_losses(f, ax)
        ax.set_title(name, fontsize=9)
    fig.tight_layout()
    return fig


def select(rows: list[dict[str, Any]], **match: Any) -> list[dict[str, Any]]:
    """Rows whose fields equal every ``match`` value (a list/tuple value means "one of")."""

    def ok(r: dict[str, Any]) -> bool:
        return all(r[k] in v if isinstance(v, (list, tuple)) else r[k] == v for k, v in match.items())

    return [r for r in rows if ok(r)]


def gap(
    rows: list[dict[str, Any]],
    dataset: str,
    new: str,
    base: str = "baseline",
    mode: str = "dedup",
    num_steps: int = 1,
    metric: str = "Hits@1",
) -> dict[str, float]:
    """``new - base`` for one dataset/mode/steps/metric: ``{"base", "new", "diff", "pooled_std"}``
    (pooled_std = sqrt(std_base^2 + std_new^2), a yardstick for whether the difference is noise)."""
    picked = {}
    for label in (base, new):
        hit = select(rows, dataset=dataset, negatives=label, mode=mode, num_steps=num_steps, metric=metric)
        if len(hit) != 1:
            raise CswmError(
                f"expected one row for {dataset}/{label}/{mode}/{num_steps}/{metric}, got {len(hit)}"
            )
        picked[label] = hit[0]
    b, n = picked[base], picked[new]
    return {
        "base": b["mean"],
        "new": n["mean"],
        "diff": n["mean"] - b["mean"],
        "pooled_std": float(np.hypot(b["std"], n["std"])),
    }


def lift(
    rows: list[dict[str, Any]], datasets: Sequence[str], strategies: Sequence[str], modes: Sequence[str]
) -> dict[str, dict[str, float]]:
    """1-step Hits@1 of every (dataset, strategy) in each of ``modes`` (e.g. a mode and its ``_z0``
    no-transition twin), plus ``local_argmin_o0``: the share of local queries whose prediction is
    nearest the episode's start state. Printed as a table; keys ``"<dataset> | <strategy>"``."""
    out: dict[str, dict[str, float]] = {}
    for name in datasets:
        for label in strategies:

            def mean(mode: str, metric: str = "Hits@1", name: str = name, label: str = label) -> float:
                return select(rows, dataset=name, negatives=label, mode=mode, num_steps=1, metric=metric)[0][
                    "mean"
                ]

            out[f"{name} | {label}"] = {m: mean(m) for m in modes} | {
                "local_argmin_o0": mean("local", START_METRIC)
            }
    width = max(len(k) for k in out) + 2
    print(f"{'dataset | negatives':{width}s}" + "".join(f"{m:>12s}" for m in [*modes, START_METRIC]))
    for key, values in out.items():
        print(f"{key:{width}s}" + "".join(f"{100 * x:12.1f}" for x in values.values()))
    return out


def signs(
    rows: list[dict[str, Any]],
    datasets: Sequence[str],
    new: str,
    modes: Sequence[str],
    base: str = "baseline",
) -> dict[str, dict[str, float]]:
    """:func:`gap` of ``new`` over ``base`` (1-step Hits@1) for every dataset and mode, printed with
    whether it has the paper's sign; the seed spread is the yardstick for noise."""
    out = {}
    for name in datasets:
        for mode in modes:
            g = out[f"{name} | {mode}"] = gap(rows, name, new, base, mode=mode)
            verdict = (
                "paper's sign" if g["diff"] > 0 else ("no difference" if g["diff"] == 0 else "OPPOSITE sign")
            )
            ratio = f", ratio {g['new'] / g['base']:.2f}" if g["base"] > 0 else ""
            print(
                f"{name:17s} {mode:8s} {base} {100 * g['base']:5.1f}  {new} {100 * g['new']:5.1f}  "
                f"diff {100 * g['diff']:+5.1f}{ratio} (spread {100 * g['pooled_std']:.1f}) -> {verdict}"
            )
    return out


def plot_slot_grid(
    data: dict[str, tuple[Episodes, Episodes]],
    folders: dict[str, dict[tuple[str, int], Path]],
    strategies: Sequence[str],
    seed: int,
    device: str | torch.device | None = None,
) -> tuple[Any, dict[str, list[float]]]:
    """Object-slot trajectories over training episode 0 (:func:`plot_trajectories`), one panel per
    (dataset, strategy) for the model of ``seed``, and each slot's path length
    (:func:`slot_motion`). Returns ``(figure, {"<dataset> | <strategy>": lengths})``."""
    import matplotlib.pyplot as plt

    motion = {}
    fig, axes = plt.subplots(len(data), len(strategies), figsize=(4.2 * len(strategies), 3.7 * len(data)))
    axes = np.asarray(axes).reshape(len(data), len(strategies))
    for row, (name, (train_set, _)) in enumerate(data.items()):
        for col, label in enumerate(strategies):
            model = load_model(folders[name][label, seed], get_device(device))
            z = episode_embeddings(model, train_set, episode=0)
            motion[f"{name} | {label}"] = [round(float(x), 2) for x in slot_motion(z)]
            plot_trajectories(z, axes[row, col], f"{name}\n{label}")
            print(f"{name:17s} {label:24s} path length per slot: {motion[f'{name} | {label}']}")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return fig, motion


def _pct(x: float | None) -> str:
    return "--" if x is None else f"{100 * x:.1f}"


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """Rows as a markdown table, values in percent: ours (mean +- std over n seeds) next to the paper."""
    lines = [
        "| experiment | dataset | negatives | mode | steps | metric | ours (%) | seeds | paper (%) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ours = f"{_pct(r['mean'])} ± {_pct(r['std'])}" if r["n_seeds"] > 1 else _pct(r["mean"])
        lines.append(
            f"| {r['experiment']} | {r['dataset']} | {r['negatives']} | {r['mode']} | {r['num_steps']} | "
            f"{r['metric']} | {ours} | {r['n_seeds']} | {_pct(r['paper'])} |"
        )
    notes = sorted({r["paper_note"] for r in rows if r["paper"] is None and r["paper_note"]})
    return "\n".join(lines + ([""] + [f"paper --: {n}" for n in notes] if notes else []))


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


@torch.no_grad()
def episode_embeddings(model: torch.nn.Module, episodes: Episodes, episode: int = 0) -> np.ndarray:
    """The encoded states of one episode, ``[T+1, K, D]`` (model in eval mode)."""
    emb = embed_paths(model, _one(episodes, episode), 1, all_states=True, progress=False)
    return emb["states"][0].numpy()


def _one(episodes: Episodes, e: int) -> Episodes:
    ids = None if episodes.state_ids is None else episodes.state_ids[e : e + 1]
    return Episodes(episodes.frames[e : e + 1], episodes.actions[e : e + 1], ids, dict(episodes.attrs))


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


def slot_motion(z: np.ndarray) -> np.ndarray:
    """Total latent path length of each slot over an episode, ``z [T+1, K, D] -> [K]``: near 0 for a
    slot that stays put (an immovable object, or a slot that encodes nothing that moves)."""
    return np.linalg.norm(np.diff(z, axis=0), axis=-1).sum(0)


def spec_dict(spec: Experiment) -> dict[str, Any]:
    """The spec as plain JSON-able values (for ``save_results``)."""
    d = asdict(spec)
    d["folder"] = spec.folder_name()
    return d
