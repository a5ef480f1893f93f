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
# (chap-negatives)=
# # Negative sampling
#
# The contrastive loss of {ref}`chap-model` pushes the current state $z_t$ at least a hinge away
# from a *negative* state $\tilde z$. The model learns whatever it takes to tell $z_t$ apart from
# the negatives it is shown -- and nothing more. Biza, van der Pol and Kipf
# {cite}`biza2021impact` show that small changes in *where the negatives come from* change what
# C-SWM learns, drastically in some datasets. This chapter draws every strategy on real data and
# measures, without training anything, which shortcuts each one leaves open:
#
# * in worlds with **immovable objects**, negatives from other episodes can be told apart by the
#   immovable objects alone, so the loss does not require the moving objects -- *episodic*
#   negatives close that door;
# * in the **Atari** datasets the time step is visible in the frame, so random negatives can be
#   told apart by "what time is it" -- *time-aligned* negatives close that door.

# %% tags=["parameters"]
scale = "small"  # small | cpu | full
immovable_episodes = 20  # ShapesImmovableTrain, 100 steps each (README: 1000, seed 1)
atari_dataset = "pong_train"  # a README Atari dataset (see chap-datasets)
divisor = 50  # Atari episodes: the README's size divided by this
min_episodes = 20
batch_size = 1024  # baseline negatives come from a batch of this size
num_draws = 20000  # negatives drawn for the statistics
num_show = 4  # negatives drawn per strategy in the pictures
beta = 0.5  # probability of an episodic negative in "mixed" (the paper's value)
train_epochs = 1  # short runs, one per strategy, for the probe at the end (0: skip)
train_batch_size = 128
probe_episodes = 20  # probe: all state pairs of this many episodes ((episodes x T)^2)
device = None
seed = 0

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown

from cswm_lib import report
from cswm_lib.book import save_results
from cswm_lib.checkpoint import load_model
from cswm_lib.data.generate import ensure_dataset, readme_dataset
from cswm_lib.data.hdf5 import load_episodes
from cswm_lib.negatives import (
    STRATEGIES,
    coincidence,
    sample_negatives,
    strategy_from_flags,
)
from cswm_lib.train import TrainConfig, read_log, train
from cswm_lib.utils import data_dir

# %%
t_start = time.perf_counter()
# the ShapesImmovableTrain data of the README (seed 1), here with the ground-truth object positions
imm_file = data_dir() / f"shapes_imm_train_ids_{immovable_episodes}.h5"
imm_path = ensure_dataset("ShapesImmovableTrain-v0", imm_file, immovable_episodes,
                          seed=1, save_state_ids=True, progress=False)
imm = load_episodes(imm_path)
imm.summary()

# %% [markdown]
# ## One interface, five strategies
#
# A positive is a transition $(e, t)$: step $t$ of episode $e$. A negative is named by an index pair
# $(e', t')$ into the same dataset, drawn for a whole batch at once by
# {func}`cswm_lib.negatives.sample_negatives` (vectorised, seeded by a `torch.Generator`):
#
# | strategy | negative $(e', t')$ for the positive $(e, t)$ |
# |---|---|
# | `baseline` | $(e, t)$ of another batch member: a random permutation of the batch (may hit itself) |
# | `time_aligned` | $e'$ uniform over all episodes (may be $e$), $t' = t$ |
# | `episodic` | $e' = e$, $t'$ uniform over the other steps |
# | `out_of_episode` | $e'$ uniform (may be $e$), $t'$ uniform |
# | `mixed` | episodic with probability $\beta$, else out-of-episode (time-aligned unless disabled) |
#
# The paper uses `mixed` with $\beta = 0.5$ and no time alignment for the immovable worlds and the
# A3C Atari data, and `time_aligned` for the random-action Atari data. The training command line
# accepts both the original flags and the names; here is how the original commands map:

