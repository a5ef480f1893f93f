"""Benchmark: C-SWM training throughput (transitions/s) and peak memory -- ours vs the original's method.

The original (``train.py`` of tkipf/c-swm and the negative-sampling fork) stores ``obs`` and
``next_obs`` as float arrays (float32 Shapes, float64 Cubes/Atari), feeds them through a
``DataLoader`` (shuffle, 4 workers) that indexes them item by item, runs the GNN per edge over an
edge list with batch offsets (edge MLP on every edge, scatter-add per node), draws baseline negatives
with ``np.random.permutation`` and steps Adam. ``original_step`` below re-implements exactly that;
the encoders are the same modules in both (identical computation). Ours is ``cswm_lib.train``'s
inner loop: one uint8 tensor, whole-batch gathers, the factored GNN.

Frames are random (throughput does not depend on pixel content). Both implementations compute
the same loss for the same batch (checked before timing). Each run is a fresh subprocess (so its
peak memory, workers included, can be read), alternating original / ours for ``--rounds`` rounds; the
speed-up quoted is the median of the per-round ratios, since the machine may be shared. (Running
both in one process batch by batch would let the original's DataLoader workers prefetch while our
step runs, which biases against ours.)

    .venv/bin/python benchmarks/bench_train.py            # shapes, cubes, atari
    .venv/bin/python benchmarks/bench_train.py --quick    # fewer batches

Writes ``benchmarks/results/bench_train.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from cswm_lib.data.episodes import Episodes
from cswm_lib.data.loaders import TransitionBatches
from cswm_lib.model import CSWM, ModelConfig
from cswm_lib.negatives import sample_negatives

# name: (encoder, channels, float dtype of the original's arrays, model kwargs, batch size, episodes, T)
SETUPS = {
    "shapes_small": ("small", 3, np.float32, {}, 1024, 200, 100),  # 20k transitions, as the anchor
    "cubes_large": ("large", 3, np.float64, {}, 128, 12, 100),
    "atari_medium": (
        "medium",
        6,
        np.float64,
        dict(embedding_dim=4, action_dim=6, num_objects=3, copy_action=True),
        256,
        150,
        10,
    ),
}


def make_episodes(
    name: str, seed: int = 0, num_episodes: int | None = None
) -> tuple[Episodes, ModelConfig, int]:
    enc, C, _, kw, bs, E, T = SETUPS[name]
    E = num_episodes or E
    cfg = ModelConfig(encoder=enc, input_shape=(C, 50, 50), **kw)
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (E, T + 1, C, 50, 50), dtype=np.uint8)
    return Episodes(frames, rng.integers(0, cfg.num_actions, (E, T))), cfg, bs


# ---------------------------------------------------------------- the original's approach
class StateTransitionsDataset(Dataset):
    """The original: float arrays, an (episode, step) index list, items fetched one by one."""

    def __init__(self, eps: Episodes, dtype: type):
        f = eps.frames.astype(dtype) / 255.0
        self.obs, self.next_obs = f[:, :-1].copy(), f[:, 1:].copy()  # stored twice, as in the h5 files
        self.action = eps.actions
        self.idx = [(e, t) for e in range(eps.num_episodes) for t in range(eps.episode_length)]

    def __len__(self) -> int:
        return len(self.idx)

    def __getitem__(self, i: int):
        e, t = self.idx[i]
        return self.obs[e, t].astype(np.float32), self.action[e, t], self.next_obs[e, t].astype(np.float32)


def mlp(seq: torch.nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """The original's MLP (Linear, ReLU, Linear, LayerNorm, ReLU, Linear), out-of-place ReLUs."""
    return seq[5](F.relu(seq[3](seq[2](F.relu(seq[0](x))))))


def original_encode(model: CSWM, obs: torch.Tensor) -> torch.Tensor:
    """The original's encoders: plain Conv2d layers (also the stride-10 one), then the object MLP."""
    ex, en = model.obj_extractor, model.obj_encoder
    act = F.leaky_relu if model.config.encoder == "medium" else F.relu
    x = obs
    for i in range(1, ex.num_hidden + 1):
        x = act(getattr(ex, f"ln{i}")(getattr(ex, f"cnn{i}")(x)))
    x = torch.sigmoid(getattr(ex, f"cnn{ex.num_hidden + 1}")(x)).flatten(2)
    return en.fc3(F.relu(en.ln(en.fc2(F.relu(en.fc1(x))))))


