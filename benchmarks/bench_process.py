"""Benchmark: whole-process time and peak RSS of the two commands a user waits for most.

1. ``python -m cswm_lib.evaluate``: N = 10,000 ShapesImmovableEval episodes (``data/shapes_imm_eval.h5``,
   generated if missing), 1 step, ``--mode dedup``, on a small-encoder Shapes checkpoint (trained
   here for 1 update if none is given: the time does not depend on the weights).
2. ``python -m cswm_lib.train --num-updates 100 --batch-size 32`` on 50 ShapesImmovableTrain episodes.

Each command runs ``--rounds`` times in a fresh process under ``/usr/bin/time``; the 1-minute load
average is recorded before each run. Run it on an otherwise idle machine.

    .venv/bin/python benchmarks/bench_process.py [--rounds 3] [--checkpoint FOLDER]

Writes ``benchmarks/results/bench_process.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(cmd: list[str]) -> dict:
    """Wall seconds and peak RSS (MB) of ``cmd`` in a fresh process, with the load before it."""
    load = os.getloadavg()[0]
    with tempfile.NamedTemporaryFile("r", suffix=".time") as f:
        subprocess.run(["/usr/bin/time", "-o", f.name, "-f", "%e %M", *cmd], check=True, cwd=ROOT,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall, kb = f.read().split()[-2:]
    return {"wall_s": float(wall), "peak_rss_mb": int(kb) / 1024, "load_1min": load}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--checkpoint", default=None, help="a small-encoder Shapes checkpoint folder")
    a = ap.parse_args()
    py = sys.executable
    work = Path(tempfile.mkdtemp(prefix="bench_process_"))
    eval_set = ROOT / "data" / "shapes_imm_eval.h5"
    if not eval_set.exists():
        subprocess.run([py, "-m", "cswm_lib.data.generate", "--env-id", "ShapesImmovableEval-v0", "--fname",
                        eval_set, "--num-episodes", "10000", "--save-state-ids", "--seed", "2"], check=True)
    train_set = work / "train.h5"
    subprocess.run([py, "-m", "cswm_lib.data.generate", "--env-id", "ShapesImmovableTrain-v0", "--fname",
                    train_set, "--num-episodes", "50", "--no-progress"], check=True)
    base = [py, "-m", "cswm_lib.train", "--dataset", str(train_set), "--save-folder", str(work),
            "--encoder", "small", "--batch-size", "32", "--no-progress"]
    train = [*base, "--num-updates", "100"]
    ckpt = a.checkpoint
    if ckpt is None:
        subprocess.run([*base, "--name", "ckpt", "--num-updates", "1"], check=True, stdout=subprocess.DEVNULL)
        ckpt = str(work / "ckpt")
    evaluate = [py, "-m", "cswm_lib.evaluate", "--save-folder", ckpt, "--dataset", str(eval_set),
                "--num-steps", "1", "--setting", "global_dedup", "--no-progress"]
    runs = []
    for r in range(a.rounds):
        runs.append({"what": "evaluate N=10k 1-step dedup", "round": r, **timed(evaluate)})
        runs.append({"what": "train 100 updates, batch 32", "round": r,
                     **timed([*train, "--name", f"run{r}"])})
        for x in runs[-2:]:
            print(f"{x['what']:30s} round {r}: {x['wall_s']:5.2f} s, {x['peak_rss_mb']:5.0f} MB peak RSS, "
                  f"load {x['load_1min']:.2f}", flush=True)
    median = lambda what, k: statistics.median(x[k] for x in runs if x["what"] == what)  # noqa: E731
    summary = {what: {k: median(what, k) for k in ("wall_s", "peak_rss_mb")} for what in dict.fromkeys(
        x["what"] for x in runs)}
    for what, s in summary.items():
        print(f"{what:30s} median {s['wall_s']:.2f} s, {s['peak_rss_mb']:.0f} MB")
    out = Path(__file__).parent / "results" / "bench_process.json"
    out.write_text(json.dumps({"runs": runs, "summary": summary}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
