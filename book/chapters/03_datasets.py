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
# (chap-datasets)=
# # Datasets
#
# Every model in this book learns from fixed datasets of random-policy episodes, generated once
# from the worlds of {ref}`chap-environments`, exactly as listed in {ref}`the README <sources>`
# (and C-SWM's README) {cite}`kipf2020contrastive,biza2021impact`. This chapter generates
# them, explains the file format, and measures the properties of the data that the
# negative-sampling paper's arguments rest on: how often states *repeat* -- across episodes,
# within an episode, at the start.

# %% tags=["parameters"]
scale = "small"  # small | cpu | full
divisor = 50  # episodes per dataset: the README's size divided by this (1: the paper's)
min_episodes = 20  # ... but at least this many (Atari eval sets have only 100 episodes)
num_workers = None  # generation processes (None: automatic)
datasets = [  # which README datasets to generate (all of them by default)
    "shapes_train", "shapes_eval", "cubes_train", "cubes_eval",
    "pong_train", "pong_eval", "spaceinvaders_train", "spaceinvaders_eval",
    "shapes_imm_train", "shapes_imm_eval", "cubes_imm_train", "cubes_imm_eval",
]

# %%
import time

import h5py
import matplotlib.pyplot as plt
from IPython.display import Markdown

from cswm_lib.book import save_results
from cswm_lib.data import stats
from cswm_lib.data.generate import README_DATASETS, readme_dataset
from cswm_lib.data.hdf5 import load_episodes, save_original_layout
from cswm_lib.report import format_table
from cswm_lib.utils import data_dir

# %% [markdown]
# ## Generating the datasets
#
# The original READMEs list one command per dataset, for example
#
# ```
# python -m cswm_lib.data.generate --env-id ShapesImmovableEval-v0 --fname data/shapes_imm_eval.h5 \
#     --num-episodes 10000 --seed 2 --save-state-ids
# ```
#
# Our generator takes the same flags. A random agent draws uniform actions; each episode runs for
# the id's episode length (100 steps for `*Train`, 10 for `*Eval`; Atari: a random warm-up of 58
# (Pong) or 50 (Space Invaders) steps, one no-op, then 10 recorded steps). Episode $e$ gets its own
# random streams, derived from the pair (seed, $e$) with numpy's `SeedSequence`, so a dataset is a
# function of its parameters only -- not of the number of worker processes -- and the same seed
# gives byte-identical arrays (both are unit-tested). Files are written to a temporary name and
# renamed when complete, and a file whose stored parameters match the request is reused.