class OriginalTransition:
    """Per-edge GNN with a cached edge list (rebuilt when the batch size changes), as the original."""

    def __init__(self, model: CSWM):
        self.m, self.edges, self.bs = model, None, None

    def edge_list(self, B: int, K: int, device: torch.device | str = "cpu") -> torch.Tensor:
        if self.bs != B:  # built on the CPU, moved to the device once (the original's .cuda())
            adj = torch.ones(K, K) - torch.eye(K)
            e = adj.nonzero().t()  # [2, K(K-1)]
            offs = (torch.arange(B) * K).repeat_interleave(K * (K - 1))
            self.edges, self.bs = (e.repeat(1, B) + offs).to(device), B
        return self.edges

    def __call__(self, z: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        gnn, cfg, (B, K, D) = self.m.transition_model, self.m.config, z.shape
        nodes = z.reshape(B * K, D)
        row, col = self.edge_list(B, K, z.device)
        msg = mlp(gnn.edge_mlp, torch.cat([nodes[row], nodes[col]], 1))
        agg = torch.zeros(B * K, msg.shape[1], device=z.device)
        agg = agg.scatter_add_(0, row[:, None].expand_as(msg), msg)
        if cfg.copy_action:
            a = F.one_hot(action, cfg.action_dim).float().repeat_interleave(K, 0)
        else:
            a = F.one_hot(action, cfg.action_dim * K).float().view(B * K, cfg.action_dim)
        return mlp(gnn.node_mlp, torch.cat([nodes, a, agg], 1)).view(B, K, D)


def original_loss(model: CSWM, trans: OriginalTransition, obs, action, next_obs, perm):
    z, zn = original_encode(model, obs), original_encode(model, next_obs)
    scale = 0.5 / model.config.sigma**2
    pos = (scale * (z + trans(z, action) - zn).pow(2).sum(2)).mean(1).mean()
    neg = F.relu(model.config.hinge - (scale * (z - z[perm]).pow(2).sum(2)).mean(1)).mean()
    return pos + neg


# ---------------------------------------------------------------- measurement
def make_step(name: str, impl: str, batch_size: int | None = None, device: torch.device | str = "cpu",
              num_episodes: int | None = None):
    """A closure running one training step of ``impl`` (fetch batch, loss, backward, Adam); returns B.
    On ``device`` "cuda" the original's batches are copied there after the DataLoader, as its train.py
    does; ours keeps the uint8 frames on the GPU (``TransitionBatches``). The step does not
    synchronize: time a run of steps with ``torch.cuda.synchronize()`` at its end."""
    eps, cfg, bs = make_episodes(name, num_episodes=num_episodes)
    bs = batch_size or bs
    torch.manual_seed(0)
    model = CSWM(cfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=5e-4)
    if impl == "ours":
        tb, g = TransitionBatches(eps, bs, device), torch.Generator().manual_seed(0)

        def stream():
            while True:
                for b in tb.epoch(g):
                    neg = sample_negatives(
                        "baseline", b.episode, b.step, eps.num_episodes, eps.episode_length, g
                    )
                    yield b.obs, b.action, b.next_obs, neg.batch_index.to(device)

        def loss_fn(o, a, n, idx):
            return model.contrastive_loss(o, a, n, neg_batch_index=idx)[0]
    else:
        ds = StateTransitionsDataset(eps, SETUPS[name][2])
        loader = DataLoader(ds, batch_size=bs, shuffle=True, num_workers=4, persistent_workers=True)
        trans = OriginalTransition(model)

        def stream():
            while True:
                for o, a, n in loader:
                    perm = torch.from_numpy(np.random.permutation(len(a)))
                    yield o.to(device), a.to(device), n.to(device), perm.to(device)

        def loss_fn(o, a, n, perm):
            return original_loss(model, trans, o, a, n, perm)

    it = stream()

    def step() -> int:
        o, a, nx, idx = next(it)
        loss = loss_fn(o, a, nx, idx)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return len(a)

    return step


class PeakMemory:
    """Peak memory of this process and its children (the original's DataLoader workers), sampled every
    50 ms as the sum of their proportional set sizes (PSS: pages shared by n processes count 1/n).

    Not ``ru_maxrss``: Linux keeps a process's high-water mark across fork and exec, so a worker
    started from a big parent reported the parent's size, and summing SELF and CHILDREN counted the
    pages the workers share with the parent twice."""

    def __init__(self) -> None:
        import threading

        self.mb, self._done = 0.0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    @staticmethod
    def _now_mb() -> float:
        import psutil

        me = psutil.Process()
        total = 0
        for proc in (me, *me.children(recursive=True)):
            with contextlib.suppress(psutil.Error):  # a worker that just ended
                total += proc.memory_full_info().pss
        return total / 2**20

    def _sample(self) -> None:
        while not self._done.wait(0.05):
            self.mb = max(self.mb, self._now_mb())

    def stop(self) -> None:
        self._done.set()
        self._thread.join()
        self.mb = max(self.mb, self._now_mb())


def run(name: str, impl: str, batches: int, threads: int, batch_size: int | None = None) -> dict:
    """One implementation alone (in its own subprocess): throughput and peak memory incl. workers."""
    torch.set_num_threads(threads)
    peak = PeakMemory()
    step = make_step(name, impl, batch_size)
    step()  # warm-up (and start the workers)
    t0, n = time.perf_counter(), sum(step() for _ in range(batches))
    dt = time.perf_counter() - t0
    peak.stop()
    return {
        "setup": name,
        "impl": impl,
        "transitions_per_s": n / dt,
        "batch_size": batches and n // batches,
        "batches": batches,
        "peak_pss_mb": peak.mb,
        "threads": threads,
        "load_1min": os.getloadavg()[0],
    }


def matmul_gflops(n: int = 2048, reps: int = 5) -> float:
    """This CPU's fp32 limit as measured: the best of ``reps`` n x n matmuls, in GFLOP/s."""
    a, b = torch.rand(n, n), torch.rand(n, n)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(reps))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def flops_per_transition(name: str, impl: str = "ours", batch: int = 64) -> float:
    """FLOPs of one training step (forward + backward; FlopCounterMode) per transition."""
    from torch.utils.flop_counter import FlopCounterMode

    eps, cfg, _ = make_episodes(name)
    torch.manual_seed(0)
    model = CSWM(cfg)
    b = next(TransitionBatches(eps, batch).epoch(torch.Generator().manual_seed(0)))
    perm = torch.randperm(batch)
    with FlopCounterMode(display=False) as fc:
        if impl == "ours":
            loss = model.contrastive_loss(b.obs, b.action, b.next_obs, neg_batch_index=perm[:, None])[0]
        else:
            loss = original_loss(model, OriginalTransition(model), b.obs, b.action, b.next_obs, perm)
        loss.backward()
    return fc.get_total_flops() / batch


