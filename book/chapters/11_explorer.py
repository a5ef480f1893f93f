# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# (chap-explorer)=
# # Explore the embeddings
#
# Ranking scores ({ref}`chap-evaluation`) say *how well* a world model predicts; they do not say
# *what* it learned. A structured world model {cite}`kipf2020contrastive` is meant to give every
# object its own slot, and the negative-sampling paper {cite}`biza2021impact` argues that with the
# usual random negatives the slots may learn a shortcut instead: in the *immovable* worlds the two
# objects that never move identify the episode, and separating episodes is all the baseline loss
# asks for ({ref}`chap-negatives`). This chapter *looks* at two models trained on the same data,
# one with the baseline negatives and one with the paper's mixture of episodic and random
# negatives, with an interactive explorer, {class}`cswm_lib.widgets.explorer.EmbeddingExplorer`. By
# default the two are the **reference models** shipped with the book: one seed of each strategy from
# the recorded `cpu`-scale run of {ref}`chap-immovable` ({mod}`cswm_lib.reference_models`), trained
# long enough for the structure to show. The scores of that comparison -- learning curves and a
# verdict over every seed -- are in {ref}`chap-immovable`.
#
# In a running notebook the explorer is a pair of sliders (episode, step) above a figure; in this
# HTML page, where no Python runs, the same panels are drawn as static figures for a few states.
#
# ```{admonition} Run the live explorer
# :class: tip
# From the repository root, `make lab` installs JupyterLab (pinned) and runs
# `jupyter lab book/chapters/11_explorer.py`; the chapter opens as a notebook (through jupytext).
# Run all cells, then move the sliders under "The live explorer".
# ```

# %% tags=["parameters"]
scale = "small"  # which parameter set produced this run: small | cpu | full
device = None  # None: CUDA when available, else CPU
# "shipped": the reference models of chapter 08's recorded cpu run (book/results/cpu/models/);
# "train": train two models here with the settings below (also when none are shipped)
models = "shipped"
reference_seed = 101  # the shipped seed
seed = 0
# --- the "train" path ---
train_episodes = 20  # ShapesImmovableTrain episodes of 100 steps (paper: 1000, seed 1)
# ShapesImmovableEval episodes = 10,000 // eval_divisor (10 steps each, seed 2)
eval_divisor = 50
epochs = 8  # paper: 100
batch_size = 128  # paper: 1024
hidden_dim = 128  # paper: 512
beta = 0.5  # probability of an episodic negative in "mixed" (the paper's value)
# --- both ---
num_neighbours = 4  # thumbnails of nearest states per model
num_queries = 2000  # states whose nearest neighbour is compared with the ground truth
num_timed = 20  # interactions timed at the end
# torch CPU threads (None: torch's default); small models on shared cores run best on 1
threads = 1

# %%
import textwrap
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from cswm_lib import reference_models
from cswm_lib.book import save_results
from cswm_lib.data.generate import ensure_dataset, readme_dataset
from cswm_lib.data.hdf5 import load_episodes
from cswm_lib.reference_models import model_line
from cswm_lib.train import TrainConfig, read_log, train
from cswm_lib.utils import data_dir, get_device

STRATEGIES = ["baseline", "mixed"]
ON_RECORD = ("08_immovable", "Shapes immovable")  # the shipped models' record

# %%
t_start = time.perf_counter()
dev = get_device(device)
# on a few busy cores, threads mostly wait for each other
# (measured on 2 shared cores: a training epoch 3.5x faster with one thread)
if dev.type == "cpu" and threads:
    torch.set_num_threads(threads)
eval_path = readme_dataset("shapes_imm_eval", eval_divisor, min_episodes=20,
                           progress=False)
eval_set = load_episodes(eval_path)
eval_set.summary()

# %% [markdown]
# ## Two models, one difference
#
# Both models are the C-SWM of {ref}`chap-model` with the same seed, data and hyper-parameters;
# only the negatives differ. The reference models were trained on Shapes-immovable training
# episodes (the README's generator, seed 1) and work on any Shapes-immovable episodes, such as the
# eval set above. Each model's line says where it comes from.

