# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# (chap-setup)=
# # Setup and conventions
#
# This book reproduces, in code you can run, the study of negative sampling in Contrastive
# Structured World Models (C-SWM) {cite}`kipf2020contrastive,biza2021impact`. Every chapter is a
# notebook over one small library, `cswm_lib`: the chapter explains, the library computes. This
# first chapter fixes the conventions every later chapter relies on:
#
# 1. **where computation happens** (CPU or GPU, chosen automatically, overridable),
# 2. **how randomness is controlled** (one seed, the same numbers on every CPU run),
# 3. **where files go** (datasets, checkpoints, results),
# 4. **at which scale a chapter runs** (`small`, `cpu` or `full`) and how to switch.

# %% [markdown]
# ## Parameters
#
# Every chapter has exactly one cell tagged `parameters`. Its values are the *small* defaults: they
# make the chapter run in seconds to a few minutes on a laptop, which is what the test-suite and the
# default book build use. Papermill replaces them with the values of a parameter file to run the
# same chapter at a larger scale (see {ref}`sec-scales` below).

# %% tags=["parameters"]
scale = "small"  # which parameter set produced this run: small | cpu | full
device = None  # None: CUDA when available, else CPU; or "cpu", "cuda", "cuda:1"
seed = 0
matmul_sizes = [128, 256, 512, 1024]  # square matrix sizes for the speed probe below
matmul_repeats = 3
cost_batch = 8  # batch at which one update is timed, FLOPs counted (scaled to 1024)
cost_repeats = 1  # timed updates per model (median)
cost_a3c_updates = 5  # A3C rollouts timed for the agents' cost
gpu_tflops = 60.0  # ASSUMED dense fp32/TF32 TFLOP/s of one GPU, for GPU-hours
gpu_utilisation = 0.3  # ASSUMED fraction of it that these small convolutions reach

# %%
import platform
import time

import matplotlib.pyplot as plt
import torch
import yaml
from IPython.display import Markdown

import cswm_lib
from cswm_lib.book import save_results, toc_chapters
from cswm_lib.report import format_table
from cswm_lib.utils import (
    checkpoints_dir,
    data_dir,
    get_device,
    project_root,
    results_dir,
    set_seed,
)

# %% [markdown]
# ## Device
#
# {func}`cswm_lib.utils.get_device` returns the device to compute on. The `device` parameter wins when
# given; otherwise the environment variable `CSWM_DEVICE`; otherwise CUDA when PyTorch sees a GPU,
# else the CPU. Asking for CUDA on a machine without it is an error with a one-line message, not a
# silent fall-back: a run you believe is on the GPU should not quietly take a hundred times longer.

# %%
dev = get_device(device)
print(f"cswm_lib {cswm_lib.__version__}, torch {torch.__version__}, "
      f"python {platform.python_version()}")
print(f"computing on: {dev}  "
      f"(CPU threads available to torch: {torch.get_num_threads()})")

# %% [markdown]
# How fast is this device? Training a C-SWM is dominated by dense matrix products (the graph
# network's 512-wide MLPs), so the throughput of a square matrix product,
# $2n^3$ floating-point operations for an $n \times n$ product, predicts how long each scale takes.

# %%
def matmul_gflops(n: int, repeats: int, dev: torch.device) -> float:
    a, b = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
    a @ b  # warm-up
    if dev.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9


gflops = {n: matmul_gflops(n, matmul_repeats, dev) for n in matmul_sizes}
for n, g in gflops.items():
    print(f"{n:5d} x {n:<5d} float32 matmul: {g:8.1f} GFLOP/s")