def check_same_loss(name: str) -> float:
    """Both implementations give the same loss on the same batch and permutation."""
    eps, cfg, _ = make_episodes(name)
    torch.manual_seed(0)
    model = CSWM(cfg)
    b = next(TransitionBatches(eps, 64).epoch(torch.Generator().manual_seed(0)))
    perm = torch.randperm(64)
    ours = model.contrastive_loss(b.obs, b.action, b.next_obs, neg_batch_index=perm[:, None])[0]
    orig = original_loss(model, OriginalTransition(model), b.obs, b.action, b.next_obs, perm)
    return abs(ours.item() - orig.item())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--setups", nargs="*", default=list(SETUPS))
    p.add_argument("--quick", action="store_true")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--worker", nargs=2, metavar=("SETUP", "IMPL"), help=argparse.SUPPRESS)
    p.add_argument("--batches", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None, help="instead of each setup's (1024/128/256)")
    p.add_argument("--out", default=None, help="file name under benchmarks/results/ (or a path)")
    p.add_argument("--rounds", type=int, default=3, help="alternating runs per implementation")
    a = p.parse_args()
    if a.worker:
        print(json.dumps(run(*a.worker, a.batches, a.threads, a.batch_size)))
        return
    rows, summary = [], {}
    load0 = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else None
    torch.set_num_threads(a.threads)
    limit = matmul_gflops()
    print(f"FLOP limit (fp32 matmul, {a.threads} threads): {limit:.0f} GFLOP/s; load {load0}", flush=True)
    for name in a.setups:
        diff = check_same_loss(name)
        assert diff < 1e-4, f"{name}: losses differ by {diff}"
        nb = a.batches or (2 if a.quick else {"shapes_small": 6, "cubes_large": 3, "atari_medium": 4}[name])
        if a.batch_size and not a.batches:  # the same number of transitions at another batch size
            nb = -(-nb * SETUPS[name][4] // a.batch_size)
        for r in range(a.rounds):  # A B A B ...: each run in a fresh process; load drifts hit both alike
            for impl in ("original", "ours"):
                cmd = [
                    sys.executable,
                    "-W",
                    "ignore",
                    __file__,
                    "--worker",
                    name,
                    impl,
                    "--batches",
                    str(nb),
                    "--threads",
                    str(a.threads),
                ] + (["--batch-size", str(a.batch_size)] if a.batch_size else [])
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                rows.append(json.loads(out.strip().splitlines()[-1]) | {"loss_diff": diff, "round": r})
                print(
                    f"{name:14s} round {r} {impl:9s} {rows[-1]['transitions_per_s']:8.1f} transitions/s  "
                    f"peak PSS {rows[-1]['peak_pss_mb']:6.0f} MB  load {rows[-1]['load_1min']:.1f}",
                    flush=True,
                )
        tps = {
            i: [x["transitions_per_s"] for x in rows if x["setup"] == name and x["impl"] == i]
            for i in ("original", "ours")
        }
        rss = {i: max(x["peak_pss_mb"] for x in rows if x["setup"] == name and x["impl"] == i) for i in tps}
        ratios = [u / o for o, u in zip(tps["original"], tps["ours"], strict=True)]
        summary[name] = {
            "original_tps": statistics.median(tps["original"]),
            "ours_tps": statistics.median(tps["ours"]),
            "speedup_median_of_rounds": statistics.median(ratios),
            "speedups": ratios,
            "original_pss_mb": rss["original"],
            "ours_pss_mb": rss["ours"],
        }
        for impl in ("ours", "original"):
            f = flops_per_transition(name, impl)
            tps = summary[name][f"{impl}_tps"]
            summary[name][f"{impl}_mflop_per_transition"] = f / 1e6
            summary[name][f"{impl}_limit_tps"] = limit * 1e9 / f
            summary[name][f"{impl}_share_of_limit"] = tps * f / (limit * 1e9)
    head = ["original t/s", "ours t/s", "speed-up", "PSS orig", "PSS ours"]
    print(
        f"\n{'setup':14s} " + " ".join(f"{h:>12s}" for h in head) + "   (medians over rounds; peak PSS: max)"
    )
    for name, s in summary.items():
        print(
            f"{name:14s} {s['original_tps']:12.1f} {s['ours_tps']:12.1f} "
            f"{s['speedup_median_of_rounds']:11.2f}x {s['original_pss_mb']:11.0f}M {s['ours_pss_mb']:11.0f}M"
            "   per round: " + " ".join(f"{x:.2f}x" for x in s["speedups"])
        )
    for name, s in summary.items():
        print(
            f"{name:14s} ours {s['ours_mflop_per_transition']:.1f} MFLOP/transition -> limit "
            f"{s['ours_limit_tps']:.0f} t/s, reached {100 * s['ours_share_of_limit']:.0f}%; original "
            f"{s['original_mflop_per_transition']:.1f} MFLOP -> {s['original_limit_tps']:.0f} t/s, "
            f"reached {100 * s['original_share_of_limit']:.0f}%"
        )
    load1 = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else None
    print(f"load average before {load0}, after {load1}")
    print(
        "anchors in benchmarks/README.md (original, same kind of CPU): Shapes small batch 1024 end to end "
        "~650 t/s, model only ~800; Atari medium ~70-85; Cubes large ~46 (model only)"
    )
    out = Path(__file__).parent / "results" / (a.out or "bench_train.json")
    out.parent.mkdir(exist_ok=True)
    meta = {"threads": a.threads, "batch_size": a.batch_size, "flop_limit_gflops": limit}
    meta |= {"load_before": load0, "load_after": load1}
    out.write_text(json.dumps({"runs": rows, "summary": summary, **meta}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