# %% tags=["hide-input"]
def train_here() -> tuple[dict, dict, dict]:
    """The "train" path: both strategies on ShapesImmovableTrain (reused if trained)."""
    train_file = data_dir() / f"shapes_imm_train_ids_{train_episodes}.h5"
    train_path = ensure_dataset("ShapesImmovableTrain-v0", train_file, train_episodes,
                                seed=1, save_state_ids=True, progress=False)
    train_set = load_episodes(train_path)
    folders, labels, losses = {}, {}, {}
    for strategy in STRATEGIES:
        name = f"ch11_{train_path.stem}_{strategy}_h{hidden_dim}_e{epochs}_s{seed}"
        cfg = TrainConfig(dataset=str(train_path), name=name, strategy=strategy,
                          beta=beta, time_aligned=False, epochs=epochs,
                          batch_size=batch_size, hidden_dim=hidden_dim, seed=seed,
                          device=str(dev), progress=False)
        folders[strategy] = train(cfg, train_set)
        losses[strategy] = read_log(folders[strategy])[-1]["loss"]
        here = f"trained here ({scale} scale)"
        labels[strategy] = f"{model_line(folders[strategy])}; {here}"
    return folders, labels, losses

# %%
shipped = reference_models.available(*ON_RECORD, STRATEGIES, reference_seed)
if models == "shipped" and not shipped:
    print("no shipped reference models in this checkout: training two models here")
source = "shipped" if models == "shipped" and shipped else "train"
final_loss = {}
if source == "shipped":
    refs = {s: reference_models.load(*ON_RECORD, s, reference_seed, device=str(dev))
            for s in STRATEGIES}
    sources = {s: r.model for s, r in refs.items()}
    provenance = {s: f"shipped -- {r.label}" for s, r in refs.items()}
else:
    sources, provenance, final_loss = train_here()
for strategy, line in provenance.items():
    print(textwrap.fill(f"{strategy}: {line}", 80, subsequent_indent="  "))

# %% [markdown]
# ## What the explorer precomputes
#
# Sliding through states must feel instant, so everything that depends on the eval set is
# computed once, in batches, without gradients: the embedding $z \in \mathbb{R}^{K\times D}$ of
# every frame, the extractor's masks, a 2D projection of the embeddings (the principal
# components when $D > 2$; here $D = 2$ is shown as is) and an index for nearest-state queries
# in the model's own energy,
#
# $$
# E(z, z') = \frac{1}{2\sigma^2}\,\frac{1}{K}\sum_{k=1}^{K} \lVert z_k - z'_k \rVert^2 .
# $$

# %%
from cswm_lib.widgets import EmbeddingExplorer, slot_colour

t0 = time.perf_counter()
explorer = EmbeddingExplorer(sources["baseline"], eval_set, other=sources["mixed"],
                             names=["baseline", "mixed"], num_neighbours=num_neighbours,
                             device=str(dev), progress=False)
precompute_s = time.perf_counter() - t0
for v in explorer.views:
    print(f"{v.name:8s} embeddings {list(v.z.shape)}  masks {list(v.masks.shape)}  "
          f"actions per state {v.num_actions}")
num_states = eval_set.num_episodes * (eval_set.episode_length + 1)
print(f"precomputed {num_states:,d} states x 2 models in {precompute_s:.1f} s")

# %% [markdown]
# ## The live explorer
#
# With a kernel attached (`make lab`), the cell below shows the sliders: move them, or switch
# between the two models and the side-by-side view. This static page runs no Python, so the cell
# shows nothing here; the figures below are the same panels, drawn for chosen states.

# %% tags=["remove-output"]
explorer

# %% [markdown]
# ## Reading one state
#
# Each row belongs to one model. From left to right: the observation $o_t$ with the next one
# $o_{t+1}$ and the action taken between them; the extractor's $K = 5$ masks, each in its slot's
# colour; the embedding panel, where each slot's path through the episode is a thin line, the
# current state $z_t$ the large dots, the encoded next state $z_{t+1}$ the circles, and thin arrows
# from each $z_t^k$ to $z_t^k + T(z_t, a)^k$ for **every** action $a$ (the action actually taken is
# marked x, and the energy between x and o, the positive term of the loss, is printed in the
# corner); and the states of the whole eval set nearest to $z_t$, with their energy. Action
# $a = 4k + d$ pushes object $k$ in direction $d$; objects 0 and 1 never move.
#
# First, the start of an episode whose action moves an object:

