"""Benchmark: ranking N Shapes-sized embeddings (K=5 objects x D=2) -- ours vs the original's method.

The original (``eval.py`` / ``eval_ids.py`` of C-SWM and the negative-sampling fork) builds the
full ``N x N x (K*D)`` float32 difference tensor, prepends the diagonal and stable-sorts every row
with ``np.lexsort`` in a Python loop. Ours (``cswm_lib.ranking.rank_global``) counts closer
candidates in chunked float64 distance matrices. Each measurement runs in a fresh subprocess so
its peak RSS can be read; "extra" memory = peak RSS minus RSS just before ranking (embeddings
already in memory). Both must give identical Hits@1 / MRR where both run.

    .venv/bin/python benchmarks/bench_eval.py                # N = 1k, 10k, 100k
    .venv/bin/python benchmarks/bench_eval.py --sizes 1000   # quick

Writes ``benchmarks/results/bench_eval.json``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import torch

K, D = 5, 2


def make_embeddings(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Targets, noisy predictions (some collapsed onto one point, so ties occur) and 10-int ids."""
    rng = np.random.default_rng(seed)
    targ = rng.normal(size=(n, K, D)).astype(np.float32)
    pred = (targ + 0.3 * rng.normal(size=(n, K, D))).astype(np.float32)
    pred[rng.random(n) < 0.05] = pred[0]
    ids = rng.integers(0, 5, (n, 10))
    ids[rng.random(n) < 0.02] = ids[0]  # duplicate states
    return torch.from_numpy(pred), torch.from_numpy(targ), ids


def original_rank(pred: torch.Tensor, targ: torch.Tensor, ids: np.ndarray, dedup: bool) -> tuple[float, ...]:
    """Re-implementation of the original's approach (full broadcast, per-row stable lexsort)."""
    n = pred.shape[0]
    t, p = targ.view(n, -1), pred.view(n, -1)
    dist = (t[:, None, :] - p[None, :, :]).pow(2).sum(2)  # [N, N]: the N x N x F tensor first
    dist_aug = torch.cat([torch.diag(dist)[:, None], dist], dim=1).numpy()
    indices = np.stack([np.lexsort((np.arange(len(row)), row)) for row in dist_aug])
    if dedup:
        mistakes = indices[:, 0] != 0
        equal = np.all(ids[indices[:, 0] - 1] == ids, axis=1)
        indices[:, 0][equal & mistakes] = 0
    hits = float((indices[:, 0] == 0).mean())
    ranks = (indices == 0).argmax(1)
    return hits, float((1.0 / (ranks + 1)).mean())


def ours_rank(pred: torch.Tensor, targ: torch.Tensor, ids: np.ndarray, dedup: bool) -> tuple[float, float]:
    from cswm_lib.ranking import rank_global, scores

    s = scores(rank_global(pred, targ, ids, "published" if dedup else None), ks=(1,))
    return s["Hits@1"], s["MRR"]


def child(impl: str, n: int, dedup: bool) -> None:
    torch.set_num_threads(2)
    pred, targ, ids = make_embeddings(n)
    fn = {"ours": ours_rank, "original": original_rank}[impl]
    if impl == "ours":
        fn(pred[:100], targ[:100], ids[:100], dedup)  # import + warm-up outside the timing
    rss0 = psutil.Process().memory_info().rss
    t0 = time.perf_counter()
    hits, mrr = fn(pred, targ, ids, dedup)
    sec = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"impl": impl, "N": n, "dedup": dedup, "seconds": sec,
                      "peak_extra_mb": max(0, peak - rss0) / 2**20, "hits@1": hits, "mrr": mrr}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    ap.add_argument("--original-max", type=int, default=10_000,
                    help="largest N for the original method (100k: 400 GB for N x N x 10)")
    ap.add_argument("--child", nargs=3, metavar=("IMPL", "N", "DEDUP"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child[0], int(args.child[1]), args.child[2] == "1")

    rows = []
    for n in args.sizes:
        for dedup in (False, True):
            for impl in ("ours", "original"):
                if impl == "original" and n > args.original_max:
                    why = f"needs {n * n * K * D * 4 / 1e9:.0f} GB for the N x N x {K * D} float32 tensor"
                    rows.append({"impl": impl, "N": n, "dedup": dedup, "skipped": why})
                    continue
                cmd = [sys.executable, __file__, "--child", impl, str(n), "1" if dedup else "0"]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True)
                rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
                print(rows[-1], flush=True)

    print(f"\n{'N':>7} {'dedup':>5} {'impl':>9} {'seconds':>9} {'peak extra MB':>14} {'Hits@1':>8} {'MRR':>8}"
          "  speed-up")
    for r in rows:
        if "skipped" in r:
            print(f"{r['N']:>7} {r['dedup']!s:>5} {r['impl']:>9}  skipped: {r['skipped']}")
            continue
        other = [o for o in rows if o["N"] == r["N"] and o["dedup"] == r["dedup"] and o["impl"] == "original"
                 and "seconds" in o]
        speed = f"{other[0]['seconds'] / r['seconds']:.1f}x" if other and r["impl"] == "ours" else ""
        if other and r["impl"] == "ours":
            r["speedup_vs_original"] = other[0]["seconds"] / r["seconds"]
            r["same_scores_as_original"] = (r["hits@1"] == other[0]["hits@1"]
                                            and abs(r["mrr"] - other[0]["mrr"]) < 1e-12)
        print(f"{r['N']:>7} {r['dedup']!s:>5} {r['impl']:>9} {r['seconds']:>9.2f} "
              f"{r['peak_extra_mb']:>14.0f} {r['hits@1']:>8.4f} {r['mrr']:>8.4f}  {speed}")
    path = Path(__file__).parent / "results" / "bench_eval.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"torch_threads": torch.get_num_threads(), "cpu_count": psutil.cpu_count(), "K": K, "D": D}
    path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