# %%
rows = []
for name in datasets:
    spec = README_DATASETS[name]
    flags = " ".join(f"`--{k.replace('_', '-')}`" for k in ("atari", "save_state_ids")
                     if spec.get(k))
    n = min(spec["num_episodes"], max(min_episodes, spec["num_episodes"] // divisor))
    rows.append({"dataset": name, "env id": spec["env_id"], "episodes": n,
                 "seed": spec["seed"], "flags": flags})
Markdown(format_table(rows))

# %%
paths, gen_seconds = {}, {}
for name in datasets:
    t0 = time.perf_counter()
    paths[name] = readme_dataset(name, divisor, min_episodes, num_workers=num_workers,
                                 progress=False)
    gen_seconds[name] = time.perf_counter() - t0
print(f"generated or reused in {sum(gen_seconds.values()):.1f} s")

# %% [markdown]
# ## The file format
#
# The original code stored every transition as a float `obs` and a float `next_obs` (float32 for
# Shapes, float64 for Cubes and Atari), one HDF5 group per episode. Since `next_obs` of step $t$ is
# `obs` of step $t+1$, every image was stored twice, and as 4 or 8 bytes per pixel value instead of
# one. Our format (version 1) stores each episode's $T+1$ frames once, as `uint8`, compressed per
# episode:
#
# | path | dtype | shape | meaning |
# |---|---|---|---|
# | `/frames` | uint8 | $[E, T{+}1, C, 50, 50]$ | frame $t$ = obs. before action $t$; gzip per episode |
# | `/actions` | int64 | $[E, T]$ | action after frame $t$ |
# | `/state_ids` | int64 | $[E, T{+}1, S]$ | optional: object positions ($S = 10$) or Atari RAM ($S = 128$) |
# | root attributes | | | `format="cswm-book"`, `format_version=1`, and the generation parameters |
#
# Atari frames have $C = 6$: two RGB frames stacked as **(previous, current)**. Here is one file:

# %%
example = paths[next(n for n in datasets if n.endswith("_eval")
                     and README_DATASETS[n].get("save_state_ids"))]
with h5py.File(example) as f:
    print(example.name)
    for key, ds in f.items():
        print(f"  /{key:10s} {str(ds.dtype):6s} {ds.shape}  "
              f"chunks={ds.chunks} compression={ds.compression}")
    for key, value in sorted(f.attrs.items()):
        print(f"  @{key} = {value}")

# %% [markdown]
# How much smaller is it? We compare bytes on disk per transition with what the original layout
# needs for the same arrays, computed from shapes and dtypes: $2 \cdot C \cdot 50 \cdot 50 \cdot
# \text{itemsize}$ for `obs` + `next_obs`, 8 bytes for the action, $2 \cdot 8 S$ for state ids.

# %%
def original_bytes_per_transition(name: str, state_dim: int | None) -> int:
    env_id = README_DATASETS[name]["env_id"]
    channels, itemsize = ((3, 4) if env_id.startswith("Shapes")
                          else (6 if "Deterministic" in env_id else 3, 8))
    return (2 * channels * 50 * 50 * itemsize + 8
            + (2 * 8 * state_dim if state_dim else 0))


sizes = {}
print(f"{'dataset':20s} {'transitions':>11s} {'ours B/tr':>10s} "
      f"{'original B/tr':>13s} {'ratio':>7s}")
for name in datasets:
    with h5py.File(paths[name]) as f:
        E, T = f["actions"].shape
        S = f["state_ids"].shape[-1] if "state_ids" in f else None
    ours = paths[name].stat().st_size / (E * T)
    orig = original_bytes_per_transition(name, S)
    sizes[name] = {"ours_bytes_per_transition": ours,
                   "original_bytes_per_transition": orig}
    print(f"{name:20s} {E * T:11d} {ours:10,.0f} {orig:13,d} {orig / ours:6.0f}x")

# %% [markdown]
# A full Shapes training set (1000 episodes of 100 steps) took about 6 GB in the original layout
# (the original code's own figure on a machine like ours, `benchmarks/README.md`; 60 kB per
# transition, as computed above); ours is a
# small fraction of that, and loading it fully into memory takes 1000 x 101 x 7,500 bytes = 0.76 GB
# of uint8 frames.
#
# The reader also accepts files in the original layout (episode groups `"0"`, `"1"`, ... read in
# *numeric* order; the original loader iterated them in lexicographic order `"0", "1", "10", ...`,
# which we keep as `Episodes.original_order`: the presets of the published scripts that batch
# episodes, `batched_dedup` and `local_dedup`, follow it on such files, as those scripts did).
# Floats are converted back to uint8 by rounding $255x$, which is exact for images that were uint8
# to begin with, and `next_obs[t] == obs[t+1]` is checked. A round trip:

# %%
small = load_episodes(example)
subset = type(small)(small.frames[:20], small.actions[:20], small.state_ids[:20], {})
orig_path = save_original_layout(subset, data_dir() / "roundtrip_original_layout.h5")
back = load_episodes(orig_path)
print("identical after original-layout round trip:",
      bool((back.frames == subset.frames).all()
           and (back.actions == subset.actions).all()
           and (back.state_ids == subset.state_ids).all()))
print(f"20 episodes: original layout {orig_path.stat().st_size / 2**20:.2f} MiB")
orig_path.unlink()

# %% [markdown]
# In memory every dataset is an `Episodes` object: `frames[e, t]` is the observation before action
# `t` of episode `e` and `frames[e, t + 1]` the one after it. Training (chapter *Model*) and
# evaluation (chapter *Evaluation*) index these arrays in whole batches. One immovable-Shapes
# training episode:

# %%
name = "shapes_imm_train" if "shapes_imm_train" in datasets else datasets[0]
t0 = time.perf_counter()
train = load_episodes(paths[name])
load_s = time.perf_counter() - t0
print(train)
print(f"loaded {train.frames.nbytes / 2**20:.1f} MiB of frames in {load_s:.2f} s")
fig, axes = plt.subplots(2, 4, figsize=(6.4, 3.9))
for t, ax in enumerate(axes.flat):
    ax.imshow(train.frames[0, t].transpose(1, 2, 0))
    ax.set_title(f"t={t}, a={train.actions[0, t]}", fontsize=9)
    ax.axis("off")
plt.show()

# %% [markdown]
# ## Statistics that matter for negative sampling
#
# ### No-op steps
#
# In the immovable worlds, 8 of the 20 actions address objects 0 and 1 and do nothing; other moves
# are blocked by walls or objects. A no-op step makes $o_{t+1} = o_t$: the positive pair is two
# identical images, and a negative drawn from the same episode is often identical to the anchor.
# In the training files (no state ids) identical consecutive frames reveal no-ops; the eval files
# split them by cause using the state ids.

# %%
noops = {}
for name in datasets:
    spec = README_DATASETS[name]
    if spec.get("atari"):
        continue
    ep = load_episodes(paths[name])
    same = ((ep.frames[:, 1:] == ep.frames[:, :-1])
            .reshape(*ep.actions.shape, -1).all(-1))
    noops[name] = {"identical_consecutive_frames": float(same.mean())}
    if ep.state_ids is not None:
        noops[name].update(stats.noop_stats(ep.actions, ep.state_ids))
    del ep
# one row per dataset, one column per kind of no-op (share of all steps)
first = "identical_consecutive_frames"
columns = sorted({k for v in noops.values() for k in v}, key=lambda k: k != first)
Markdown(format_table([
    {"dataset": n,
     **{k.replace("_", " "): f"{v[k]:.1%}" if k in v else "--" for k in columns}}
    for n, v in noops.items()
]))

# %% [markdown]
# About 40% of the immovable-world steps are actions on immovable objects ($8/20$), and the total
# no-op fraction is higher still; the normal worlds only lose steps to blocked moves.
#
# ### Repeated states across episodes
#
# Evaluation (chapter *Evaluation*) asks: after $L$ steps from $o_0$, which of all the eval
# set's targets is the predicted state closest to? If two episodes reach the *same* state after
# $L$ steps, even a perfect model cannot tell their targets apart, which is why
# {cite}`biza2021impact` de-duplicates by state id. How often does that happen? For uniformly
# random states the birthday estimate of duplicate pairs among $N$ draws from $|S|$ states is
# $\binom{N}{2} / |S|$; block pushing has $|S| = 25 \cdot 24 \cdot 23 \cdot 22 \cdot 21$.

# %%
num_block_states = 25 * 24 * 23 * 22 * 21
repeats, rows = {}, []
for name in datasets:
    ep = load_episodes(paths[name])
    if ep.state_ids is None:
        continue
    r = stats.repeated_targets(ep.state_ids, steps=(0, 1, 5, 10))
    repeats[name] = {f"L{L}": v for L, v in r.items()}
    row = {"dataset": name, "episodes": ep.num_episodes}
    row.update({f"L={L}": f"{v:.1%}" for L, v in r.items()})
    row["birthday estimate (pairs)"] = (
        "--" if README_DATASETS[name].get("atari")
        else f"{stats.expected_duplicate_pairs(ep.num_episodes, num_block_states):.3f}")
    rows.append(row)
    del ep
Markdown(format_table(rows))

# %% [markdown]
# Block-pushing states are drawn from millions of possibilities, so repeats are rare (and rarer at
# small scale, since the count grows with $N^2$). The Atari eval episodes all start after the same
# short random warm-up from the same initial screen, and a random agent barely changes the game in
# 60 steps, so their RAM states repeat far more often: this is where de-duplicated evaluation
# matters most.
#
# ### Duplicate start states across splits
#
# Are evaluation episodes new? We look for eval start states that also start a training episode
# (by identical first frames, since the training files carry no state ids).

# %%
starts = {}
for train_name in datasets:
    eval_name = train_name.replace("_train", "_eval")
    if not train_name.endswith("_train") or eval_name not in datasets:
        continue
    tr, ev = load_episodes(paths[train_name]), load_episodes(paths[eval_name])
    first_tr = tr.frames[:, 0].reshape(tr.num_episodes, -1)
    first_ev = ev.frames[:, 0].reshape(ev.num_episodes, -1)
    starts[eval_name] = {
        "eval_starts_duplicated_within_eval": stats.duplicate_fraction(first_ev),
        "eval_starts_seen_in_train": float(stats.seen_in(first_ev, first_tr).mean()),
    }
    del tr, ev
Markdown(format_table([
    {"eval set": n, **{k.replace("_", " "): f"{v:.2%}" for k, v in s.items()}}
    for n, s in starts.items()
]))

# %% [markdown]
# The Atari random-policy splits overlap: many evaluation episodes start from a screen that also
# starts a training episode, because all episodes start from the same power-on state and 50-60
# random steps do not go far. The A3C datasets of the *Agents* chapter avoid this on purpose (they
# check start states against earlier splits).
#
# ## Summary
#
# - `python -m cswm_lib.data.generate` (or `ensure_dataset` / `readme_dataset`) makes every dataset
#   of the original READMEs; seeded per episode, independent of the number of workers, written
#   atomically, reused when the parameters match.
# - Format v1 stores each episode's frames once as compressed uint8 with optional state ids, orders
#   of magnitude smaller than the original float layout, which the reader still accepts.
# - In the immovable worlds a large fraction of random steps are no-ops; in the Atari random-policy
#   data, states and even start states repeat across episodes and across splits. Both facts shape
#   the negative-sampling results of the following chapters.
#
# ## Exercises
#
# 1. Re-run with `divisor = 1` (the paper's sizes) and compare the fraction of repeated Shapes eval
#    targets with the birthday estimate.
# 2. Generate `ShapesImmovableTrain-v0` with actions restricted to objects 2-4 (the original fork's
#    `--no-immovable-actions`): write the few lines needed using `BlockPushing.move`. How does the
#    no-op fraction change?
# 3. Compress `/frames` with `lzf` instead of gzip (`generate(..., compression="lzf")`) and compare
#    file size and load time.

# %% tags=["hide-cell"]
save_results(
    "03_datasets",
    {
        "divisor": divisor,
        "generation_seconds": gen_seconds,
        "sizes": sizes,
        "noops": noops,
        "repeated_targets": repeats,
        "start_states": starts,
        "load_seconds": {name: load_s},
    },
    scale,
)
