"""Scoring world models: Hits@k and MRR of latent predictions, globally, de-duplicated, in batches
and within episodes -- the logic of the four published evaluation scripts, fast and memory-bounded.

Three layers:

1. ranking over embeddings (:func:`rank_global`, :func:`rank_local`, :func:`scores`): pure tensor
   functions, no model;
2. :func:`embed_paths`: a model and a path dataset -> predictions, targets (and all states): the
   project's one embedding function (experiments, analysis and the explorer call it too);
3. :func:`evaluate` (one call per setting, named by a preset of :data:`PRESETS`) and the CLI
   ``python -m cswm_lib.evaluate``.

How the original ranks (``eval.py``, ``eval_ids*.py``): for query ``i`` (one per eval episode) the
target ``t_i = enc(o_L)`` is compared with the predictions ``p_j`` of ALL queries; the true pair's
distance is prepended as column 0 and each row is stable-sorted, so the true match wins every tie.
Its 0-based rank is therefore simply ``#{j : d(t_i, p_j) < d(t_i, p_i)}`` -- we *count* that
number chunk by chunk (``||t||^2 + ||p||^2 - 2 t.p`` in float64 through a matrix product) instead
of building an ``N x N x (K*D)`` tensor and sorting every row. Near-ties are settled exactly: a pair
whose approximate distance lies within a proven rounding bound of the threshold is recomputed from
the coordinate differences, so ties (identical embeddings) behave exactly as in the original.
Distances are float64 (the original used float32: two distances that differ by less than float32
rounding may order differently; identical embeddings tie in both).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cswm_lib import CswmError
from cswm_lib.data.episodes import Episodes, to_float
from cswm_lib.model import check_compatible
from cswm_lib.utils import eval_mode, torch_threads

#: The named evaluation settings (``mode=`` of :func:`evaluate`, ``--mode`` of the command line,
#: ``modes`` of an experiment). A name says what it includes: the candidates (``global``: every
#: query's prediction; ``batched``: those of the query's batch of ``batch_size``; ``local``: the T + 1
#: states of the query's own episode) and the de-duplication by ground-truth state ids (``dedup``:
#: the published repair, a top candidate with the target's id counts as a hit; ``dedup_correct``:
#: every candidate with the target's id is a true match). Without a suffix nothing is de-duplicated.
PRESETS: dict[str, dict[str, Any]] = {
    "global": dict(mode="global"),  # eval.py
    "dedup": dict(mode="global", dedup="published"),  # eval_ids.py --dedup
    "dedup_correct": dict(mode="global", dedup="correct"),
    "batched": dict(mode="batched", order="original"),  # eval_ids_b.py
    # eval_ids_b.py --dedup: also its averaging (mean of running means), its dropped last batch and
    # its batches of the file's episodes in h5py's order (see ORDERS)
    "batched_dedup": dict(mode="batched", dedup="published", averaging="published", order="original"),
    "local": dict(mode="local"),
    "local_dedup": dict(mode="local", dedup="published", order="original"),  # eval_ids_b_inep.py --dedup
    "local_dedup_correct": dict(mode="local", dedup="correct"),
}
MODES = tuple(PRESETS)
#: Suffix of a mode scored with the no-transition predictor ``p = z_0`` (same encoder, no dynamics).
NO_TRANSITION = "_no_transition"
DEDUP = (None, "published", "correct")
AVERAGING = ("mean", "published")
#: The episode order of the queries -- ``"original"``: on an original-layout file, the order the published
#: scripts read it in (``Episodes.original_order``, h5py's "0", "1", "10", "100", ...), which
#: decides who shares a batch of 100 and which incomplete last batch is dropped; ``"numeric"`` --
#: episodes 0, 1, 2, ... (the order our loader and every reader uses). Files in our format have
#: one order only. Scores that neither batch nor drop episodes are the same in both.
ORDERS = ("numeric", "original")
_MEMORY = 2 * 2**20  # bytes of one [rows, candidates] work matrix (cache-sized chunks are fastest)


# ---------------------------------------------------------------------------------------------
# 1. ranking over embeddings


@dataclass
class Ranking:
    """Per-query ranking result.

    Attributes:
        rank: long ``[N]``, number of candidates placed before the (first) true match (0 = top).
        top1_dup: bool ``[N]``, the published de-duplication repair: the top candidate is not the
            true match but shares its ground-truth state id (counted as a hit; its rank becomes 0).
        group: long ``[N]``, index of the batch (candidate set) each query was ranked in.
        num_candidates: distinct candidates per query (N, the batch size, or T + 1).
        num_dup: long ``[N]``, other candidates whose state id equals the target's (0 without ids).
    """

    rank: torch.Tensor
    top1_dup: torch.Tensor
    group: torch.Tensor
    num_candidates: int
    num_dup: torch.Tensor

    @property
    def effective_rank(self) -> torch.Tensor:
        """Rank after the published repair (what the scripts feed into Hits@k and MRR)."""
        return torch.where(self.top1_dup, torch.zeros_like(self.rank), self.rank)


def _flat64(x: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.ndim < 2:
        raise CswmError(f"{name} must be [N, K, D] or [N, F], got shape {list(x.shape)}")
    x = x.reshape(x.shape[0], -1).to(torch.float64)
    if not torch.isfinite(x).all():
        raise CswmError(f"{name} contain NaN or inf values (did training diverge?)")
    return x


def _labels(ids: torch.Tensor | np.ndarray | None, n: int) -> torch.Tensor | None:
    """State ids ``[N, S]`` (or ``[N]``) -> one integer label per row, equal iff the ids are equal."""
    if ids is None:
        return None
    ids = torch.as_tensor(ids)
    if ids.shape[0] != n:
        raise CswmError(f"target_ids has {ids.shape[0]} rows but there are {n} queries")
    ids = ids.reshape(n, -1).cpu()
    return torch.unique(ids, dim=0, return_inverse=True)[1]


def _exact_sq(a: torch.Tensor, b: torch.Tensor, ia: torch.Tensor, ib: torch.Tensor,
              piece: int = 1 << 18) -> torch.Tensor:
    """Squared distances ``||a[ia] - b[ib]||^2`` for a list of pairs, from coordinate differences.

    The sum over features runs in a fixed order with element-wise ops, so identical pairs of
    vectors give bitwise identical distances wherever they sit.
    """
    out = torch.empty(ia.numel(), dtype=torch.float64, device=a.device)
    for s in range(0, ia.numel(), piece):
        diff = a[ia[s:s + piece]] - b[ib[s:s + piece]]
        sq = diff * diff
        acc = sq[:, 0].clone()
        for f in range(1, sq.shape[1]):
            acc += sq[:, f]
        out[s:s + piece] = acc
    return out


def rank_global(
    predictions: torch.Tensor | np.ndarray,
    targets: torch.Tensor | np.ndarray,
    target_ids: torch.Tensor | np.ndarray | None = None,
    dedup: str | None = None,
    batch_size: int | None = None,
    memory_bytes: int = _MEMORY,
) -> Ranking:
    """Rank every query's true prediction among all predictions (or those of its batch).

    Args:
        predictions: ``[N, K, D]`` (or ``[N, F]``) predicted latent states ``p_j``.
        targets: same shape, encoded true next states ``t_i``.
        target_ids: ``[N, S]`` ground-truth state ids of the targets (needed for ``dedup``).
        dedup: ``None``; ``"published"`` (``eval_ids.py --dedup``: a top candidate whose target id
            equals the query's counts as a hit, rank set to 0); ``"correct"`` (every candidate whose
            target id equals the query's is a true match, for every k and MRR; ties favour them).
        batch_size: ``None`` ranks among all N predictions (``eval.py``); an integer ranks within
            consecutive disjoint batches of that size (``eval_ids_b.py``; N must be a multiple).
        memory_bytes: size of one ``[rows, candidates]`` work matrix (peak use is a few of them).

    Returns:
        :class:`Ranking`. The rank of query ``i`` is ``#{j : d(t_i, p_j) < d(t_i, p_i)}``: the
        original's stable sort with the true pair prepended as column 0 (true match wins ties).

    How: per chunk of queries one matrix product gives ``x_ij ~ d(t_i, p_j) - thr_i`` (the
    augmented vectors ``[-2 t_i, |t_i|^2 - thr_i, 1] . [p_j, 1, |p_j|^2]``); entries below
    ``-eps_i`` are counted, entries within ``eps_i`` (a bound on the rounding error) are settled
    with exact float64 differences. Float32 is used for ``x`` on the CPU when matmuls run at full
    precision, float64 otherwise.
    """
    t, p = _flat64(targets, "targets"), _flat64(predictions, "predictions")
    if t.shape != p.shape:
        raise CswmError(f"predictions {list(p.shape)} and targets {list(t.shape)} differ in shape")
    if dedup not in DEDUP:
        raise CswmError(f"dedup must be one of {DEDUP}, got {dedup!r}")
    n, f = t.shape
    lab = _labels(target_ids, n)
    if dedup is not None and lab is None:
        raise CswmError(f"dedup={dedup!r} needs target_ids (ground-truth state ids), got none")
    b = n if batch_size is None else int(batch_size)
    if b < 1 or n % b or n == 0:
        raise CswmError(f"{n} queries cannot be split into whole batches of {b}")
    g, dev = n // b, t.device
    idx = torch.arange(n, device=dev)
    group = idx // b
    num_dup = torch.zeros(n, dtype=torch.long, device=dev)
    if lab is not None:
        lab = lab.to(dev)
        key = torch.unique(group * n + lab, return_inverse=True)[1]  # (batch, id) classes
        num_dup = torch.bincount(key)[key] - 1

    thr = _exact_sq(t, p, idx, idx)  # distance of the true pair
    if dedup == "correct":  # threshold = closest candidate with the target's id (incl. the pair)
        for q in idx[num_dup > 0].split(max(1, memory_bytes // (8 * b))):
            same = key[q][:, None] == key.view(g, b)[group[q]]
            r, c = same.nonzero(as_tuple=True)
            e = _exact_sq(t, p, q[r], group[q][r] * b + c)
            thr[q] = torch.minimum(thr[q], torch.full_like(thr[q], math.inf).scatter_reduce(0, r, e, "amin"))

    fast32 = dev.type == "cpu" and torch.get_float32_matmul_precision() == "highest"
    work, u = (torch.float32, 2.0**-24) if fast32 else (torch.float64, 2.0**-53)
    tn, pn = (t * t).sum(1), (p * p).sum(1)
    ta = torch.cat([-2 * t, (tn - thr)[:, None], torch.ones(n, 1, device=dev, dtype=t.dtype)], 1).to(work)
    pa = torch.cat([p, torch.ones(n, 1, device=dev, dtype=p.dtype), pn[:, None]], 1).to(work)
    eps = 16 * (f + 4) * u * (tn + pn.view(g, b).amax(1)[group])  # [N] bound on |x - exact|

    rank = torch.zeros(n, dtype=torch.long, device=dev)
    top1_dup = torch.zeros(n, dtype=torch.bool, device=dev)
    budget = max(1, memory_bytes // torch.finfo(work).bits * 8)  # elements of one work matrix
    gc, rc = (max(1, budget // (b * b)), b) if b * b <= budget else (1, max(1, budget // b))
    ta3, pa3 = ta.view(g, b, f + 2), pa.view(g, b, f + 2)
    with torch_threads(1 if dev.type == "cpu" else None):
        for g0 in range(0, g, gc):
            g1 = min(g, g0 + gc)
            for r0 in range(0, b, rc):
                r1 = min(b, r0 + rc)
                q = torch.arange(g0, g1, device=dev)[:, None] * b + torch.arange(r0, r1, device=dev)
                q = q.reshape(-1)
                base = group[q] * b  # first candidate of each query's batch
                x = torch.bmm(ta3[g0:g1, r0:r1], pa3[g0:g1].transpose(1, 2)).view(q.numel(), b)
                x[torch.arange(q.numel(), device=dev), q - base] = math.inf  # the pair itself never counts
                e_q = eps[q].to(work)[:, None]
                lo = (x < -e_q).sum(1)
                undecided = ((x <= e_q).sum(1) > lo).nonzero()[:, 0]
                if undecided.numel():  # settle near-ties exactly
                    xs = x[undecided]
                    r, c = ((xs >= -e_q[undecided]) & (xs <= e_q[undecided])).nonzero(as_tuple=True)
                    r = undecided[r]
                    e = _exact_sq(t, p, q[r], base[r] + c)
                    lo += torch.bincount(r[e < thr[q][r]], minlength=q.numel())
                rank[q] = lo
                if dedup == "published":
                    miss = (lo > 0).nonzero()[:, 0]
                    if miss.numel():
                        top = _exact_argmin(x[miss], e_q[miss], t, p, q[miss], base[miss])
                        top1_dup[q[miss]] = lab[base[miss] + top] == lab[q[miss]]
    return Ranking(rank.cpu(), top1_dup.cpu(), group.cpu(), b, num_dup.cpu())


def _exact_argmin(x: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, p: torch.Tensor, q: torch.Tensor,
                  base: torch.Tensor) -> torch.Tensor:
    """Column of the exact minimum distance per row of ``x [rows, B]`` (approximate distances minus
    a per-row constant, error <= ``eps [rows, 1]``), lowest column on ties (a stable sort's first)."""
    r, c = (x <= x.amin(1, keepdim=True) + 2 * eps).nonzero(as_tuple=True)  # holds every exact minimum
    e = _exact_sq(t, p, q[r], base[r] + c)
    emin = torch.full((q.numel(),), math.inf, dtype=e.dtype, device=e.device).scatter_reduce(0, r, e, "amin")
    first = torch.full((q.numel(),), x.shape[1], dtype=torch.long, device=e.device)
    return first.scatter_reduce(0, r[e == emin[r]], c[e == emin[r]], "amin")


def rank_local(
    predictions: torch.Tensor | np.ndarray,
    states: torch.Tensor | np.ndarray,
    target_index: int,
    state_ids: torch.Tensor | np.ndarray | None = None,
    dedup: str | None = None,
    chunk: int = 4096,
) -> Ranking:
    """Rank each prediction among the encoded states of its own episode (``eval_ids_b_inep.py``).

    Args:
        predictions: ``[N, K, D]`` prediction from ``o_0`` after ``target_index`` latent steps.
        states: ``[N, S, K, D]`` encodings of ``o_0 .. o_{S-1}`` of the same episode.
        target_index: the time step ``L`` the prediction should match.
        state_ids: ``[N, S, I]`` ground-truth ids of those states (needed for ``dedup``).
        dedup: ``None`` -- correct iff the arg-min (ties -> lowest index) is ``L``, so
            ``rank = #{s : d_s < d_L} + #{s < L : d_s = d_L}``; ``"published"`` -- also correct when
            the arg-min state's id equals ``o_L``'s; ``"correct"`` -- all states with ``o_L``'s id
            are true matches (ties favour them).
    """
    p = _flat64(predictions, "predictions")
    s = torch.as_tensor(states)
    if s.ndim < 3 or s.shape[0] != p.shape[0]:
        raise CswmError(f"states must be [N, S, K, D] with N = {p.shape[0]}, got {list(s.shape)}")
    n, ns = s.shape[:2]
    s = _flat64(s.reshape(n * ns, -1), "states").view(n, ns, -1)
    if not 0 <= target_index < ns:
        raise CswmError(f"target_index {target_index} is outside the {ns} states of an episode")
    if dedup not in DEDUP:
        raise CswmError(f"dedup must be one of {DEDUP}, got {dedup!r}")
    same = None
    if state_ids is not None:
        ids = torch.as_tensor(state_ids).reshape(n, ns, -1).to(s.device)
        same = (ids == ids[:, target_index : target_index + 1]).all(-1)  # [N, S]
    elif dedup is not None:
        raise CswmError(f"dedup={dedup!r} needs state_ids (ground-truth state ids), got none")
    rank = torch.empty(n, dtype=torch.long)
    top1_dup = torch.zeros(n, dtype=torch.bool)
    before = torch.arange(ns, device=s.device) < target_index
    for c0 in range(0, n, chunk):
        sl = slice(c0, min(n, c0 + chunk))
        diff = s[sl] - p[sl, None]
        sq = diff * diff
        d = sq[..., 0].clone()
        for k in range(1, sq.shape[-1]):
            d += sq[..., k]  # [n, S], fixed summation order
        dl = d[:, target_index : target_index + 1]
        if dedup == "correct":
            m = torch.where(same[sl], d, torch.full_like(d, math.inf)).amin(1, keepdim=True)
            rank[sl] = (d < m).sum(1).cpu()
        else:
            rank[sl] = ((d < dl) | ((d == dl) & before)).sum(1).cpu()
        if dedup == "published":
            top = d.argmin(1)  # first occurrence of the minimum
            top1_dup[sl] = ((rank[sl] > 0).to(s.device) & same[sl].gather(1, top[:, None])[:, 0]).cpu()
    num_dup = (same.sum(1) - 1).cpu() if same is not None else torch.zeros(n, dtype=torch.long)
    return Ranking(rank, top1_dup, torch.zeros(n, dtype=torch.long), ns, num_dup)


def _check_ints(**values: Any) -> None:
    """One-line errors for API arguments of the wrong type (``num_steps=1.5``, ``ks="15"``)."""
    for name, v in values.items():
        items = v if name == "ks" and not isinstance(v, (str, bytes)) else [v]
        if name == "ks" and isinstance(v, (str, bytes)):
            raise CswmError(f"ks must be a list of whole numbers such as [1, 5, 10], got {v!r}")
        for x in items:
            if isinstance(x, bool) or not isinstance(x, (int, np.integer)):
                raise CswmError(f"{name} must be a whole number, got {x!r} ({type(x).__name__})")
            if x < 1:
                raise CswmError(f"{name} must be >= 1, got {x}")


def scores(ranking: Ranking, ks: Sequence[int] = (1, 5, 10), averaging: str = "mean",
           batch_size: int | None = None) -> dict[str, float]:
    """Hits@k and MRR from a :class:`Ranking`.

    A query is a hit at k when its (repaired) rank is below k; its reciprocal rank is
    ``1 / (rank + 1)``. ``averaging``: ``"mean"`` -- plain mean over queries (= mean over equal-size
    batches); ``"published"`` -- what the scripts printed: for batched rankings the mean of the
    running means after each batch (``eval_ids_b.py``; weights early batches more); with
    ``batch_size`` (local scores) the mean of per-batch means (``eval_ids_b_inep.py``).
    """
    if averaging not in AVERAGING:
        raise CswmError(f"averaging must be one of {AVERAGING}, got {averaging!r}")
    for k in ks:
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise CswmError(f"ks must be whole numbers >= 1 (Hits@k counts the k nearest), got {k!r}")
        if k > ranking.num_candidates:
            raise CswmError(f"Hits@{k} asked for, but each query has {ranking.num_candidates} candidates")
    rank = ranking.effective_rank.double()
    per_query = {f"hits@{k}": (rank < k).double() for k in ks}
    per_query["mrr"] = 1.0 / (rank + 1.0)
    group = ranking.group
    if batch_size is not None:
        group = torch.arange(rank.numel()) // batch_size
    ng = int(group.max()) + 1 if group.numel() else 0
    out = {}
    for key, v in per_query.items():
        if averaging == "mean" or ng <= 1:
            out[key] = v.mean().item()
        else:
            sums = torch.zeros(ng, dtype=torch.float64).index_add_(0, group, v)
            counts = torch.bincount(group, minlength=ng).double()
            if batch_size is None:  # running mean of running means (eval_ids_b.py)
                out[key] = (sums.cumsum(0) / counts.cumsum(0)).mean().item()
            else:  # mean of per-batch means (eval_ids_b_inep.py)
                out[key] = (sums / counts).mean().item()
    return out


def scores_by_batch_size(
    predictions: torch.Tensor | np.ndarray,
    targets: torch.Tensor | np.ndarray,
    sizes: Sequence[int],
    ks: Sequence[int] = (1,),
) -> dict[int, dict[str, float]]:
    """Hits@k and MRR of the same predictions ``[N, K, D]`` ranked against ``targets`` within
    disjoint batches of each size ``B`` in ``sizes`` (the first ``B * (N // B)`` queries; a size
    above N is skipped): how much a score depends on the number of candidates rather than on the
    model. Returns ``{B: {"hits@k", ..., "mrr"}}``."""
    n = len(predictions)
    return {
        b: scores(rank_global(predictions[: b * (n // b)], targets[: b * (n // b)], batch_size=b), ks=ks)
        for b in sizes if b <= n
    }


#: The metric name of :func:`start_state_argmin` in result rows (local modes only).
START_METRIC = "argmin=o_0"


def start_state_argmin(predictions: torch.Tensor, states: torch.Tensor) -> float:
    """Fraction of queries whose prediction ``[N, K, D]`` is nearest (squared L2, ties -> earliest)
    to the episode's first state among ``states [N, S, K, D]``: a model without dynamics scores 1
    (the metric ``argmin=o_0`` of the local presets in an experiment)."""
    d = (states.flatten(2).double() - predictions.flatten(1).double()[:, None]).pow(2).sum(-1)  # [N, S]
    return (d.argmin(1) == 0).double().mean().item()


# ---------------------------------------------------------------------------------------------
# 2. embedding paths


@torch.no_grad()
def embed_paths(
    model: nn.Module,
    episodes: Episodes,
    num_steps: int | Sequence[int] = 1,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    all_states: bool = False,
    num_episodes: int | None = None,
    no_transition: bool = False,
    masks: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Encode and roll out the first ``num_steps`` steps of every episode (one query per episode).

    ``z_0 = encode(o_0)``, ``p = z_0`` advanced ``L`` times by ``model.predict(p, a_t)`` (skipped
    with ``no_transition``), ``target = encode(o_L)``. Runs in eval mode without gradients, in
    batches of ``batch_size`` episodes, and restores the model's train/eval mode afterwards.

    Returns a dict of CPU tensors: ``predictions [N, K, D]``, ``targets [N, K, D]``,
    ``target_ids [N, S]`` (or None), and with ``all_states``: ``states [N, T+1, K, D]`` (every frame
    of each episode encoded) and ``state_ids [N, T+1, S]``; with ``masks`` (needs ``all_states``)
    also the object masks ``masks`` uint8 ``[N, T+1, K, h, w]`` (mask * 255). ``N = num_episodes``
    (default all). With a list of roll-out lengths, ``num_steps=[1, 5, 10]``, every frame is encoded
    once and the result is ``{L: dict}``, one dict as above per ``L`` (sharing ``states``).
    """
    from tqdm.auto import tqdm

    T = episodes.episode_length
    steps = [num_steps] if isinstance(num_steps, int) else sorted(set(num_steps))
    if not steps or not all(1 <= L <= T for L in steps):
        raise CswmError(f"num_steps must be in 1..{T} (episodes have {T} steps), got {num_steps}")
    if masks and not all_states:
        raise CswmError("masks=True needs all_states=True (the masks of every frame)")
    n = episodes.num_episodes if num_episodes is None else min(num_episodes, episodes.num_episodes)
    if device is not None:
        model = model.to(device)
    dev = next(model.parameters()).device
    preds: dict[int, list[torch.Tensor]] = {L: [] for L in steps}
    targets: dict[int, list[torch.Tensor]] = {L: [] for L in steps}
    states, mask_list = [], []
    with eval_mode(model):
        for s in tqdm(range(0, n, batch_size), desc="encode", disable=not progress, leave=False):
            sl = slice(s, min(n, s + batch_size))
            if all_states:
                fr = torch.from_numpy(episodes.frames[sl])  # [b, T+1, C, H, W] uint8
                x = to_float(fr.flatten(0, 1)).to(dev)
                if masks:
                    m = model.masks(x)
                    z = model.obj_encoder(m)
                    m8 = m.mul(255).round_().to(torch.uint8)
                    mask_list.append(m8.view(fr.shape[0], T + 1, *m.shape[1:]).cpu())
                else:
                    z = model.encode(x)
                z = z.view(fr.shape[0], T + 1, *z.shape[1:])
                states.append(z.cpu())
                z0, zl = z[:, 0], {L: z[:, L] for L in steps}
            else:
                fr = episodes.frames[sl, [0, *steps]]  # only the frames needed, one read per chunk
                z0 = model.encode(to_float(fr[:, 0]).to(dev))
                zl = {L: model.encode(to_float(fr[:, i]).to(dev)) for i, L in enumerate(steps, 1)}
            pred = z0
            acts = torch.from_numpy(episodes.actions[sl, : steps[-1]]).to(dev)
            for i in range(1, steps[-1] + 1):
                if not no_transition:
                    pred = model.predict(pred, acts[:, i - 1])
                if i in preds:
                    preds[i].append(pred.cpu())
                    targets[i].append(zl[i].cpu())
    ids = episodes.state_ids
    shared: dict[str, Any] = {}
    if all_states:
        shared["states"] = torch.cat(states)
        shared["state_ids"] = None if ids is None else torch.from_numpy(ids[:n])
    if masks:
        shared["masks"] = torch.cat(mask_list)
    out = {
        L: {
            "predictions": torch.cat(preds[L]),
            "targets": torch.cat(targets[L]),
            "target_ids": None if ids is None else torch.from_numpy(ids[:n, L]),
            **shared,
        }
        for L in steps
    }
    return out[num_steps] if isinstance(num_steps, int) else out


# ---------------------------------------------------------------------------------------------
# 3. evaluate


def evaluate(
    model: nn.Module,
    episodes: Episodes,
    num_steps: int = 1,
    mode: str = "global",
    dedup: str | None = None,
    batch_size: int = 100,
    averaging: str | None = None,
    ks: Sequence[int] = (1, 5, 10),
    drop_last: bool | None = None,
    no_transition: bool = False,
    device: str | torch.device | None = None,
    encode_batch_size: int = 256,
    return_ranks: bool = False,
    progress: bool = True,
    embeddings: dict[str, Any] | None = None,
    order: str | None = None,
) -> dict[str, Any]:
    """Score ``model`` on a path dataset: Hits@k for each k and MRR.

    Args:
        model: has ``encode(obs [B, C, H, W]) -> [B, K, D]`` and ``predict(z, action [B]) -> [B, K, D]``.
        episodes: eval episodes (one query per episode: its first ``num_steps`` steps).
        mode: a preset of :data:`PRESETS`: ``"global"`` (rank among all queries' predictions,
            ``eval.py``), ``"dedup"`` (global, published de-duplication, ``eval_ids.py --dedup``),
            ``"dedup_correct"`` (global, corrected de-duplication), ``"batched"`` (within disjoint
            batches of ``batch_size``), ``"batched_dedup"`` (``eval_ids_b.py --dedup``: published
            de-duplication and averaging), ``"local"`` (among the T + 1 states of the query's own
            episode), ``"local_dedup"`` (``eval_ids_b_inep.py --dedup``), ``"local_dedup_correct"``.
        dedup: ``None`` | ``"published"`` | ``"correct"`` (see :func:`rank_global`); combines with a
            preset that names no de-duplication (``batched``, ``local``).
        averaging: ``"mean"`` (plain mean over queries; the default unless the preset says otherwise)
            or ``"published"`` (the scripts' averaging, see :func:`scores`).
        drop_last: use only ``batch_size * floor(E / batch_size)`` episodes, as every published script
            does (it skips the incomplete last batch of 100). Default: True for ``batched`` mode or
            ``averaging="published"``; otherwise every episode is a query.
        embeddings: output of :func:`embed_paths` to reuse (skips encoding; must cover the setting,
            all episodes when the original order applies).
        order: ``"original"`` or ``"numeric"`` (see :data:`ORDERS`). Default: the preset's
            (``"original"`` for the presets of published scripts that batch), else ``"numeric"``.

    Returns:
        A dict with ``hits@k`` for each k, ``mrr``, ``N`` (queries), ``num_candidates``,
        ``num_duplicate_targets`` and the settings; with ``return_ranks`` also ``ranks`` and
        ``episode_index`` (the episode each rank belongs to, in evaluation order).
    """
    if mode not in PRESETS:
        raise CswmError(f"mode must be one of {MODES}, got {mode!r}")
    preset = PRESETS[mode]
    for key, given in (("dedup", dedup), ("averaging", averaging)):
        if key in preset and given not in (None, preset[key]):
            raise CswmError(f"mode={mode!r} implies {key}={preset[key]!r}, but {key}={given!r} was given")
    mode = preset["mode"]
    dedup = preset.get("dedup", dedup)
    averaging = preset.get("averaging", averaging or "mean")
    order = order or preset.get("order", "numeric")
    if order not in ORDERS:
        raise CswmError(f"order must be one of {ORDERS}, got {order!r}")
    if dedup not in DEDUP:
        raise CswmError(f"dedup must be one of {DEDUP}, got {dedup!r}")
    if averaging not in AVERAGING:
        raise CswmError(f"averaging must be one of {AVERAGING}, got {averaging!r}")
    where = episodes.attrs.get("path", "the eval set")
    if dedup is not None and episodes.state_ids is None:
        raise CswmError(f"dedup={dedup!r} needs ground-truth state ids but {where} has none "
                        "(generate it with save_state_ids=True)")
    T, E = episodes.episode_length, episodes.num_episodes
    _check_ints(num_steps=num_steps, batch_size=batch_size, ks=ks)
    if not 1 <= num_steps <= T:
        raise CswmError(f"num_steps must be in 1..{T} ({where} has {T} steps per episode), got {num_steps}")
    if batch_size < 1:
        raise CswmError(f"batch_size must be >= 1, got {batch_size}")
    cfg = getattr(model, "config", None)
    if cfg is not None:
        check_compatible(cfg, episodes, where)
    if drop_last is None:
        drop_last = mode == "batched" or averaging == "published"
    n = E - E % batch_size if drop_last else E
    if n == 0:
        raise CswmError(f"{where} has {E} episodes, fewer than one batch of {batch_size}")
    cands = {"global": n, "batched": batch_size, "local": T + 1}[mode]
    for k in ks:
        if not 1 <= k <= cands:
            raise CswmError(f"Hits@{k} asked for, but {mode} ranking has only {cands} candidates per query")

    index = np.arange(n)  # episodes queried, in evaluation order
    if order == "original" and episodes.original_order is not None:
        index = episodes.original_order[:n]
    need = int(index.max()) + 1
    emb = embeddings
    if emb is None or (mode == "local" and "states" not in emb):
        emb = embed_paths(model, episodes, num_steps, encode_batch_size, device, all_states=mode == "local",
                          num_episodes=need, no_transition=no_transition, progress=progress)
    if emb["predictions"].shape[0] < need:
        raise CswmError(f"embeddings cover {emb['predictions'].shape[0]} episodes, {need} needed")
    pick = torch.from_numpy(index)
    emb = {k: (v[pick] if isinstance(v, torch.Tensor) else v) for k, v in emb.items()}
    if mode == "local":
        ranking = rank_local(emb["predictions"], emb["states"], num_steps, emb.get("state_ids"), dedup)
        res = scores(ranking, ks, averaging, batch_size if averaging == "published" else None)
    else:
        ranking = rank_global(emb["predictions"], emb["targets"], emb["target_ids"], dedup,
                              batch_size if mode == "batched" else None)
        res = scores(ranking, ks, averaging)
    res.update(
        mode=mode, dedup=dedup, num_steps=num_steps, N=n, num_episodes=E, num_candidates=cands,
        batch_size=batch_size if (mode == "batched" or drop_last) else None, averaging=averaging,
        drop_last=drop_last, no_transition=no_transition, order=order,
        num_duplicate_targets=int((ranking.num_dup > 0).sum()) if episodes.state_ids is not None else None,
    )
    if return_ranks:
        res["ranks"] = ranking.effective_rank.numpy()
        res["episode_index"] = index.copy()
    return res


def check_mode(mode: str) -> str:
    """The preset of ``mode`` (a preset of :data:`PRESETS`, optionally with the suffix
    :data:`NO_TRANSITION`); a one-line error for any other name."""
    base = mode.removesuffix(NO_TRANSITION)
    if base not in PRESETS:
        raise CswmError(f"unknown eval mode {mode!r}: expected one of {', '.join(PRESETS)} "
                        f"(optionally with the suffix {NO_TRANSITION})")
    return base


def evaluate_modes(
    model: nn.Module,
    episodes: Episodes,
    modes: Sequence[str],
    num_steps: Sequence[int] = (1,),
    batch_size: int = 100,
    device: str | torch.device | None = None,
    embeddings: dict[int, dict[str, Any]] | None = None,
) -> dict[tuple[str, int], dict[str, Any]]:
    """:func:`evaluate` in every mode and roll-out length, every eval frame encoded once.

    ``modes`` are presets of :data:`PRESETS`, optionally with the suffix :data:`NO_TRANSITION` (the
    no-transition predictor ``p = z_0``: the same encoder, no dynamics). ``embeddings`` (the
    ``{L: dict}`` of :func:`embed_paths` with ``all_states=True``) are reused when given; then
    their roll-out lengths are scored. Hits@k is computed for the k of 1, 5, 10 that do not exceed
    the candidates. Local modes also get :data:`START_METRIC`, the share of predictions nearest the
    start state. Returns ``{(mode, L): scores}``, roll-out lengths in increasing order, then modes.
    """
    if embeddings is None:
        embeddings = embed_paths(model, episodes, list(num_steps), device=device, all_states=True,
                                 progress=False)
    out = {}
    for steps, emb in embeddings.items():
        for mode in modes:
            base, control = check_mode(mode), mode.endswith(NO_TRANSITION)
            e = dict(emb, predictions=emb["states"][:, 0]) if control else emb
            kind = PRESETS[base]["mode"]
            cands = {"global": episodes.num_episodes, "batched": batch_size}.get(kind,
                                                                                 episodes.episode_length + 1)
            r = evaluate(model, episodes, steps, mode=base, ks=[k for k in (1, 5, 10) if k <= cands],
                         progress=False, embeddings=e, batch_size=batch_size, no_transition=control)
            if kind == "local":
                r[START_METRIC] = start_state_argmin(e["predictions"], e["states"])
            out[mode, steps] = r
    return out


# ---------------------------------------------------------------------------------------------
# 4. command line


def _table_row(r: dict[str, Any], ks: Sequence[int]) -> dict[str, str]:
    scores = {f"H@{k}": f"{100 * r[f'hits@{k}']:.2f}" for k in ks} | {"MRR": f"{100 * r['mrr']:.2f}"}
    return {"mode": r["mode"], "dedup": str(r["dedup"] or "-"), "steps": str(r["num_steps"]),
            "N": str(r["N"]), "cands": str(r["num_candidates"])} | scores


def default_json_name(args: argparse.Namespace) -> str:
    """``<checkpoint folder>_<dataset>_<mode>_<hash>.json``: the hash covers every setting that changes
    the scores (and the resolved paths), so evaluations with other settings never overwrite each other."""
    import hashlib
    import json

    settings = {k: v for k, v in sorted(vars(args).items()) if k not in ("json", "device", "no_progress")}
    settings["save_folder"] = str(Path(args.save_folder).resolve())
    settings["dataset"] = str(Path(args.dataset).resolve())
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return f"{Path(args.save_folder).resolve().name}_{Path(args.dataset).stem}_{args.mode}_{digest}.json"


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    from cswm_lib.tables import format_table
    from cswm_lib.utils import ArgumentParser, results_dir, write_json

    ap = ArgumentParser(prog="python -m cswm_lib.evaluate", description=__doc__.split("\n")[0])
    ap.add_argument("--save-folder", required=True, help="checkpoint folder (ours or the original's)")
    ap.add_argument("--dataset", default="data/shapes_eval.h5", help="eval HDF5 file")
    ap.add_argument("--num-steps", type=int, nargs="+", default=[1], help="latent roll-out steps (1 5 10)")
    ap.add_argument("--mode", choices=MODES, default="global", help="evaluation preset (see PRESETS)")
    ap.add_argument("--dedup", nargs="?", const="published", default=None, choices=["published", "correct"],
                    help="de-duplicate by state ids: --dedup as eval_ids.py, --dedup correct: fixed variant")
    ap.add_argument("--batch-size", type=int, default=100, help="batch size (batched, published)")
    ap.add_argument("--averaging", choices=AVERAGING, default=None, help="default: the preset's, else mean")
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 5, 10])
    ap.add_argument("--order", choices=ORDERS, default=None,
                    help="episode order on original-layout files (default: the preset's, see ORDERS)")
    ap.add_argument("--no-transition", action="store_true", help="predict z_0 (no latent step)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    ap.add_argument("--json", default=None,
                    help="output JSON (default <results>/evaluate/<folder>_<dataset>_<mode>_<hash>.json)")
    args = ap.parse_args(argv)

    for path, what in ((args.save_folder, "checkpoint folder"), (args.dataset, "dataset")):
        if not Path(path).exists():
            raise CswmError(f"{what} {path} does not exist")
    out = Path(args.json) if args.json else results_dir() / "evaluate" / default_json_name(args)
    if out.is_dir() or ((out.exists() or out.is_symlink()) and not out.is_file()):
        raise CswmError(f"--json {out} is a folder or not a regular file; give a file name such as "
                        f"{out / 'scores.json' if out.is_dir() else 'scores.json'}")
    for parent in out.parents:  # checked before the evaluation, not after it
        if parent.exists() and not parent.is_dir():
            raise CswmError(f"cannot write {out}: {parent} is a file, not a folder")
        if parent.is_dir():
            break
    from cswm_lib.checkpoint import load_model
    from cswm_lib.data.hdf5 import load_episodes
    from cswm_lib.utils import get_device

    device = get_device(args.device)
    model = load_model(args.save_folder, device=device)
    episodes = load_episodes(args.dataset, lazy=True)  # frames stay on disk: read per chunk
    episodes.attrs.setdefault("path", str(args.dataset))
    ks = sorted(set(args.ks))
    rows = []
    for steps in args.num_steps:
        r = evaluate(model, episodes, steps, mode=args.mode, dedup=args.dedup, batch_size=args.batch_size,
                     averaging=args.averaging, ks=ks, no_transition=args.no_transition, order=args.order,
                     progress=not args.no_progress)
        rows.append(r)
    print(format_table([_table_row(r, ks) for r in rows]))
    write_json(out, {"save_folder": str(args.save_folder), "dataset": str(args.dataset), "results": rows})
    print(f"wrote {out}")
    return rows


if __name__ == "__main__":
    from cswm_lib.utils import cli_errors

    cli_errors(main)()
