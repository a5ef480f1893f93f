"""Experiments as data: one spec per (dataset, comparison), one call to train, evaluate and aggregate::

    spec = Experiment(experiment="4.1", dataset="Shapes immovable", train_data="shapes_imm_train",
                      eval_data="shapes_imm_eval", model={"encoder": "small"},
                      strategies={"baseline": {}, "mixed": {"beta": 0.5, "time_aligned": False}},
                      seeds=[1, 2, 3], epochs=100, settings=["global_dedup", "local_dedup"],
                      num_steps=[1, 5, 10])
    rows = run(spec)               # = aggregate(spec, evaluate_all(spec, train_all(spec)))
    print(report.markdown_table(rows))

``run`` ensures both datasets exist (README names reduced by the divisors, or ``.h5`` paths), trains
every (strategy, seed) model into ``checkpoints/<spec.folder_name()>/<strategy>_s<seed>`` (a
finished run is reused, an interrupted one resumed), scores each model in every evaluation setting
and roll-out length (:func:`cswm_lib.evaluate.evaluate_settings`: settings, ``_no_transition``
controls, the start-state metric) and returns one row per (strategy, setting, num_steps, metric)
with the mean and sample std over seeds::

    {"experiment": "4.1", "dataset": "Shapes immovable", "strategy": "baseline", "setting": "global_dedup",
     "num_steps": 1, "metric": "Hits@1", "mean": 0.93, "std": 0.02, "n_seeds": 3, "scale": "cpu",
     "paper": None, "paper_note": "not known to us ..."}

Tables and figures of the rows are in :mod:`cswm_lib.report`, measurements of latents in
:mod:`cswm_lib.analysis`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cswm_lib import checks
from cswm_lib.checkpoint import load_model
from cswm_lib.curves import eval_subset
from cswm_lib.data.episodes import Episodes
from cswm_lib.data.generate import README_DATASETS, readme_dataset
from cswm_lib.data.hdf5 import load_episodes_cached
from cswm_lib.errors import CswmError
from cswm_lib.evaluate import NEAREST_START, check_setting, evaluate_settings
from cswm_lib.executor import Executor, Job, get_executor
from cswm_lib.negatives import STRATEGIES
from cswm_lib.train import TrainConfig, read_log, total_updates, train
from cswm_lib.utils import checkpoints_dir, get_device, project_relative, project_root

#: The model flags of the negative-sampling README's training commands per world, beside the data
#: of :data:`cswm_lib.data.generate.README_DATASETS`: ``--encoder small`` (Shapes), ``--encoder large``
#: (Cubes), ``--encoder medium --embedding-dim 4 --action-dim 6 --copy-action --num-objects 3|5``
#: (Pong | Space Invaders); ``hidden_dim`` is train.py's default. Reduced scales change only what
#: they must (:func:`readme_model`).
README_MODELS: dict[str, dict[str, Any]] = {
    "shapes": dict(encoder="small", hidden_dim=512),
    "cubes": dict(encoder="large", hidden_dim=512),
    "pong": dict(encoder="medium", embedding_dim=4, action_dim=6, num_objects=3, copy_action=True,
                 hidden_dim=512),
    "spaceinvaders": dict(encoder="medium", embedding_dim=4, action_dim=6, num_objects=5, copy_action=True,
                          hidden_dim=512),
}


def readme_model(world: str, **changes: Any) -> dict[str, Any]:
    """The README's model flags for ``world`` (a key of :data:`README_MODELS`) with ``changes``
    (e.g. ``hidden_dim=128`` at the small scale): the ``model`` of an :class:`Experiment`."""
    if world not in README_MODELS:
        raise CswmError(f"unknown world {world!r}: expected one of {', '.join(README_MODELS)}")
    return {**README_MODELS[world], **changes}


#: What the results table says where the paper's number is not known to us.
PAPER_UNKNOWN = (
    "not known to us: the paper's table values were not found (arXiv 2107.11676; "
    "github.com/ondrejbiza/negative-sampling-icml-21 gives the commands, not the results)"
)
#: Metric names in result rows -> keys of the dict :func:`cswm_lib.evaluate.evaluate` returns.
METRICS = ("Hits@1", "Hits@5", "Hits@10", "MRR")
#: The strategy name of the untrained-encoder control's records (:func:`score_untrained`).
UNTRAINED = "untrained"
#: The fields of a result row (:func:`aggregate`).
ROW_KEYS = ("experiment", "dataset", "strategy", "setting", "num_steps", "metric", "mean", "std",
            "n_seeds", "scale", "eval_episodes", "paper", "paper_note")

def strategy_config(strategy: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """The :class:`TrainConfig` fields of a run of ``strategy`` (a strategy id): the strategy, then
    its ``overrides`` (e.g. ``beta``, ``time_aligned``)."""
    return {"strategy": strategy, **overrides}


@dataclass
class Experiment:
    """One comparison of negative-sampling strategies on one dataset.

    Attributes:
        experiment: paper section, e.g. ``"4.1"``; dataset: table label, e.g. ``"Shapes immovable"``.
        train_data, eval_data: names in :data:`cswm_lib.data.generate.README_DATASETS`, or paths of
            existing ``.h5`` files (e.g. the A3C splits of :func:`cswm_lib.a3c.collect.split_path`);
            README files hold ``README size // divisor`` episodes (at least ``min_episodes``).
        model: TrainConfig fields shared by all runs (the README flags: encoder, embedding_dim, ...).
        strategies: ``{strategy: TrainConfig overrides}`` keyed by the strategy id
            (:data:`cswm_lib.negatives.STRATEGIES`), which is the run's strategy, e.g.
            ``{"baseline": {}, "mixed": {"beta": 0.5, "time_aligned": False}}``.
        seeds, epochs, batch_size, learning_rate: training; one model per (strategy, seed).
        num_updates: the budget in optimizer updates (wins over ``epochs``).
        eval_every, eval_episodes: a learning curve (:mod:`cswm_lib.curves`) every ``eval_every``
            updates on the first ``eval_episodes`` eval episodes; 0 = none.
        eval_size: the eval set's episodes, more than the README's too (None: its size //
            ``eval_divisor``): a larger set from the same generator begins with the README's set.
        published_eval_episodes: also score every model on the first this many eval episodes (the
            README's eval set, which published numbers used: more candidates lower Hits@1). Every
            record names the ``eval_episodes`` it was scored on.
        settings: evaluation settings (:mod:`cswm_lib.vocabulary`), optionally with the suffix
            ``_no_transition`` (the no-transition predictor ``p = z_0``).
        num_steps: latent roll-out lengths L; metrics: some of :data:`METRICS`.
        paper: published values, keyed ``"<strategy>|<setting>|<num_steps>|<metric>"``; others are
            ``None``.
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
    eval_size: int | None = None  # eval episodes to generate (None: README size // eval_divisor)
    published_eval_episodes: int | None = None  # also score on the first this many (README's set)
    batch_size: int = 1024
    eval_batch_size: int = 100  # batch of the ``batched`` settings (eval_ids_b.py: 100)
    learning_rate: float = 5e-4
    settings: Sequence[str] = ("global_dedup",)
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
        for setting in self.settings:
            check_setting(setting)
        bad = [s for s in self.strategies if s not in STRATEGIES]
        if bad:
            raise CswmError(f"experiment {self.experiment}: unknown strategy {bad[0]!r}: the keys of "
                            f"strategies are strategy ids, expected some of {', '.join(STRATEGIES)}")
        bad = [m for m in self.metrics if m not in METRICS]
        if bad:
            raise CswmError(f"unknown metric(s) {bad}: expected some of {', '.join(METRICS)}")
        for name in ("eval_size", "published_eval_episodes"):
            if getattr(self, name) is not None:
                checks.integer(getattr(self, name), name, 1)
        if not self.seeds or not self.strategies or not self.num_steps:
            raise CswmError(
                f"experiment {self.experiment}: seeds, strategies and num_steps must be non-empty"
            )

    def train_config(
        self, strategy: str, seed: int, dataset: str | Path, eval_dataset: str | Path | None = None
    ) -> TrainConfig:
        """The :class:`TrainConfig` of one run (``<strategy>_s<seed>`` under :meth:`folder_name`)."""
        return TrainConfig(
            dataset=str(dataset),
            name=f"{strategy}_s{seed}",
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
            **{**self.model, **strategy_config(strategy, self.strategies[strategy])},
        )

    def folder_name(self) -> str:
        """``<experiment>_<train data>_div<d>_<budget>_<hash>``: one folder per training setting
        (budget ``e<epochs>`` or ``u<updates>``; the hash covers model flags, batch size, learning
        rate and the curve settings), so scales never share runs."""
        key = [self.model, self.batch_size, self.learning_rate]
        if self.eval_every:
            key += [self.eval_every, self.eval_episodes, _data_key(self.eval_data), self.eval_divisor]
            if self.eval_size is not None:
                key.append(self.eval_size)
        digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:8]
        budget = f"e{self.epochs}" if self.num_updates is None else f"u{self.num_updates}"
        if _is_file_name(self.train_data):
            return f"{self.experiment}_{Path(self.train_data).stem}_{budget}_{digest}"
        return f"{self.experiment}_{self.train_data}_div{self.train_divisor}_{budget}_{digest}"


