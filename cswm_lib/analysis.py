"""Measurements of learned latents: where the states of a trained C-SWM lie and how they move.

Each function takes a model (or embeddings) and an eval set, or the result rows of an experiment,
and returns numbers; :mod:`cswm_lib.report` turns them into tables and figures, and the explorer
(:mod:`cswm_lib.widgets`) shows them live.

* :func:`local_global_view` -- the distances behind one query's local and global score;
* :func:`slot_motion` -- how far each object slot moves over an episode;
* :func:`slot_paths` -- the object slots of trained models over one training episode;
* :func:`slot_object_r2` -- which slot tracks which object;
* :func:`gap` -- a strategy's score minus the baseline's, with the seed spread as a yardstick;
* :func:`beyond_hinge` -- how many pairs of distinct states a model keeps a hinge apart;
* :func:`energy_summary` -- positive energies and the energies between the states of a batch;
* :func:`pca_2d`, :class:`NearestStates` -- a 2D view of the latent space and its nearest states.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cswm_lib.checkpoint import load_model
from cswm_lib.data.episodes import Episodes
from cswm_lib.errors import CswmError
from cswm_lib.evaluate import embed_paths
from cswm_lib.experiments import select
from cswm_lib.utils import get_device, torch_threads


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
    emb = embed_paths(model, episodes, [num_steps], device=device, all_states=True, progress=False)[num_steps]
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


def slot_motion(z: np.ndarray) -> np.ndarray:
    """Total latent path length of each slot over an episode, ``z [T+1, K, D] -> [K]``: near 0 for a
    slot that stays put (an immovable object, or a slot that encodes nothing that moves)."""
    return np.linalg.norm(np.diff(z, axis=0), axis=-1).sum(0)


def slot_paths(
    data: dict[str, tuple[Episodes, Episodes]],
    folders: dict[str, dict[tuple[str, int], Path]],
    strategies: Sequence[str],
    seed: int,
    device: str | torch.device | None = None,
) -> dict[tuple[str, str], np.ndarray]:
    """The object slots over training episode 0 of ``data[dataset][0]`` (``z [T+1, K, D]``) for the
    model of ``seed`` of every (dataset, strategy): ``{(dataset, strategy): z}``, from
    ``folders = {dataset: {(strategy, seed): run folder}}``; a dataset without a run of ``seed``
    (one with fewer seeds than another) has no path."""
    paths = {}
    for name, (train_set, _) in data.items():
        for strategy in strategies:
            if (strategy, seed) not in folders[name]:
                continue
            model = load_model(folders[name][strategy, seed], get_device(device))
            emb = embed_paths(model, train_set, all_states=True, num_episodes=1, progress=False)
            paths[name, strategy] = emb["states"][0].numpy()
    return paths


def slot_lengths(paths: dict[tuple[str, str], np.ndarray]) -> dict[str, list[float]]:
    """:func:`slot_motion` of every path of :func:`slot_paths`, rounded to 0.01:
    ``{"<dataset> | <strategy>": [length per slot]}``."""
    return {f"{name} | {strategy}": [round(float(x), 2) for x in slot_motion(z)]
            for (name, strategy), z in paths.items()}


def slot_object_r2(z: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Which slot tracks which object: ``R^2`` of the best affine map from slot k's embedding to
    object j's position, for embeddings ``z [N, K, D]`` and ground-truth positions ``[N, J, P]``.

    Returns ``[K, J]``: 1 = slot k's embedding determines where object j is, 0 = it says nothing
    (R^2 pools the P coordinates: 1 - residual sum of squares / total sum of squares).
    """
    N, K, _ = z.shape
    y = positions.reshape(N, -1, positions.shape[-1]).astype(np.float64)  # [N, J, P]
    J = y.shape[1]
    yc = y - y.mean(0)
    total = (yc**2).sum((0, 2))  # [J]
    out = np.zeros((K, J))
    for k in range(K):
        x = np.concatenate([z[:, k].astype(np.float64), np.ones((N, 1))], 1)  # [N, D+1]
        coef, *_ = np.linalg.lstsq(x, y.reshape(N, -1), rcond=None)
        resid = ((y.reshape(N, -1) - x @ coef) ** 2).reshape(N, J, -1).sum((0, 2))
        out[k] = np.where(total > 0, 1 - resid / np.maximum(total, 1e-12), 0.0)
    return out


def gap(
    rows: list[dict[str, Any]],
    dataset: str,
    new: str,
    base: str = "baseline",
    setting: str = "global_dedup",
    num_steps: int = 1,
    metric: str = "Hits@1",
) -> dict[str, float]:
    """``new - base`` (two strategies) for one dataset/setting/num_steps/metric: ``{"base", "new",
    "diff", "pooled_std"}`` (pooled_std = sqrt(std_base^2 + std_new^2), a yardstick for whether the
    difference is noise)."""
    picked = {}
    for strategy in (base, new):
        hit = select(rows, dataset=dataset, strategy=strategy, setting=setting, num_steps=num_steps,
                     metric=metric)
        if len(hit) != 1:
            raise CswmError(
                f"expected one row for {dataset}/{strategy}/{setting}/{num_steps}/{metric}, got {len(hit)}"
            )
        picked[strategy] = hit[0]
    b, n = picked[base], picked[new]
    return {
        "base": b["mean"],
        "new": n["mean"],
        "diff": n["mean"] - b["mean"],
        "pooled_std": float(np.hypot(b["std"], n["std"])),
    }


