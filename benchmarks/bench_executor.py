"""Benchmark: the overhead of the executors (``local``, ``local:2``, ``ray``) on the tiny sweep.

The sweep is the one of ``tests/test_executor_ray.py``: 2 strategies (baseline, episodic) x 2 seeds
on a tiny synthetic dataset (6 episodes x 8 steps, 2 objects), 2 epochs of 3 updates of 16 each,
hidden size 16 -- so nearly all of the time is the executor's own cost, not training. Each
measurement runs in a fresh Python process (as ``make full`` would) and records:

- ``process_s``: the whole wall time of that process (interpreter, imports, executor, sweep);
- ``import_s``: importing torch and cswm_lib;
- ``ray_start_s`` (ray only): ``import ray`` + ``ray.init(num_cpus=2)``, a fresh local instance. On a
  loaded machine ``ray.init`` can run out of Ray's fixed 30 s wait for its raylet: such a start is
  recorded (``ray_start_failed_s``) and the process run again, up to 3 times per round;
- ``sweep_s``: ``get_executor(...).map(jobs)`` alone (for ray: with the instance already up);
- ``ray_shutdown_s`` (ray only);
- the 1-minute load average before and after.

The executors are interleaved (round 1: local, local:2, ray; round 2 rotated, ...) so the load of
the shared machine hits them alike. The trained weights of every run are hashed: ``local:2`` and
``ray`` (one torch thread per job) must give the same weights.

    .venv/bin/python benchmarks/bench_executor.py              # 2 rounds, ~2-4 minutes on 2 busy cores
    .venv/bin/python benchmarks/bench_executor.py --rounds 3

Writes ``benchmarks/results/executor.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXECUTORS = ("local", "local:2", "ray")


def load() -> float:
    return round(os.getloadavg()[0], 2)


def child(executor: str, dataset: str, folder: str, epochs: int) -> None:
    t0 = time.perf_counter()
    import torch

    from cswm_lib.executor import Job, get_executor
    from cswm_lib.experiments import strategy_config, train_run
    from cswm_lib.train import TrainConfig

    row: dict = {"executor": executor, "import_s": time.perf_counter() - t0}
    jobs = []
    for strategy in ("baseline", "episodic"):
        for seed in (1, 2):
            cfg = TrainConfig(dataset=dataset, name=f"{strategy}_s{seed}", save_folder=folder, epochs=epochs,
                              batch_size=16, hidden_dim=16, num_objects=2, action_dim=4, seed=seed,
                              progress=False, device="cpu", **strategy_config(strategy, {}))
            jobs.append(Job(f"tiny/{cfg.name}", train_run, (cfg,), inputs=[dataset], outputs=[cfg.folder()]))
    ray = None
    if executor == "ray":
        t1 = time.perf_counter()
        import ray

        try:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        except Exception as err:  # Ray waits a fixed 30 s for its raylet: a loaded machine can run out
            row.update(ray_start_failed_s=time.perf_counter() - t1, error=str(err)[:200])
            print(json.dumps(row), flush=True)
            os._exit(0)  # the parent removes what the failed start left behind (its process group)
        row["ray_start_s"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    get_executor(executor).map(jobs, label=executor)
    row["sweep_s"] = time.perf_counter() - t1
    if ray is not None:
        t1 = time.perf_counter()
        ray.shutdown()
        row["ray_shutdown_s"] = time.perf_counter() - t1
    digest = hashlib.sha256()
    for job in jobs:
        state = torch.load(job.args[0].folder() / "model.pt", weights_only=True)
        for key in sorted(state):
            digest.update(key.encode() + state[key].numpy().tobytes())
    row["weights_sha256"] = digest.hexdigest()[:16]
    print(json.dumps(row), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=2, help="epochs of 3 updates per run")
    ap.add_argument("--child", nargs=4, metavar=("EXECUTOR", "DATASET", "FOLDER", "EPOCHS"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child[0], args.child[1], args.child[2], int(args.child[3]))

    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_worlds import tiny_episodes

    from cswm_lib.data.hdf5 import save_episodes

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-executor-") as tmp:
        dataset = save_episodes(tiny_episodes(E=6, T=8, K=2, seed=0), Path(tmp) / "tiny.h5")
        for r in range(args.rounds):
            order = EXECUTORS[r % 3:] + EXECUTORS[:r % 3]
            for executor in order:
                folder = Path(tmp) / f"r{r}_{executor.replace(':', '_')}"
                env = {**os.environ, "CSWM_CHECKPOINTS": str(folder / "ckpt"),
                       "CSWM_RAY_SCRATCH": str(folder / "scratch")}
                for attempt in range(3):
                    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
                    log = folder / f"child{attempt}.log"
                    log.parent.mkdir(parents=True, exist_ok=True)
                    load0, t0 = load(), time.perf_counter()
                    with open(log, "w") as fh:  # (a file, not a pipe: Ray's processes may outlive the child)
                        proc = subprocess.Popen([sys.executable, __file__, "--child", executor, str(dataset),
                                                 str(folder / "runs"), str(args.epochs)], stdout=fh,
                                                stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                                                start_new_session=True)
                        proc.wait()
                    wall = time.perf_counter() - t0
                    with contextlib.suppress(ProcessLookupError):  # Ray's processes left behind, if any
                        os.killpg(proc.pid, signal.SIGKILL)
                    if proc.returncode:
                        sys.exit(f"{executor} failed:\n{log.read_text()[-3000:]}")
                    row = json.loads(log.read_text().strip().splitlines()[-1])
                    row.update(round=r, process_s=wall, load_before=load0, load_after=load(),
                               uptime_before=uptime)
                    rows.append(row)
                    if "ray_start_failed_s" not in row:
                        print({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()},
                              flush=True)
                        break
                    print(f"ray.init failed after {row['ray_start_failed_s']:.0f} s (load {load0}): "
                          f"{row['error']}", flush=True)

    summary = {}
    for executor in EXECUTORS:
        mine = [r for r in rows if r["executor"] == executor and "sweep_s" in r]
        keys = ("process_s", "import_s", "ray_start_s", "sweep_s", "ray_shutdown_s")
        summary[executor] = {k: statistics.median(r[k] for r in mine) if mine else float("nan")
                             for k in keys if executor == "ray" or not k.startswith("ray")}
        summary[executor]["loads"] = [(r["load_before"], r["load_after"]) for r in mine]
        summary[executor]["ray_start_failed"] = sum("ray_start_failed_s" in r for r in rows
                                                    if r["executor"] == executor)
    local = summary["local"]["process_s"]
    print(f"\n{'executor':9s} {'process s':>10s} {'vs local':>9s} {'import s':>9s} {'ray start s':>12s} "
          f"{'sweep s':>8s} {'shutdown s':>11s}   load (before, after) per round")
    for executor, s in summary.items():
        s["process_vs_local"] = s["process_s"] / local
        print(f"{executor:9s} {s['process_s']:10.1f} {s['process_vs_local']:8.2f}x {s['import_s']:9.1f} "
              f"{s.get('ray_start_s', 0):12.1f} {s['sweep_s']:8.1f} {s.get('ray_shutdown_s', 0):11.1f}   "
              f"{s['loads']}")
    if summary["ray"]["ray_start_failed"]:
        print(f"ray.init ran out of Ray's 30 s raylet wait {summary['ray']['ray_start_failed']} time(s)")
    hashes = {r["executor"]: r["weights_sha256"] for r in rows if "weights_sha256" in r}
    parallel = {r["weights_sha256"] for r in rows if r["executor"] != "local" and "weights_sha256" in r}
    same = len(parallel) == 1 and "ray" in hashes
    verdict = "identical" if same else ("DIFFER" if "ray" in hashes else "not compared: ray never ran")
    print(f"weights of local:2 and ray: {verdict} ({hashes})")
    path = Path(__file__).parent / "results" / "executor.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"cpu_count": os.cpu_count(), "rounds": args.rounds, "epochs": args.epochs,
            "updates_per_run": 3 * args.epochs, "runs": 4,
            "ray_init": "num_cpus=2, include_dashboard=False, log_to_driver=False",
            "local2_and_ray_weights_identical": same}
    path.write_text(json.dumps({"meta": meta, "rows": rows, "summary": summary}, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