def _is_file_name(name: str | Path) -> bool:
    return str(name).endswith(".h5")


def _data_key(name: str | Path) -> str:
    """A dataset as a run folder's hash sees it: a README name as it is, a file by its path relative
    to the project when it lies inside it -- so the same runs are found from any copy of the project
    (a worktree, another machine), not only from the folder that trained them."""
    if not _is_file_name(name):
        return str(name)
    path = Path(name).absolute()
    return project_relative(path, project_root().absolute()) or path.as_posix()


def _dataset(name: str, divisor: int, **kw: Any) -> Path:
    if not _is_file_name(name):
        return readme_dataset(name, divisor, **kw)
    if not Path(name).is_file():
        raise CswmError(f"dataset file not found: {name}")
    return Path(name)


def eval_path(spec: Experiment) -> Path:
    """Ensure (generate or reuse) the eval file of ``spec``; return its path."""
    kw = dict(min_episodes=spec.min_episodes, progress=spec.progress)
    if spec.eval_size is None:
        return _dataset(spec.eval_data, spec.eval_divisor, **kw)
    if _is_file_name(spec.eval_data):
        raise CswmError(f"experiment {spec.experiment}: eval_size needs a README eval set, "
                        f"not the file {spec.eval_data}")
    return _dataset(spec.eval_data, 1, episodes=spec.eval_size, **kw)


