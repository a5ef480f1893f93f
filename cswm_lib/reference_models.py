"""The recorded reference models shipped with the book: a few trained models of a recorded run
(``book/results/<scale>/models/<chapter>/<dataset>/<strategy>_s<seed>/``, each ``model.pt`` and
``config.json``), so that anyone can load what a working C-SWM looks like and re-score it against
its record (:func:`rescore`) without training. :func:`ship` copies them out of a run's checkpoints."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from cswm_lib.checkpoint import load_model
from cswm_lib.data.hdf5 import load_episodes
from cswm_lib.errors import CswmError
from cswm_lib.experiments import eval_path, score_sets, spec_from_dict
from cswm_lib.utils import atomic_path, get_device, project_root

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
            with atomic_path(target / name) as tmp:
                shutil.copyfile(source / name, tmp)
        out.append(target)
    return out


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