# %%
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(list(gflops), list(gflops.values()), "o-")
ax.set_xscale("log", base=2)
ax.set_xlabel("matrix size n")
ax.set_ylabel("GFLOP/s")
ax.set_title(f"float32 matmul throughput on {dev.type}")
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# ## Seeds and determinism
#
# {func}`cswm_lib.utils.set_seed` seeds Python's `random`, numpy's global generator and PyTorch, and
# returns a fresh `numpy.random.Generator` for code that should not touch global state. The
# library itself never draws from global generators: environments, data generation, negative
# sampling and training each take a seed (or a generator derived from it). On the CPU the same seed
# gives the same dataset bytes and the same metrics; on a GPU some kernels are non-deterministic,
# so expect agreement to a few decimals there. Here is the property in its smallest form:

# %%
set_seed(seed)
first = torch.randn(3)
set_seed(seed)
second = torch.randn(3)
print(first, second, sep="\n")
print("identical:", torch.equal(first, second))
assert torch.equal(first, second)

# %% [markdown]
# ## Where files go
#
# Paths are resolved from the project root (the folder holding `_toc.yml`), so a chapter behaves
# the same whether it runs inside the book build, under papermill or under the test-suite. Each
# location can be moved with an environment variable, e.g. to put large datasets on another disk.
#
# | what | default | override |
# |---|---|---|
# | datasets (HDF5) | `data/` | `CSWM_DATA` |
# | trained models | `checkpoints/<name>/` | `CSWM_CHECKPOINTS` |
# | chapter results (`results.json`) | `_build/results/<chapter>/` | `CSWM_RESULTS` (set by the runner) |

# %%
for name, path in [
    ("project root", project_root()),
    ("datasets", data_dir()),
    ("checkpoints", checkpoints_dir()),
    ("results", results_dir()),
]:
    # relative to the project root: the page never shows the build machine's paths
    root = project_root()
    where = (path.relative_to(root) if path.is_relative_to(root)
             else "(outside the project)")
    print(f"{name:>12}: {'.' if path == root else where}")

# %% [markdown]
# (sec-scales)=
# ## Three scales, one code path
#
# Each experiment chapter runs at three scales that differ *only* in parameter values:
#
# - `small` — the chapter's own defaults; seconds to a few minutes on 2 CPU cores. This is what the
#   book build and the tests run, so the numbers on a default build are **not** the paper's.
# - `cpu` — `book/params/cpu.yaml`: the largest run that fits roughly 45–90 minutes per chapter on an idle
#   2-core machine without a GPU; an honest, reduced reproduction.
# - `full` — `book/params/full.yaml`: the paper's dataset sizes, epochs, seeds and flags.
#
# The runner converts each chapter with jupytext, executes it with papermill, and writes the
# executed notebook and a `results.json` per chapter:
#
# ```bash
# make full        # = python -m cswm_lib.book run --params book/params/full.yaml --out runs/full
# python -m cswm_lib.book run --params book/params/cpu.yaml --chapters 01_setup
# ```
#
# A chapter whose source, parameters and library code have not changed since its last successful
# run is skipped. Every chapter states which scale produced the numbers on its page; this one ran
# at:

# %%
print(f"scale = {scale!r}")
params_dir = project_root() / "book" / "params"
book_chapters = [c.stem for c in toc_chapters() if c.suffix == ".py"]
rows = []
for path in sorted(params_dir.glob("*.yaml")):
    spec = yaml.safe_load(path.read_text())
    chapters = sorted(c[:2] for c in spec.get("chapters") or {})
    rows.append({"parameter file": f"`{path.name}`", "scale": spec.get("scale"),
                 "chapters with values": ", ".join(chapters)})
print(f"{len(book_chapters)} chapters: {book_chapters[0]} ... {book_chapters[-1]}")
Markdown(format_table(rows))