def datasets(spec: Experiment) -> tuple[Path, Path]:
    """Ensure (generate or reuse) the train and eval files of ``spec``; return their paths."""
    train_path = _dataset(spec.train_data, spec.train_divisor, min_episodes=spec.min_episodes,
                          progress=spec.progress)
    return train_path, eval_path(spec)


def _finished(config: TrainConfig) -> bool:
    """Whether the run's log reaches its budget (updates, or epochs for logs without updates)."""
    try:
        log = read_log(config.folder())
    except CswmError:
        return False
    if config.num_updates is not None:
        return bool(log) and log[-1].get("updates", 0) >= config.num_updates
    return len(log) >= config.epochs


def train_run(config: TrainConfig) -> Path:
    """One training run (a job of :func:`train_jobs`): train, reuse or resume it; return its folder."""
    t0 = time.perf_counter()
    episodes = load_episodes_cached(config.dataset)
    curve = config.eval_every and config.eval_dataset
    eval_set = load_episodes_cached(config.eval_dataset) if curve else None
    folder = train(config, episodes, eval_set)
    print(
        f"trained {config.name}: {total_updates(config, episodes.num_transitions)} updates of "
        f"{config.batch_size} on {episodes.num_transitions} transitions in {time.perf_counter() - t0:.0f} s",
        flush=True,
    )
    return folder


def run_name(spec: Experiment, strategy: str, seed: int) -> str:
    """One run's name in progress and error lines: ``"4.1 Shapes immovable/baseline_s1"``."""
    return f"{spec.experiment} {spec.dataset}/{strategy}_s{seed}"


def run_origin(config: TrainConfig) -> str:
    """Where a run's weights will come from, decided before training: ``"reused"`` (a finished run in
    its checkpoint folder), ``"resumed"`` (an interrupted one: its ``state.pt``) or ``"trained"`` (from
    scratch in this sweep). A record names it for every run."""
    if _finished(config):
        return "reused"
    return "resumed" if (config.folder() / "state.pt").exists() else "trained"


def run_origins(specs: dict[str, Experiment]) -> dict[str, dict[str, dict[str, str]]]:
    """:func:`run_origin` of every run of ``specs``: ``{name: {"<strategy>_s<seed>": {"origin",
    "folder"}}}`` (the folder relative to the checkpoints folder, where a reused run lives)."""
    out: dict[str, dict[str, dict[str, str]]] = {}
    for name, spec in specs.items():
        train_path, eval_path = datasets(spec)
        for strategy in spec.strategies:
            for seed in spec.seeds:
                cfg = spec.train_config(strategy, seed, train_path, eval_path)
                out.setdefault(name, {})[cfg.name] = {
                    "origin": run_origin(cfg), "folder": f"{spec.folder_name()}/{cfg.name}"}
    return out


