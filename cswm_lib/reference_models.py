"""The recorded reference models shipped with the book: a few trained models of a recorded run
(``book/results/<scale>/models/<chapter>/<dataset>/<strategy>_s<seed>/``, each ``model.pt`` and
``config.json``), so that anyone can load what a working C-SWM looks like and re-score it against
its record (:func:`rescore`) without training. :func:`ship` copies them out of a run's checkpoints."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cswm_lib.checkpoint import load_model
from cswm_lib.data.hdf5 import load_episodes
from cswm_lib.errors import CswmError
from cswm_lib.experiments import eval_path, score_sets, spec_from_dict
from cswm_lib.report.results import load_record
from cswm_lib.utils import atomic_path, get_device, project_relative, project_root

FILES = ("model.pt", "config.json")


def slug(dataset: str) -> str:
    """A dataset's folder name: ``"Shapes immovable"`` -> ``shapes_immovable``."""
    return re.sub(r"[^a-z0-9]+", "_", dataset.lower()).strip("_")


def models_dir(chapter: str, scale: str = "cpu", root: Path | None = None) -> Path:
    """Where the shipped models of ``chapter``'s ``scale`` record live."""
    return (root or project_root() / "book" / "results") / scale / "models" / chapter


def model_folder(chapter: str, dataset: str, strategy: str, seed: int, scale: str = "cpu",
                 root: Path | None = None) -> Path:
    """The folder of one shipped model (it may not exist)."""
    return models_dir(chapter, scale, root) / slug(dataset) / f"{strategy}_s{int(seed)}"


def shipped(chapter: str, scale: str = "cpu", root: Path | None = None) -> list[tuple[str, str, int, Path]]:
    """Every shipped model of ``chapter``: ``[(dataset slug, strategy, seed, folder)]``."""
    out = []
    for folder in sorted(models_dir(chapter, scale, root).glob("*/*_s*")):
        strategy, _, seed = folder.name.rpartition("_s")
        if (folder / "model.pt").is_file() and seed.isdigit():
            out.append((folder.parent.name, strategy, int(seed), folder))
    return out


def ship(record: dict[str, Any], chapter: str, checkpoints: Path, picks: list[tuple[str, str, int]],
         root: Path | None = None) -> list[Path]:
    """Copy the models ``picks`` (``[(dataset, strategy, seed)]``) of a recorded run out of its
    ``checkpoints`` folder (the run's ``checkpoints_dir()``) next to its record; returns their
    folders. The record's spec names each run's folder; a pick the record does not hold is an error."""
    specs = record["results"]["specs"]
    out = []
    for dataset, strategy, seed in picks:
        spec = specs.get(dataset)
        if spec is None or strategy not in spec["strategies"] or seed not in spec["seeds"]:
            raise CswmError(f"the {chapter} record has no run {dataset} / {strategy} / seed {seed}")
        source = checkpoints / spec["folder"] / f"{strategy}_s{seed}"
        target = model_folder(chapter, dataset, strategy, seed, record["scale"], root)
        target.mkdir(parents=True, exist_ok=True)
        for name in FILES:
            if not (source / name).is_file():
                raise CswmError(f"{source / name} not found: is {checkpoints} the run's checkpoints folder?")
        with atomic_path(target / "model.pt") as tmp:
            shutil.copyfile(source / "model.pt", tmp)
        config = _portable(json.loads((source / "config.json").read_text()), checkpoints.resolve().parent)
        with atomic_path(target / "config.json") as tmp:
            tmp.write_text(json.dumps(config, indent=2) + "\n")
        out.append(target)
    return out


def _portable(obj: Any, root: Path) -> Any:
    """``obj`` with every absolute path made relative to the run's project ``root`` (a path outside
    it keeps its file name only): a shipped file never names the machine that made it."""
    if isinstance(obj, dict):
        return {k: _portable(v, root) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_portable(v, root) for v in obj]
    if isinstance(obj, str) and obj.startswith("/"):
        return project_relative(obj, root) or Path(obj).name
    return obj


