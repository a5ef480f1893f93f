"""Parts 3 and 4 of the GPU script (full_scale.py): one training step on the device against the
CPU, and training throughput ours vs the original's approach; and the script's log line."""

from __future__ import annotations

import copy
import gc
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: bench_train

T0 = float(os.environ.get("CSWM_GPU_T0") or time.time())  # run.sh's start: the install counts too

#: Relative-error limits of the device-vs-CPU step check (loss, and gradients as one vector). float32
#: is compared with TF32 off; the TF32 run (what training uses: cuDNN's default) is printed only.
TOLERANCE = {"float64": 1e-9, "float32": 1e-3}


def say(msg: str) -> None:
    print(f"[{time.time() - T0:6.1f} s] {msg}", flush=True)


# ------------------------------------------------------------------ 3. one step on the device vs the CPU
def step_errors(device: str, dtype: torch.dtype, world: str, strategy: str, batch: int = 16,
                tf32: bool = False, hidden_dim: int | None = None) -> dict[str, float]:
    """One training step's loss and gradients on ``device`` against the CPU, same weights and batch:
    relative errors ``loss``, ``grad`` (all gradients as one vector) and ``grad_max`` (worst tensor)."""
    from cswm_lib.data.episodes import Episodes
    from cswm_lib.data.loaders import TransitionBatches
    from cswm_lib.experiments import readme_model
    from cswm_lib.model import CSWM, MODEL_KEYS, ModelConfig
    from cswm_lib.negatives import sample_negatives

    kw = {k: v for k, v in readme_model(world).items() if k in MODEL_KEYS}
    kw["hidden_dim"] = hidden_dim or kw["hidden_dim"]
    C = 6 if kw.get("copy_action") else 3
    rng = np.random.default_rng(0)
    cfg = ModelConfig(input_shape=(C, 50, 50), **kw)
    eps = Episodes(rng.integers(0, 256, (4, 6, C, 50, 50), dtype=np.uint8),
                   rng.integers(0, cfg.num_actions, (4, 5)))
    torch.manual_seed(0)
    base = CSWM(cfg).to(dtype)
    out = {}
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        for dev in ("cpu", device):
            model = copy.deepcopy(base).to(dev)
            g = torch.Generator().manual_seed(1)
            b = next(TransitionBatches(eps, batch, dev).epoch(g))
            neg = sample_negatives(strategy, b.episode, b.step, 4, 5, g)
            tb = TransitionBatches(eps, batch, dev)
            if neg.batch_index is not None:
                extra = {"neg_batch_index": neg.batch_index.to(dev)}
            else:
                extra = {"neg_obs": tb.obs(neg.episode, neg.step).to(dtype)}
            loss = model.contrastive_loss(b.obs.to(dtype), b.action, b.next_obs.to(dtype), **extra)[0]
            loss.backward()
            out[dev] = (loss.detach().cpu().double(),
                        [p.grad.detach().cpu().double().flatten() for p in model.parameters()])
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old
    (l0, g0), (l1, g1) = out["cpu"], out[device]

    def rel(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a - b).norm() / b.norm().clamp_min(1e-300))

    return {"loss": rel(l1, l0), "grad": rel(torch.cat(g1), torch.cat(g0)),
            "grad_max": max(rel(a, b) for a, b in zip(g1, g0, strict=True))}


def check_steps(device: str, worlds: tuple[str, ...], hidden_dim: int | None = None) -> list[dict[str, Any]]:
    """:func:`step_errors` of every world's README model, both kinds of negatives, float64, float32
    and float32 with TF32; a row per case with ``ok`` (within :data:`TOLERANCE`)."""
    rows = []
    for world in worlds:
        for strategy in ("baseline", "time_aligned"):
            for dtype, tf32 in ((torch.float64, False), (torch.float32, False), (torch.float32, True)):
                name = str(dtype).removeprefix("torch.")
                e = step_errors(device, dtype, world, strategy, tf32=tf32, hidden_dim=hidden_dim)
                tol = None if tf32 else TOLERANCE[name]
                ok = tol is None or (e["loss"] <= tol and e["grad"] <= tol)
                rows.append({"world": world, "strategy": strategy, "dtype": name + ("+tf32" if tf32 else ""),
                             **e, "tolerance": tol, "ok": ok})
                say(f"step {device} vs cpu {world:6s} {strategy:12s} {rows[-1]['dtype']:13s} loss "
                    f"{e['loss']:.1e} grad {e['grad']:.1e} (worst tensor {e['grad_max']:.1e}) "
                    f"tol {tol if tol is not None else 'none (printed)'} {'ok' if ok else 'FAIL'}")
    return rows


# ------------------------------------------------------------------ 4. throughput vs the original
def throughput(device: str, batch: int, rounds: int, batches: int, episodes: dict[str, int],
               device_name: str) -> list[dict[str, Any]]:
    """Transitions/s of ours and the original's approach (bench_train's steps) per setup, ``rounds``
    interleaved rounds of ``batches`` steps in this process after 2 warm-up steps each."""
    import bench_train as bt

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    rows = []
    for name in bt.SETUPS:
        steps = {impl: bt.make_step(name, impl, batch, device, episodes[name])
                 for impl in ("original", "ours")}
        for step in steps.values():
            step(), step()
        for r in range(rounds):
            for impl, step in steps.items():
                sync()
                t0 = time.perf_counter()
                n = sum(step() for _ in range(batches))
                sync()
                rows.append({"setup": name, "impl": impl, "round": r, "batch_size": batch,
                             "transitions_per_s": n / (time.perf_counter() - t0), "device": device_name})
        del steps
        gc.collect()
        for impl in ("original", "ours"):
            tps = [x["transitions_per_s"] for x in rows if x["setup"] == name and x["impl"] == impl]
            say(f"throughput {name:13s} {impl:8s} median {np.median(tps):9.0f} transitions/s at batch "
                f"{batch} on {device_name} (rounds: {', '.join(f'{x:.0f}' for x in tps)})")
    return rows


def encoder_rates(rows: list[dict[str, Any]], batch: int) -> dict[str, float]:
    """Measured FLOP/s of ours per encoder (bench FLOPs per transition x median transitions/s)."""
    import bench_train as bt

    out = {}
    for name, setup in bt.SETUPS.items():
        tps = np.median([x["transitions_per_s"] for x in rows if x["setup"] == name and x["impl"] == "ours"])
        out[setup[0]] = bt.flops_per_transition(name, "ours", batch=8) * float(tps)
    return out