def train_jobs(spec: Experiment) -> tuple[list[Job], dict[tuple[str, int], Path]]:
    """The training jobs of ``spec`` that still have updates to go (finished runs are skipped), and
    the checkpoint folder of every (strategy, seed) run."""
    train_path, eval_path = datasets(spec)
    jobs, folders = [], {}
    for strategy in spec.strategies:
        for seed in spec.seeds:
            cfg = spec.train_config(strategy, seed, train_path, eval_path)
            folders[strategy, seed] = cfg.folder()
            if not _finished(cfg):
                inputs = [train_path] + ([eval_path] if cfg.eval_dataset else [])
                jobs.append(Job(run_name(spec, strategy, seed), train_run, (cfg,), inputs=inputs,
                                outputs=[cfg.folder()]))
    return jobs, folders


def train_all(spec: Experiment, executor: str | Executor | None = None) -> dict[tuple[str, int], Path]:
    """Train (or reuse / resume) every (strategy, seed) model through ``executor`` (see
    :func:`cswm_lib.executor.get_executor`; default ``local``); return their checkpoint folders."""
    return train_specs({spec.dataset: spec}, executor)[spec.dataset]


def score_model(spec: Experiment, model: torch.nn.Module, episodes: Episodes) -> list[dict[str, Any]]:
    """Scores of one model in every setting, roll-out length and metric of ``spec``
    (:func:`cswm_lib.evaluate.evaluate_settings`): ``[{"setting", "num_steps", "metric", "value"}]``."""
    scored = evaluate_settings(model, episodes, spec.settings, spec.num_steps, spec.eval_batch_size,
                               spec.device)
    rows = []
    for (setting, num_steps), r in scored.items():
        rows += [dict(setting=setting, num_steps=num_steps, metric=metric, value=r[metric])
                 for metric in [*spec.metrics, NEAREST_START] if metric in r]
    return rows


def eval_sets(spec: Experiment, episodes: Episodes) -> list[Episodes]:
    """The sets every model of ``spec`` is scored on: the whole eval set, then its first
    ``published_eval_episodes`` episodes and the learning curve's first ``eval_episodes`` (each
    when smaller, once), so that the curve's point at the selected weights is a final score too."""
    sizes = [spec.published_eval_episodes, spec.eval_episodes if spec.eval_every else None]
    sizes = sorted({n for n in sizes if n and n < episodes.num_episodes}, reverse=True)
    return [episodes, *(eval_subset(episodes, n) for n in sizes)]


def score_sets(spec: Experiment, model: torch.nn.Module, episodes: Episodes) -> list[dict[str, Any]]:
    """:func:`score_model` on every set of :func:`eval_sets`; each row names its ``eval_episodes``."""
    return [dict(r, eval_episodes=s.num_episodes)
            for s in eval_sets(spec, episodes) for r in score_model(spec, model, s)]


def score_run(spec: Experiment, eval_path: str | Path, folder: str | Path) -> list[dict[str, Any]]:
    """Score one trained model (a job of :func:`evaluate_all`): :func:`score_sets` on the eval file."""
    episodes = load_episodes_cached(eval_path)
    episodes.attrs.setdefault("path", str(eval_path))
    model = load_model(folder, get_device(spec.device))
    return score_sets(spec, model, episodes)


def evaluate_all(
    spec: Experiment, folders: dict[tuple[str, int], Path], executor: str | Executor | None = None
) -> list[dict[str, Any]]:
    """Score every trained model (one job per model, through ``executor``); one record per
    (strategy, seed, setting, num_steps, metric) with its ``value``."""
    _, eval_path = datasets(spec)
    jobs = [
        Job(f"score {run_name(spec, strategy, seed)}", score_run, (spec, eval_path, folder),
            inputs=[eval_path, folder])
        for (strategy, seed), folder in folders.items()
    ]
    try:
        scores = get_executor(executor).map(jobs, label=f"score {spec.experiment} {spec.dataset}")
    finally:
        load_episodes_cached.cache_clear()
    return [
        dict(strategy=strategy, seed=seed, **r)
        for ((strategy, seed), job) in zip(folders, jobs, strict=True)
        for r in scores[job.name]
    ]