# %% [markdown]
# (sec-scale-out)=
# ## Beyond one machine
#
# At full scale the experiments are dozens of independent runs. The experiment chapters submit them
# through one executor ({mod}`cswm_lib.executor`), named by their `executor` parameter,
# `--executor` on the runner or `EXECUTOR=` on `make`: `local` runs them one after another (the
# default; Ray is not imported), `local:N` runs N at a time in single-thread processes (on a small
# machine two single-thread runs beat one two-thread run), and `ray` hands them to a Ray cluster:
#
# ```bash
# ray start --head --port=6379            # head node
# ray start --address=HEAD_IP:6379        # each worker node (same checkout, pip install -e ".[cluster]")
# export RAY_ADDRESS=HEAD_IP:6379         # driver
# make full EXECUTOR=ray
# ```
#
# Each run asks Ray for one GPU when the cluster has GPUs, else for CPUs; datasets reach the workers
# through Ray's object store; checkpoints and logs come back to this machine's `checkpoints/`, so
# finished runs are skipped and interrupted ones resume as they do locally; a worker that dies is
# retried; a failed run is one line naming it. The same seeds give bit-identical weights on Ray and
# locally on the CPU (tested).
#
# What does the full scale cost? {func}`cswm_lib.cost.cost_table` takes the CPU time of one update of each
# model on this CPU (one thread, batch `cost_batch`, scaled linearly to the runs' batch of 1024) and
# counts its floating-point operations with PyTorch's `FlopCounterMode`; GPU-hours follow from an
# *assumed* GPU throughput and utilisation (the parameters `gpu_tflops`, `gpu_utilisation`), not from
# a measurement. The A3C agents of Sec. 4.3 are CPU work ({func}`cswm_lib.cost.a3c_cost`).

# %%
from IPython.display import Markdown, display

from cswm_lib.cost import a3c_cost, cost_markdown, cost_table, fan_out, full_sweeps

sweeps = full_sweeps()
cost_rows = cost_table(sweeps, gpu_tflops, gpu_utilisation, measure_batch=cost_batch,
                       repeats=cost_repeats)
agents_cost = [a3c_cost(game, updates=cost_a3c_updates)
               for game in ("PongDeterministic-v4", "SpaceInvadersDeterministic-v4")]
display(Markdown(cost_markdown(cost_rows, agents_cost)))

# %% [markdown]
# How a full run fans out: every (dataset, strategy, seed) run is its own job, then one scoring job
# per model. Sec. 4.3 is the longest chain: the agent of a game must finish before its splits are
# collected (train, then valid and test, whose start states are checked against the earlier
# splits), and the splits before its models train.

# %%
fan = fan_out(sweeps)
for key, value in fan.items():
    print(f"{key:>16}: {value}")
print(f"{'GPU-hours':>16}: {sum(r['gpu_hours'] for r in cost_rows):.1f} "
      "for all training runs\n"
      f"{'':>18}(at the assumed {gpu_tflops:g} TFLOP/s x {gpu_utilisation:.0%})")

# %% [markdown]
# ## Summary
#
# - `get_device` picks CUDA when present, else the CPU; `device=` or `CSWM_DEVICE` overrides it.
# - `set_seed` controls global randomness; library code takes explicit seeds and generators.
# - Data, checkpoints and results live under the project root unless an environment variable moves them.
# - One `parameters` cell per chapter; `small` by default, `cpu` and `full` by parameter file.
# - The sweeps' runs go through one executor: `local`, `local:N` processes, or a Ray cluster.
#
# ## Exercises
#
# 1. Run this chapter with `device="cuda"` on a machine without a GPU. What message do you get?
# 2. Extend `matmul_sizes` to 2048 and 4096. Where does this machine's throughput saturate, and how
#    does that compare with the ~130 GFLOP/s the reference machine reaches?
# 3. Run `python -m cswm_lib.book run --params book/params/cpu.yaml --chapters 01_setup` twice. Why
#    is the second run instant, and what would make it run again?

# %% tags=["hide-cell"]
save_results(
    "01_setup",
    {"device": str(dev), "torch": torch.__version__,
     "matmul_gflops": {str(n): g for n, g in gflops.items()},
     "full_scale_cost": cost_rows, "a3c_cost": agents_cost},
    scale,
)