@torch.no_grad()
def beyond_hinge(model: torch.nn.Module, episodes: Episodes, num_episodes: int) -> dict[str, float]:
    """The share of pairs of DISTINCT states (their ground-truth ids differ) whose energy under
    ``model`` exceeds its hinge -- pairs the loss no longer pushes apart -- among the states
    ``o_0 .. o_{T-1}`` of the first ``num_episodes`` episodes (encoded by
    :func:`cswm_lib.evaluate.embed_paths`): ``{"within_episode", "across_episodes"}``. Two states of
    one episode differ only in what moved, so a model that keeps them apart encodes the objects that
    move.
    """
    if episodes.state_ids is None:
        raise CswmError("beyond_hinge needs ground-truth state ids (generate with save_state_ids=True)")
    emb = embed_paths(model, episodes, 1, all_states=True, num_episodes=num_episodes, progress=False)
    E, T = emb["states"].shape[0], episodes.episode_length
    z = emb["states"][:, :T].flatten(0, 1)  # [E*T, K, D]
    ids = torch.from_numpy(episodes.state_ids[:E, :T]).flatten(0, 1)
    distinct = (ids[:, None] != ids[None]).any(-1)
    episode = torch.arange(E).repeat_interleave(T)
    same_episode = episode[:, None] == episode[None]
    beyond = model.energy(z[:, None], z[None]) > model.config.hinge
    return {
        "within_episode": beyond[distinct & same_episode].float().mean().item(),
        "across_episodes": beyond[distinct & ~same_episode].float().mean().item(),
    }


@torch.no_grad()
def energy_summary(model: torch.nn.Module, z: torch.Tensor, z_next: torch.Tensor, action: torch.Tensor
                   ) -> dict[str, float]:
    """Energies of one batch of transitions (states ``z``, ``z_next`` ``[B, K, D]``, actions ``[B]``):
    ``positive`` -- the mean energy of the prediction ``z + T(z, a)`` against ``z_next``;
    ``pair`` -- the mean energy between two different states of the batch; ``inside_hinge`` -- the
    share of those pairs closer than the hinge (negatives the loss still pushes)."""
    other = model.energy(z[:, None], z[None])  # [B, B]: every pair of states in the batch
    off_diagonal = other[~torch.eye(len(z), dtype=torch.bool, device=z.device)]
    return {
        "positive": model.energy(z, z_next, action).mean().item(),
        "pair": off_diagonal.mean().item(),
        "inside_hinge": (off_diagonal < model.config.hinge).float().mean().item(),
    }


def pca_2d(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """A 2D view of points ``[N, D]``: ``(mean [D], basis [D, 2], explained variance share [2] | None)``.

    D > 2: the top two principal components; D = 2: the identity; D = 1: the line on the x axis.
    """
    D = z.shape[1]
    mean = z.mean(0)
    if D <= 2:
        basis = np.eye(D, 2, dtype=np.float32)
        return np.zeros_like(mean), basis, None
    x = (z - mean).astype(np.float64)
    evals, evecs = np.linalg.eigh(x.T @ x / max(len(x) - 1, 1))
    order = np.argsort(evals)[::-1][:2]
    total = evals.clip(min=0).sum()
    share = evals[order].clip(min=0) / total if total > 0 else np.zeros(2)
    return mean, evecs[:, order].astype(np.float32), share


class NearestStates:
    """Brute-force nearest-neighbour index over states ``[N, K, D]`` in the model's energy:
    ``E(z, z') = 0.5 / sigma^2 * mean_k sum_d (z_kd - z'_kd)^2`` (no transition)."""

    def __init__(self, z: np.ndarray, sigma: float):
        self.z = np.ascontiguousarray(z.reshape(len(z), -1), dtype=np.float32)  # [N, K*D]
        self.sq = np.einsum("nd,nd->n", self.z, self.z)
        self.scale = 0.5 / sigma**2 / z.shape[1]

    def query(
        self, q: np.ndarray, k: int, exclude: int | slice | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` states nearest to ``q [K, D]`` -> (flat indices ``[k]``, energies ``[k]``), nearest
        first; ``exclude`` (a flat index or a slice, e.g. the query's own state or episode) is never
        returned."""
        q = q.reshape(-1).astype(np.float32)
        # einsum, not BLAS: a threaded sgemv on a busy machine took 20 ms here instead of 1 ms
        d2 = self.sq - 2 * np.einsum("nd,d->n", self.z, q) + q @ q
        if exclude is not None:
            d2[exclude] = np.inf
        k = min(k, int(np.isfinite(d2).sum()))
        if k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        idx = np.argpartition(d2, k - 1)[:k]
        idx = idx[np.argsort(d2[idx], kind="stable")]
        return idx, np.maximum(d2[idx], 0) * self.scale

    def nearest(
        self, rows: np.ndarray, groups: np.ndarray | None = None, chunk: int = 1024
    ) -> tuple[np.ndarray, np.ndarray]:
        """Nearest OTHER state of each state in ``rows`` (flat indices ``[Q]``) -> (indices ``[Q]``,
        energies ``[Q]``), computed in chunks of queries. With ``groups`` (one label per state, e.g.
        its episode, ``[N]``) states of the query's own group are skipped as well."""
        rows = np.asarray(rows, dtype=np.int64)
        idx, energy = np.empty(len(rows), np.int64), np.empty(len(rows), np.float32)
        z = torch.from_numpy(self.z)
        for s in range(0, len(rows), chunk):
            r = rows[s : s + chunk]
            with torch_threads(1):
                dot = (z[torch.from_numpy(r)] @ z.T).numpy()
            d2 = self.sq[r, None] - 2 * dot + self.sq[None]
            d2[np.arange(len(r)), r] = np.inf
            if groups is not None:
                d2[groups[r, None] == groups[None]] = np.inf
            idx[s : s + chunk] = d2.argmin(1)
            energy[s : s + chunk] = np.maximum(d2.min(1), 0) * self.scale
        return idx, energy