def score_untrained(spec: Experiment) -> list[dict[str, Any]]:
    """The untrained-encoder control: for each seed, the model every run of that seed starts from
    (``torch.manual_seed(seed)`` then the model, as :func:`cswm_lib.train.train` builds it), scored
    like a trained one (:func:`score_model`); records of the strategy ``"untrained"``. It needs no
    training, so it runs in this process."""
    from cswm_lib.model import CSWM

    _, eval_path = datasets(spec)
    episodes = load_episodes_cached(eval_path)
    out = []
    for seed in spec.seeds:
        config = spec.train_config(next(iter(spec.strategies)), seed, eval_path)
        torch.manual_seed(seed)
        model = CSWM(config.model_config(episodes.obs_shape))
        out += [dict(strategy=UNTRAINED, seed=seed, **r) for r in score_sets(spec, model, episodes)]
    return out


def aggregate(spec: Experiment, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and sample standard deviation (ddof 1; 0 for one seed) over seeds -> result rows, one per
    (strategy, setting, num_steps, metric, eval_episodes)."""
    groups: dict[tuple, list[float]] = defaultdict(list)
    for r in records:
        key = r["strategy"], r["setting"], r["num_steps"], r["metric"], r.get("eval_episodes")
        groups[key].append(float(r["value"]))
    rows = []
    for (strategy, setting, num_steps, metric, n_eval), values in groups.items():
        v = np.asarray(values)
        paper = spec.paper.get(f"{strategy}|{setting}|{num_steps}|{metric}")
        rows.append(dict(
            experiment=spec.experiment, dataset=spec.dataset, strategy=strategy, setting=setting,
            num_steps=int(num_steps), metric=metric, mean=float(v.mean()),
            std=float(v.std(ddof=1)) if len(v) > 1 else 0.0, n_seeds=len(v), scale=spec.scale,
            eval_episodes=n_eval,
            paper=None if paper is None else float(paper), paper_note=spec.paper_note,
        ))
    return rows


def run(spec: Experiment) -> list[dict[str, Any]]:
    """Datasets, training (reused/resumed), evaluation and aggregation of one experiment -> rows."""
    return aggregate(spec, evaluate_all(spec, train_all(spec)))


# ---------------------------------------------------------------------------------- several specs


def train_specs(
    specs: dict[str, Experiment], executor: str | Executor | None = None
) -> dict[str, dict[tuple[str, int], Path]]:
    """Train every run of several experiments as ONE batch of jobs through ``executor`` (so a
    ``local:N`` or ``ray`` executor fans a whole chapter out): ``{name: {(strategy, seed): folder}}``."""
    t0 = time.perf_counter()
    jobs, folders = [], {}
    for name, spec in specs.items():
        spec_jobs, folders[name] = train_jobs(spec)
        jobs += spec_jobs
    try:
        get_executor(executor).map(jobs, label="train")
    finally:
        load_episodes_cached.cache_clear()
    done = sum(len(f) for f in folders.values())
    print(f"{done} models ready ({len(jobs)} trained now) in {time.perf_counter() - t0:.0f} s")
    return folders


def score_specs(
    specs: dict[str, Experiment],
    folders: dict[str, dict[tuple[str, int], Path]],
    executor: str | Executor | None = None,
) -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]]]:
    """:func:`evaluate_all` + :func:`aggregate` for several experiments: ``(records by name, rows)``."""
    records, rows = {}, []
    for name, spec in specs.items():
        t0 = time.perf_counter()
        records[name] = evaluate_all(spec, folders[name], executor) + score_untrained(spec)
        rows += aggregate(spec, records[name])
        print(f"{name}: scored in {time.perf_counter() - t0:.1f} s")
    return records, rows


def verdict_set(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records (or result rows) of the largest eval set among ``rows`` (``eval_episodes``; rows
    without it, from records made before it existed, form one set): the set a verdict judges."""
    largest = max((r.get("eval_episodes") or 0 for r in rows), default=0)
    return [r for r in rows if (r.get("eval_episodes") or 0) == largest]


def select(rows: list[dict[str, Any]], **match: Any) -> list[dict[str, Any]]:
    """Rows whose fields equal every ``match`` value (a list/tuple value means "one of")."""

    def ok(r: dict[str, Any]) -> bool:
        return all(r[k] in v if isinstance(v, (list, tuple)) else r[k] == v for k, v in match.items())

    return [r for r in rows if ok(r)]


def spec_dict(spec: Experiment) -> dict[str, Any]:
    """The spec as plain JSON-able values (for ``save_results``)."""
    d = asdict(spec)
    d["folder"] = spec.folder_name()
    return d


def spec_from_dict(d: dict[str, Any]) -> Experiment:
    """The :class:`Experiment` a :func:`spec_dict` describes (a record's ``specs`` entry); fields a
    record made before they existed take their defaults."""
    names = {f.name for f in fields(Experiment)}
    return Experiment(**{k: v for k, v in d.items() if k in names})
