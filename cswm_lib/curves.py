"""Learning curves: scores of a model *during* training, every ``eval_every`` optimizer updates.

:func:`cswm_lib.train.train` calls :func:`curve_scores` at update 0 and every ``eval_every``
updates when the :class:`~cswm_lib.train.TrainConfig` names an ``eval_dataset``, and appends one
line per evaluation to ``<run folder>/curve.jsonl``::

    {"updates": 500, "epoch": 1.6, "loss": 0.41, "seconds": 83.2,
     "records": [{"setting": "local_dedup", "num_steps": 1, "metric": "Hits@1", "value": 0.87}, ...]}

``records`` has the same fields as the scores of :func:`cswm_lib.experiments.score_model`:

- ``local_dedup`` -- rank among the T + 1 states of the query's own episode, published dedup
  (``local`` when the eval set has no state ids),
- ``local_later_dedup`` -- rank among the T states of the episode after o_0 (``local_later``
  without ids): the candidates on which the no-transition control is "the nearest other state",
- ``global_dedup`` -- rank among all eval queries (``global`` when the eval set has no state ids),
- the same with the suffix ``_no_transition``: the control that predicts ``z_0`` for ``z_L``,
- metrics ``Hits@1`` and ``MRR`` at ``num_steps`` 1 and 5, and for the local setting the
  start-state metric ``nearest_start``: the share of predictions nearest the
  episode's start state (1 for a model without dynamics).

Curves written before the book named each concept once are read in today's names
(:func:`cswm_lib.vocabulary.modernise`).

The last point scores the final weights. After it, training appends one more point marked
``"weights": "selected"``: the scores of ``model.pt`` (the epoch with the lowest training loss, the
published selection that final scores use), at the ``updates`` when it was saved. :func:`read_curve`
leaves it out, :func:`read_selected` reads it; points without ``"weights"`` are of the weights of
their time (files written before this field have none).

The eval subset is fixed (the first ``eval_episodes`` episodes), so points of one curve are
comparable. Evaluation runs in eval mode without gradients and draws no random numbers, so a run
with curves ends with the same weights as one without.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cswm_lib.data.episodes import Episodes
from cswm_lib.errors import CswmError
from cswm_lib.evaluate import NEAREST_START, NO_TRANSITION, embed_paths
from cswm_lib.jsonl import read_jsonl
from cswm_lib.ranking import nearest_start, rank_global, rank_local, scores
from cswm_lib.vocabulary import modernise

#: The learning curves of one experiment, as :func:`curve_table` returns them, plain JSON-able
#: lists keyed by strategy, then seed, then ``updates`` or ``<setting>|<L>|<metric>``.
Curves = dict[str, dict[str, dict[str, list]]]
#: The learning curves of several experiments, keyed by dataset (what a chapter records).
CurveSet = dict[str, Curves]

#: roll-out lengths scored on a curve
CURVE_STEPS = (1, 5)


def eval_subset(episodes: Episodes, num_episodes: int) -> Episodes:
    """The first ``num_episodes`` episodes (all when fewer): the fixed set every curve point uses."""
    n = min(int(num_episodes), episodes.num_episodes)
    ids = None if episodes.state_ids is None else episodes.state_ids[:n]
    return Episodes(episodes.frames[:n], episodes.actions[:n], ids, dict(episodes.attrs))


@torch.no_grad()
def curve_scores(
    model: torch.nn.Module, episodes: Episodes, num_steps: Sequence[int] = CURVE_STEPS
) -> list[dict[str, Any]]:
    """Scores of ``model`` on ``episodes`` for one curve point: ``[{"setting", "num_steps", "metric",
    "value"}]`` (see the module docstring). Uses the library's rankers; draws no random numbers."""
    steps = [s for s in num_steps if s <= episodes.episode_length]
    if not steps:
        raise CswmError(f"eval episodes have {episodes.episode_length} steps; none of {list(num_steps)} fit")
    has_ids = episodes.state_ids is not None
    dedup = "published" if has_ids else None
    glob, loc, later = ("global_dedup", "local_dedup", "local_later_dedup") if has_ids else (
        "global", "local", "local_later")
    out = []
    for L, emb in embed_paths(model, episodes, steps, all_states=True, progress=False).items():
        ids = emb["state_ids"]
        later_ids = None if ids is None else ids[:, 1:]  # local_later: o_0 is no candidate
        for suffix, pred in (("", emb["predictions"]), (NO_TRANSITION, emb["states"][:, 0])):
            ranked = {
                loc: rank_local(pred, emb["states"], L, ids, dedup),
                later: rank_local(pred, emb["states"][:, 1:], L - 1, later_ids, dedup),
                glob: rank_global(pred, emb["targets"], emb["target_ids"], dedup),
            }
            for setting, ranking in ranked.items():
                r = scores(ranking, ks=(1,))
                out += [dict(setting=setting + suffix, num_steps=L, metric=m, value=r[m])
                        for m in ("Hits@1", "MRR")]
            if not suffix:
                out.append(dict(setting=loc, num_steps=L, metric=NEAREST_START,
                                value=nearest_start(pred, emb["states"])))
    return out