# %%
commands = {
    "(no flag)": (False, 0.5, False),
    "--custom-neg": (True, 0.5, False),
    "--custom-neg --in-ep-prob 0.0": (True, 0.0, False),
    "--custom-neg --disable-time-aligned": (True, 0.5, True),
    "--custom-neg --in-ep-prob 1.0": (True, 1.0, False),
}
for flags, args in commands.items():
    name, b, aligned = strategy_from_flags(*args)
    detail = (
        "" if name == "baseline"
        else f"  beta={b}" + ("" if name != "mixed" else f", time_aligned={aligned}")
    )
    print(f"{flags:38s} -> {name}{detail}")

# %% [markdown]
# Dataset strategies return observations that the model encodes in an extra forward pass; the
# baseline reuses the batch's own $z_t$, so it costs nothing extra. Both are the same call:

# %%
g = torch.Generator().manual_seed(seed)
E, T = imm.num_episodes, imm.episode_length
ep = torch.randint(E, (batch_size,), generator=g)
st = torch.randint(T, (batch_size,), generator=g)
kwargs = {"mixed": dict(beta=beta, time_aligned=False)}
drawn = {
    s: sample_negatives(s, ep, st, E, T, g, num_negatives=num_show, **kwargs.get(s, {}))
    for s in STRATEGIES
}
for s, neg in drawn.items():
    print(
        f"{s:15s} episode {tuple(neg.episode.shape)}  step {tuple(neg.step.shape)}  "
        f"batch_index "
        f"{None if neg.batch_index is None else tuple(neg.batch_index.shape)}"
    )

# %% [markdown]
# ## The strategies as pictures
#
# Objects 0 and 1 (the red circle and the blue triangle) never move in ShapesImmovable
# ({ref}`chap-environments`). Below, each row starts with the same positive pair $(o_t, o_{t+1})$
# and shows the negatives one strategy picked for it. The caption says where each negative comes
# from and whether its **immovable** objects sit where the positive's do.

# %%
# [E, T+1, 10]: ground-truth (row, col) of objects 0..4
ids = torch.from_numpy(imm.state_ids)
IMMOVABLE = slice(0, 4)  # the ids of objects 0 and 1, which never move

# %% tags=["hide-input"]
e0, t0 = int(ep[0]), int(st[0])  # the positive we look at: batch member 0


def immovable_same(e: int, t: int) -> str:
    return "immovable\n" + (
        "same" if (ids[e, t, IMMOVABLE] == ids[e0, t0, IMMOVABLE]).all() else "differ")


report.plot_negatives(imm.frames, (e0, t0), drawn, num_show, caption=immovable_same)
plt.show()

# %% [markdown]
# ## Immovable objects: a shortcut the baseline leaves open
#
# The two immovable objects are placed at random when an episode starts and then never move: their
# positions are a fingerprint of the episode. Consider two extreme encoders, ideal in everything
# else (each maps a state to a point far away from every state it tells apart, and predicts
# transitions exactly):
#
# * **immovable-only** encodes just objects 0 and 1. Its transition model is trivial ($\Delta = 0$:
#   nothing it encodes ever moves), so the positive term is exactly 0;
# * **movable-only** encodes objects 2, 3, 4 and predicts their moves.
#
# Either one's loss is then the hinge times the fraction of negatives it cannot tell apart, i.e.
# whose encoded objects coincide with the positive's. We measure these fractions for
# `num_draws` negatives of each strategy:


# %%
groups = {"immovable-only": IMMOVABLE, "movable-only": slice(4, 10),
          "all objects": slice(0, 10)}
shortcut = {s: {k: coincidence(s, ids, sl, num_draws, batch_size, g,
                               **kwargs.get(s, {}))
                for k, sl in groups.items()} for s in STRATEGIES}
