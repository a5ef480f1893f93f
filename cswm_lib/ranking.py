"""Ranking latent predictions: Hits@k and MRR over embeddings, globally, in batches and within
episodes -- pure tensor functions, no model (:mod:`cswm_lib.evaluate` embeds and scores models).

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

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from cswm_lib.errors import CswmError
from cswm_lib.utils import torch_threads

#: The ways to de-duplicate by ground-truth state ids (none, the published repair, the corrected one).
DEDUP = (None, "published", "correct")
AVERAGING = ("mean", "published")
_MEMORY = 2 * 2**20  # bytes of one [rows, candidates] work matrix (cache-sized chunks are fastest)


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
        target_ids: ``[N, S]`` ground-truth state ids of the targets (needed for ``dedup=``).
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
        state_ids: ``[N, S, I]`` ground-truth ids of those states (needed for ``dedup=``).
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
    per_query = {f"Hits@{k}": (rank < k).double() for k in ks}
    per_query["MRR"] = 1.0 / (rank + 1.0)
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
    model. Returns ``{B: {"Hits@k", ..., "MRR"}}``."""
    n = len(predictions)
    return {
        b: scores(rank_global(predictions[: b * (n // b)], targets[: b * (n // b)], batch_size=b), ks=ks)
        for b in sizes if b <= n
    }


def nearest_start(predictions: torch.Tensor, states: torch.Tensor) -> float:
    """Fraction of queries whose prediction ``[N, K, D]`` is nearest (squared L2, ties -> earliest)
    to the episode's first state among ``states [N, S, K, D]``: a model without dynamics scores 1
    (the metric ``nearest_start`` of the local settings in an experiment)."""
    d = (states.flatten(2).double() - predictions.flatten(1).double()[:, None]).pow(2).sum(-1)  # [N, S]
    return (d.argmin(1) == 0).double().mean().item()