def _read_points(folder: str | Path) -> list[dict[str, Any]]:
    path = Path(folder) / "curve.jsonl"
    if not path.is_file():
        raise CswmError(f"no learning curve in {folder} (expected {path.name}; train with --eval-every)")
    return [modernise(p) for p in read_jsonl(path, "learning curve")]


def read_curve(folder: str | Path) -> list[dict[str, Any]]:
    """The points of ``<folder>/curve.jsonl`` (one dict per evaluation of the weights of the time,
    oldest first) in today's names (:func:`cswm_lib.vocabulary.modernise`), without the point of the
    selected weights (see :func:`read_selected`)."""
    return [p for p in _read_points(folder) if p.get("weights", "last") != "selected"]


def read_selected(folder: str | Path) -> dict[str, Any] | None:
    """The point of ``<folder>/curve.jsonl`` that scores the selected weights (``model.pt``, the epoch
    with the lowest training loss): its ``updates`` say when they were saved. ``None`` for curves
    written before training added it."""
    return next((p for p in _read_points(folder) if p.get("weights") == "selected"), None)


def curve_value(point: dict[str, Any], setting: str, num_steps: int = 1, metric: str = "Hits@1") -> float:
    """One number of a curve point, e.g. ``curve_value(p, "local_dedup_no_transition", 1, "Hits@1")``."""
    for r in point["records"]:
        if r["setting"] == setting and r["num_steps"] == num_steps and r["metric"] == metric:
            return float(r["value"])
    raise CswmError(f"curve point at update {point.get('updates')} has no {setting}/{num_steps}/{metric}")


def curve_key(setting: str, num_steps: int, metric: str) -> str:
    """Name of one score's series in :func:`curve_table`, e.g. ``"local|1|Hits@1"``."""
    return f"{setting}|{num_steps}|{metric}"


def _series(points: list[dict[str, Any]]) -> dict[str, list]:
    series: dict[str, list] = {"updates": [p["updates"] for p in points]}
    for i, p in enumerate(points):
        for r in p["records"]:
            key = curve_key(r["setting"], r["num_steps"], r["metric"])
            series.setdefault(key, [None] * len(points))[i] = r["value"]
    return series


def selected_key(key: str) -> str:
    """Name of a score of the selected weights in :func:`curve_table`, e.g.
    ``"selected:local_dedup|1|Hits@1"`` (``"selected:updates"``: when they were saved)."""
    return f"selected:{key}"


def curve_table(folders: dict[tuple[str, int], str | Path]) -> Curves:
    """The curves of several runs as plain JSON-able lists (for ``results.json`` and the figures of
    :mod:`cswm_lib.report`): ``{strategy: {seed: {"updates": [...], "<setting>|<L>|<metric>": [...]}}}``
    from ``folders = {(strategy, seed): run folder}``. A run whose curve has the point of its
    selected weights (:func:`read_selected`) also has that point's values, as lists of one, under
    :func:`selected_key` names (``"selected:updates": [u]``, ``"selected:<setting>|<L>|<metric>": [v]``),
    for a marker on the curve."""
    out: Curves = {}
    for (strategy, seed), folder in folders.items():
        series = _series(read_curve(folder))
        selected = read_selected(folder)
        if selected is not None:
            series.update({selected_key(k): v for k, v in _series([selected]).items()})
        out.setdefault(strategy, {})[str(seed)] = series
    return out


def departure(
    curves: Curves,
    strategy: str,
    setting: str = "local_dedup",
    num_steps: int = 1,
    metric: str = "Hits@1",
    margin: float = 0.05,
) -> int | None:
    """The first curve point (in updates) where ``strategy``'s mean score over seeds exceeds the mean
    of its own no-transition control by more than ``margin``: when the learned dynamics start to
    show. None when that never happens within the recorded budget."""
    seeds = curves[strategy].values()
    n = min(len(s["updates"]) for s in seeds)
    x = next(iter(seeds))["updates"][:n]
    score = np.mean([s[curve_key(setting, num_steps, metric)][:n] for s in seeds], 0)
    control = np.mean([s[curve_key(f"{setting}{NO_TRANSITION}", num_steps, metric)][:n] for s in seeds], 0)
    above = np.flatnonzero(score - control > margin)
    return int(x[above[0]]) if above.size else None