Markdown(report.format_table([{"strategy": s}
                              | {k: f"{v:.3f}" for k, v in row.items()}
                              for s, row in shortcut.items()])
         + "\n\nLoss / hinge of an ideal encoder that sees only these objects "
           f"({E} episodes of {T} steps).")

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(5.6, 3))
x = np.arange(len(STRATEGIES))
for i, k in enumerate(groups):
    ax.bar(x + (i - 1) * 0.27, [shortcut[s][k] for s in STRATEGIES], width=0.27,
           label=k)
ax.set_xticks(x, STRATEGIES)
ax.set_ylabel("loss of the ideal encoder / hinge")
ax.set_title("which encoders can reach a low loss under each strategy\n"
             "(ShapesImmovable)", fontsize=9)
ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
plt.tight_layout()
plt.show()

# %% [markdown]
# What the numbers say:
#
# * With `baseline` (and `out_of_episode`) negatives nearly every negative comes from another
#   episode, so **both** partial encoders reach almost the ideal loss: the loss requires neither
#   group of objects in particular. In particular a model may represent the immovable objects
#   badly or not at all, and it may also lean on them -- an episode fingerprint with a perfect,
#   trivial transition model -- and represent the moving objects only roughly. The fraction left
#   for the immovable-only shortcut is about $1/E$ (the chance of drawing the same episode), which
#   *shrinks* as the dataset grows: with the paper's 1,000 episodes it is about 0.1 %.
# * With `episodic` negatives the immovable objects never differ, so the immovable-only shortcut
#   costs the **full hinge**: the model must track the objects that move. The `mixed` strategy
#   ($\beta$ = 0.5) charges half the hinge for it, and keeps the out-of-episode negatives that
#   contrast different scenes. The "all objects" column is what no encoder can avoid: negatives
#   that show the very same state (for episodic negatives: the episode returned to, or never left,
#   a state, e.g. through actions that move nothing; for time-aligned ones: the draw of the
#   positive's own episode).
#
# ## Atari: the frame tells the time
#
# In the random-action Atari datasets every episode starts after the same number of warm-up steps
# ({ref}`chap-datasets`), so step $t$ of one episode and step $t$ of another happen at the same
# game time, and tend to look alike (compare the frames further below). A frame can therefore
# reveal its step index. We check it directly: for every frame, is its nearest frame (in pixels)
# from *another* episode taken at the same step?

# %%
atari = load_episodes(readme_dataset(atari_dataset, divisor, min_episodes,
                                     progress=False))
print(atari_dataset, atari)
Ea, Ta = atari.num_episodes, atari.episode_length
# current RGB frame
cur = torch.from_numpy(atari.frames[:, :Ta, 3:]).float().flatten(2).reshape(Ea * Ta, -1)
dist = torch.cdist(cur, cur)
a_ep = torch.arange(Ea).repeat_interleave(Ta)
a_st = torch.arange(Ta).repeat(Ea)
dist[a_ep[:, None] == a_ep[None]] = float("inf")
nearest = dist.argmin(1)
same_step_nn = (a_st[nearest] == a_st).float().mean().item()
print(f"nearest other-episode frame has the same step: {same_step_nn:.0%} of frames "
      f"(chance: {1 / Ta:.0%})")

# %% [markdown]
# So a model can separate most random negatives by encoding *when* a frame was taken rather than
# *what* is in it. The same ideal-encoder argument as above, with a "time-only" encoder (it
# encodes $t$ alone): its loss is the fraction of negatives with the same step.

# %%
# "state id" = the step index
step_ids = torch.arange(Ta + 1)[None, :, None].expand(Ea, Ta + 1, 1)
time_only = {s: coincidence(s, step_ids, slice(0, 1), num_draws, batch_size, g,
                            **kwargs.get(s, {}))
             for s in STRATEGIES}
for s, v in time_only.items():
    print(f"{s:15s} time-only encoder loss / hinge = {v:.3f}")