def rescore(record: dict[str, Any], dataset: str, strategy: str, seed: int, folder: Path,
            device: str | None = "cpu") -> list[tuple[dict[str, Any], float]]:
    """Re-score one shipped model as its record scored it: the eval set regenerated from its seed
    (or reused from ``data_dir()``), every setting, roll-out length and metric of the record's spec.
    Returns ``[(recorded per-seed row, value now)]`` for every row of that run in the record."""
    results = record["results"]
    spec = spec_from_dict({**results["specs"][dataset], "device": device, "progress": False})
    episodes = load_episodes(eval_path(spec))
    now = score_sets(spec, load_model(folder, get_device(device)), episodes)
    key = ("setting", "num_steps", "metric")
    mine = [r for r in results["per_seed"][dataset] if r["strategy"] == strategy and r["seed"] == seed]
    by_key = {(*(r[k] for k in key), r.get("eval_episodes")): r["value"] for r in now}
    out = []
    for r in mine:
        wanted = (*(r[k] for k in key), r.get("eval_episodes") or episodes.num_episodes)
        if wanted not in by_key:
            raise CswmError(f"{dataset} / {strategy} / seed {seed}: the re-scoring has no {wanted}")
        out.append((r, by_key[wanted]))
    return out


@dataclass(frozen=True)
class Reference:
    """One shipped model, loaded: the model, its folder, one line saying where it comes from
    (:func:`describe`) and its record's per-seed rows (empty while the record is not there)."""

    model: Any
    folder: Path
    label: str
    rows: list[dict[str, Any]]


def record_path(chapter: str, scale: str = "cpu", root: Path | None = None) -> Path:
    """The record a chapter's shipped models belong to: ``book/results/<scale>/<chapter>.json``."""
    return (root or project_root() / "book" / "results") / scale / f"{chapter}.json"


def available(chapter: str, dataset: str, strategies: list[str] | tuple[str, ...], seed: int,
              scale: str = "cpu", root: Path | None = None) -> bool:
    """Whether a model of every strategy in ``strategies`` (one seed) is shipped."""
    return all((model_folder(chapter, dataset, s, seed, scale, root) / name).is_file()
               for s in strategies for name in FILES)


def model_line(folder: Path) -> str:
    """One line on a trained model from its ``config.json``: strategy, seed, training budget, data
    and hidden width."""
    cfg = json.loads((Path(folder) / "config.json").read_text())
    train, data = cfg.get("train", {}), cfg.get("data", {})
    strategy = train.get("strategy", "?")
    if strategy == "mixed":
        strategy = f"mixed (β = {train.get('beta')})"
    budget = (f"{train['num_updates']:,d} updates" if train.get("num_updates")
              else f"{train.get('epochs')} epochs")
    env = data.get("attrs", {}).get("env_id", "?")
    return (f"{strategy}, seed {train.get('seed')}: {budget} of {train.get('batch_size')} on "
            f"{data.get('num_episodes')} {env} episodes, hidden {cfg['model']['hidden_dim']}")


def describe(folder: Path, chapter: str, scale: str = "cpu", rows: list[dict[str, Any]] | None = None,
             recorded: bool = True) -> str:
    """One line for a shipped model (:func:`model_line`, and its record's rows when given):
    strategy, seed, training budget and data, the record it belongs to."""
    line = f"{model_line(folder)}; {chapter}'s `{scale}` record"
    if not recorded:
        return line + " (the record itself is not in this checkout)"
    for r in rows or []:
        if (r.get("setting"), r.get("num_steps"), r.get("metric")) == ("local_dedup", 1, "Hits@1"):
            line += f", recorded 1-step local_dedup Hits@1 {r['value']:.3f}"
            if r.get("eval_episodes"):
                line += f" ({r['eval_episodes']:,d} eval episodes)"
            break
    return line


def load(chapter: str, dataset: str, strategy: str, seed: int, scale: str = "cpu",
         device: str | None = "cpu", root: Path | None = None) -> Reference:
    """Load one shipped model with its one-line provenance (:func:`describe`); the record's rows of
    this model come along when the record is present."""
    folder = model_folder(chapter, dataset, strategy, seed, scale, root)
    if not (folder / "model.pt").is_file():
        raise CswmError(f"no shipped model {strategy} / seed {seed} of {dataset} ({folder})")
    path = record_path(chapter, scale, root)
    rows: list[dict[str, Any]] = []
    if path.is_file():
        per_seed = load_record(path)["results"].get("per_seed", {}).get(dataset, [])
        rows = [r for r in per_seed if r.get("strategy") == strategy and r.get("seed") == seed]
    label = describe(folder, chapter, scale, rows, recorded=path.is_file())
    return Reference(load_model(folder, get_device(device)), folder, label, rows)