# %%
ids = eval_set.state_ids  # [E, T+1, 10]: (row, col) of objects 0..4
E, T = eval_set.num_episodes, eval_set.episode_length
moved = (ids[:, 1:] != ids[:, :-1]).any(-1)  # [E, T]: did the action change the state?
e_move = int(np.argmax(moved[:, 0]))
fig = explorer.plot(e_move, 0)
plt.show()
print(f"episode {e_move}, step 0: action {eval_set.actions[e_move, 0]} "
      "changes the state")

# %% [markdown]
# A push that does nothing (into the wall, another object, or an immovable object) should leave
# the state where it is: the x marks should sit on the dots.

# %%
e_noop, t_noop = (int(i) for i in np.argwhere(~moved)[0])
fig = explorer.plot(e_noop, t_noop)
plt.show()
print(f"episode {e_noop}, step {t_noop}: "
      f"action {eval_set.actions[e_noop, t_noop]} is a no-op")

# %% [markdown]
# ## Which slot tracks which object?
#
# If slot $k$ tracks object $j$, object $j$'s grid position should be an (affine) function of
# $z_k$. {func}`cswm_lib.analysis.slot_object_r2` fits that map for every pair and reports
# $R^2$ (1: the slot determines where the object is; 0: it says nothing about it). Objects 0 and 1
# are the immovable ones ("imm.").

# %%
from cswm_lib.analysis import slot_object_r2

pos = ids.reshape(E * (T + 1), 5, 2)
z_flat = {v.name: v.z.reshape(E * (T + 1), 5, -1) for v in explorer.views}
r2 = {name: slot_object_r2(z, pos) for name, z in z_flat.items()}

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, 2, figsize=(7, 3.4), sharey=True, layout="constrained")
for ax, v in zip(axes, explorer.views, strict=True):
    im = ax.imshow(r2[v.name], vmin=0, vmax=1, cmap="viridis")
    for (k, j), val in np.ndenumerate(r2[v.name]):
        ax.text(j, k, f"{val:.2f}", ha="center", va="center", fontsize=9,
                color="w" if val < 0.6 else "k")
    ax.set_xticks(range(5), [f"{j}\n(imm.)" if j < 2 else str(j) for j in range(5)],
                  fontsize=9)
    ax.set_yticks(range(5), [f"slot {k}" for k in range(5)], fontsize=9)
    for k, lab in enumerate(ax.get_yticklabels()):
        lab.set_color(slot_colour(k))
    ax.set_xlabel("object")
    ax.set_title(v.name)
fig.suptitle("$R^2$ of an object's position from a slot's embedding")
fig.colorbar(im, ax=axes, shrink=0.8)
plt.show()

# %%
# per object: how well its best slot tracks it
best = {name: m.max(0) for name, m in r2.items()}
for name, b in best.items():
    print(f"{name:8s} best slot per object R^2: {np.round(b, 2)}\n{'':9s}"
          f"mean: immovable {b[:2].mean():.2f}, movable {b[2:].mean():.2f}")

# %% [markdown]
# ## The per-object grid
#
# Each movable object lives on a 5x5 grid, so a slot that tracks one should map the object's 25
# cells to 25 points of its 2-D embedding, neighbouring cells to neighbouring points. Below, for
# every slot (a row per model, a panel per slot), the mean embedding of each grid cell of the object
# it tracks best (the brightest cell of its $R^2$ row), with lines joining neighbouring cells: a
# slot that learned its object draws a (bent) grid; the faint dots are every state's $z_k$. The
# immovable objects sit still within an episode, so their slots should stay where they are while the
# movable ones trace the grid; the numbers under the figure measure that.