# %% [markdown]
# Time-aligned negatives share the step by construction, so the time-only shortcut earns nothing
# (the full hinge); with baseline negatives it pays only about $1/T$ = 10 %. The pictures: the
# current frame of a positive, then baseline and time-aligned negatives with their steps.

# %% tags=["hide-input"]
ga = torch.Generator().manual_seed(seed)
ea = torch.randint(Ea, (min(batch_size, Ea * Ta),), generator=ga)
sa = torch.randint(Ta, (len(ea),), generator=ga)
drawn_atari = {s: sample_negatives(s, ea, sa, Ea, Ta, ga, num_negatives=num_show)
               for s in ["baseline", "time_aligned"]}
report.plot_negatives(atari.frames, (int(ea[0]), int(sa[0])), drawn_atari, num_show,
                      channels=slice(3, 6), with_next=False)
plt.show()

# %% [markdown]
# ## A short training probe
#
# Finally we train one model per strategy, `baseline` and the paper's `mixed` ($\beta$ = 0.5, not
# time-aligned), on the immovable data (`train_epochs` epochs; the `cpu` and `full` scales train
# longer) and ask each trained model a question the shortcut analysis suggests: **how well does
# it separate states of the same episode?** Those differ only in the moving objects. We report,
# over pairs of distinct states, the share whose energy is beyond the hinge, within episodes and
# across episodes. At the `small` scale the runs are far
# too short to show the paper's effect reliably; the numbers are what this run produced.

# %%
from cswm_lib.analysis import beyond_hinge

probe = {}
for s in ["baseline", "mixed"] if train_epochs > 0 else []:
    cfg = TrainConfig(dataset=str(imm_path),
                      name=f"ch05_{imm_path.stem}_{s}_e{train_epochs}_s{seed}",
                      strategy=s, beta=beta, time_aligned=False, epochs=train_epochs,
                      batch_size=train_batch_size, seed=seed, device=device,
                      progress=False)
    model = load_model(train(cfg, imm), device)
    probe[s] = (beyond_hinge(model, imm, probe_episodes)
                | {"final_loss": read_log(cfg.folder())[-1]["loss"]})
    print(f"{s}: pairs beyond the hinge within an episode "
          f"{probe[s]['within_episode']:.1%}, across\n"
          f"    episodes {probe[s]['across_episodes']:.1%} "
          f"(final loss {probe[s]['final_loss']:.3f})")

# %% [markdown]
# ## Summary
#
# * All strategies are one call, `sample_negatives(strategy, episode, step, E, T, generator, ...)`,
#   returning dataset indices $[B, N]$ (plus batch positions for the baseline); more than one
#   negative per positive is `num_negatives`.
# * A contrastive model only learns what its negatives require. Measured on real data:
#   baseline negatives leave an immovable-object "episode fingerprint" shortcut nearly free, and an
#   Atari frame's step index separates most random negatives.
# * Episodic negatives charge the full hinge for the first shortcut, time-aligned negatives for the
#   second; the paper's mixture keeps out-of-episode negatives as well.
#
# ## Exercises
#
# 1. Raise `immovable_episodes` to 200. How does the immovable-only column change for the baseline,
#    and why does that make the shortcut *more* attractive on bigger datasets?
# 2. Set `train_epochs = 20` and compare the probe for `baseline` and `mixed`.
# 3. Which strategy would you use for a dataset whose episodes all start in the same state?
# 4. With `num_negatives = 4`, how does the negative term of {ref}`chap-model` change (hint: it
#    averages over $B \cdot N$ hinge terms)?

# %% tags=["hide-cell"]
save_results(
    "05_negatives",
    {
        "immovable_dataset": imm_path.name,
        "atari_dataset": atari_dataset,
        "num_draws": num_draws,
        "shortcut_losses": shortcut,
        "atari_same_step_nearest_neighbour": same_step_nn,
        "atari_time_only_losses": time_only,
        "probe": probe,
        "seconds": time.perf_counter() - t_start,
    },
    scale,
)