# %% tags=["hide-input"]
fig, axes = plt.subplots(2, 5, figsize=(7.2, 3.9), layout="constrained")
for row, v in zip(axes, explorer.views, strict=True):
    z = z_flat[v.name]
    for k, ax in enumerate(row):
        j = int(np.argmax(r2[v.name][k]))
        ax.scatter(*z[:, k].T, s=2, color=slot_colour(k), alpha=0.1, lw=0)
        cells = np.full((5, 5, 2), np.nan)
        for r, c in {tuple(p) for p in pos[:, j].tolist()}:
            cells[r, c] = z[(pos[:, j] == (r, c)).all(-1), k].mean(0)
        for line in [*cells, *cells.transpose(1, 0, 2)]:
            ax.plot(*line.T, "-o", color=slot_colour(k), lw=1, ms=2)
        ax.set_title(f"slot {k}\nobject {j}" + (" (imm.)" if j < 2 else ""),
                     fontsize=9, color=slot_colour(k))
        ax.set_xticks([])
        ax.set_yticks([])
    row[0].set_ylabel(v.name)
fig.suptitle("each slot's embedding, averaged per grid cell\n"
             "of the object it tracks best", fontsize=10)
plt.show()

# %%
# how far each slot moves within an episode (mean step length), against how spread it is overall
z_ep = {n: z.reshape(E, T + 1, 5, -1) for n, z in z_flat.items()}
for name, z in z_ep.items():
    step = np.linalg.norm(np.diff(z, axis=1), axis=-1).mean((0, 1))
    spread = np.linalg.norm(z - z.mean((0, 1)), axis=-1).mean((0, 1))
    best_obj = r2[name].argmax(1)
    moves = ", ".join(f"{k} ({j}{' imm.' if j < 2 else ''}): {step[k] / spread[k]:.2f}"
                      for k, j in enumerate(best_obj))
    line = f"{name} -- slot (object): move -- {moves}"
    print(textwrap.fill(line, 80, subsequent_indent="  "))
print("(a slot's mean move per step, as a share of its mean distance from its centre)")

# %% [markdown]
# ## Where the two models disagree: their nearest states
#
# The explorer's nearest-state panel asks the model which other states it thinks are closest. A
# model that encodes *where the objects are* should answer with states that look the same. Within
# an episode the nearest state is mostly the same state again (many pushes are no-ops), so we look
# *across* episodes: for `num_queries` random states we take each model's nearest state from
# another episode and count the objects at the same place, separately for the two immovable and
# the three movable objects. The baseline's shortcut predicts that its neighbours agree on the
# immovable objects (the episode's fingerprint) much more than on the movable ones.

# %%
rng = np.random.default_rng(seed)
queries = rng.choice(E * (T + 1), size=min(num_queries, E * (T + 1)), replace=False)
flat = ids.reshape(E * (T + 1), 5, 2)
episode_of = np.arange(E * (T + 1)) // (T + 1)
agree, nearest = {}, {}
for v in explorer.views:
    nn, _ = v.index.nearest(queries, groups=episode_of)
    nearest[v.name] = nn
    same = (flat[queries] == flat[nn]).all(-1)  # [Q, 5]: object j at the same cell
    agree[v.name] = {"immovable": float(same[:, :2].mean()),
                     "movable": float(same[:, 2:].mean()),
                     "identical_state": float(same.all(1).mean())}
    print(f"{v.name:8s} nearest state of another episode:\n"
          f"{'':9s}immovable objects in place {agree[v.name]['immovable']:.1%}, "
          f"movable {agree[v.name]['movable']:.1%}, "
          f"identical state {agree[v.name]['identical_state']:.1%}")
others = flat[rng.choice(E * (T + 1), 50)]
chance = float((flat[queries][:, None] == others[None]).all(-1).mean())
print(f"(two random states share an object's cell {chance:.1%} of the time)")

# %% tags=["hide-input"]
x = np.arange(3)
fig, ax = plt.subplots(figsize=(7, 3))
for i, (name, a) in enumerate(agree.items()):
    ax.bar(x + 0.38 * i - 0.19, list(a.values()), 0.38, label=name,
           hatch=["", "//"][i], edgecolor="k", linewidth=0.5)
ax.axhline(chance, color="k", lw=0.8, ls="--", label="random pair\n(per object)")
ax.set_xticks(x, ["immovable objects\nin place", "movable objects\nin place",
                  "identical\nstate"])
ax.set_ylim(0, 1)
ax.set_ylabel(f"share of {len(queries)} queries")
ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
ax.set_title("the nearest state of another episode, by model")
fig.tight_layout()
plt.show()

# %% [markdown]
# A state where the two models answer differently, chosen as the query where the mixed model's
# nearest state (of another episode) has the most movable objects in place compared with the
# baseline's. The explorer's thumbnails now also come from other episodes only
# (`explorer.neighbours_from = "other episodes"`).

# %%
mov_same = {n: (flat[queries, 2:] == flat[nn, 2:]).all(-1).sum(1)
            for n, nn in nearest.items()}
q = int(queries[np.argmax(mov_same["mixed"] - mov_same["baseline"])])
e_dis, t_dis = divmod(q, T + 1)
explorer.neighbours_from = "other episodes"
fig = explorer.plot(e_dis, t_dis)
plt.show()
explorer.neighbours_from = "all"
in_place = {n: int(m[queries == q][0]) for n, m in mov_same.items()}
print(f"episode {e_dis}, step {t_dis}: movable objects in place in the nearest state\n"
      f"of another episode -- baseline {in_place['baseline']}, "
      f"mixed {in_place['mixed']}")

# %% [markdown]
# ## How fast is an interaction?
#
# A slider move sets new data on the existing artists (`set_data`, `set_offsets`), runs the
# model's transition for every action of the current state, queries the nearest states (one
# matrix product over all states) and re-draws only the changing artists over a cached
# background, then encodes the PNG the widget shows. We time `num_timed` such moves through the
# sliders themselves, side by side (two models).

# %%
sliders = explorer.sliders
times = []
for i in range(num_timed):
    t0 = time.perf_counter()
    if i % 2:
        sliders["step"].value = int(rng.integers(0, T + 1))
    else:
        sliders["episode"].value = int(rng.integers(0, E))
    times.append(time.perf_counter() - t0)
latency_ms = 1e3 * float(np.median(times))
print(f"{num_timed} interactions on {E} episodes x {T + 1} states, two models:\n"
      f"median {latency_ms:.0f} ms, max {1e3 * max(times):.0f} ms (device {dev})")
print("now showing:", explorer.title)

# %% [markdown]
# ## Summary
#
# * {class}`~cswm_lib.widgets.explorer.EmbeddingExplorer` precomputes embeddings, masks, a 2D projection
#   and a nearest-state index once; an interaction then only updates artists and re-draws them,
#   fast enough to slide through a 1000-episode eval set.
# * The panels tie the model's parts together: masks (what each slot looks at), embeddings (where
#   the slot puts the object), the transition (where each action would move it) and the energy
#   (which states the model cannot tell apart).
# * Slot-object $R^2$, the per-object grid and nearest-state agreement turn "which slot tracks
#   which object" and "where the models disagree" into pictures and numbers computed in this run,
#   on the shipped reference models (one seed of each strategy; the verdict over every seed is
#   {ref}`chap-immovable`'s). With `models = "train"` the models are trained here, at the `small`
#   scale only briefly: the structure then has barely begun to form.
#
# ## Exercises
#
# 1. Set `models = "train"` (the `small` settings: a few hundred updates) and compare its $R^2$
#    matrices and grid with the shipped models'. Then raise `epochs`: for which model does the
#    grid appear first?
# 2. Find a state where an action is a no-op but the model's x marks move away from the dots. What
#    does the energy $E(x, o)$ in the corner of the embedding panel say about it?
# 3. Train with `strategy="episodic"` only (see {ref}`chap-negatives`) and add it as `other`.
#    Which objects do its nearest states agree on?
# 4. Open two models with `embedding_dim = 4`: the embedding panel then shows the two principal
#    components. How much of the variance do they keep?

# %% tags=["hide-cell"]
save_results("11_explorer", {
    "models": source,
    "provenance": provenance,
    "final_loss": final_loss,
    "slot_object_r2_best_per_object": {n: b.tolist() for n, b in best.items()},
    "nearest_state_agreement": agree,
    "interaction_latency_ms_median": latency_ms,
    "precompute_s": precompute_s,
    "eval_states": int(E * (T + 1)),
    "seconds": time.perf_counter() - t_start,
}, scale)
