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
# (chap-evaluation)=
# # Evaluation: Hits@k, MRR, duplicates, batches and episodes
#
# A C-SWM is never asked to draw the future; it is asked to *pick it out*. From an observation
# $o_0$ the model encodes a state $z_0$, rolls it forward $L$ times in latent space with the
# actions of the episode, and the prediction $\hat z_L$ is compared with the encodings of real
# observations. If the encoding of the true $o_L$ is the closest, the prediction is a hit
# {cite}`kipf2020contrastive`. Half of the negative-sampling paper {cite}`biza2021impact` is about
# *which* observations it is compared with:
#
# - **global**: the targets of *all* eval episodes (the original `eval.py`, ~10,000 candidates);
# - **de-duplicated**: the same, but an identical state reached in another episode is not a mistake
#   (`eval_ids.py --dedup`);
# - **batched**: only the 100 episodes of the query's batch (`eval_ids_b.py`);
# - **local**: the 11 states $o_0 \dots o_{10}$ of the query's *own* episode (`eval_ids_b_inep.py`).
#
# This chapter defines the metrics on tiny examples, then scores one trained model -- a reference
# model shipped with the book -- in every mode side by side, next to the controls it must beat.
# All of it is one function, {func}`cswm_lib.evaluate.evaluate`.

# %% tags=["parameters"]
scale = "small"  # which parameter set produced this run: small | cpu | full
device = None  # None: CUDA when available, else CPU
seed = 0
# "shipped": score a reference model of chapter 08's recorded cpu run (book/results/cpu/models/) on
# Shapes-immovable eval episodes; "train": train a C-SWM on train_env here (also when none is shipped)
models = "shipped"
# the shipped model scored (mixed | baseline); the other strategy's is compared with it
reference_strategy = "mixed"
reference_seed = 101
# --- the "train" path ---
train_env = "ShapesTrain-v0"
eval_env = "ShapesEval-v0"
train_episodes = 50  # paper: 1000 episodes of 100 steps (seed 1)
epochs = 10  # paper: 100
train_batch_size = 256  # paper: 1024
hidden_dim = 128  # paper: 512
# --- both ---
eval_episodes = 1000  # paper: 10,000 episodes of 10 steps (seed 2)
num_steps_list = [1, 5, 10]
eval_batch_size = 100  # the scripts' batch size
candidate_sizes = [2, 5, 10, 20, 50, 100, 200, 500, 1000]  # batch sizes for the plot
speed_sizes = [250, 500, 1000, 2000]  # N for the timing of ours vs a full sort

# %%
import math
import textwrap
import time

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown

from cswm_lib import reference_models, report
from cswm_lib.book import save_results
from cswm_lib.checkpoint import load_model
from cswm_lib.data.generate import ensure_dataset, readme_dataset
from cswm_lib.data.hdf5 import load_episodes
from cswm_lib.ranking import rank_global, rank_local, scores
from cswm_lib.reference_models import model_line
from cswm_lib.train import TrainConfig, read_log, train
from cswm_lib.utils import data_dir, get_device, set_seed

# %%
dev = get_device(device)
set_seed(seed)
print("device:", dev)

# %% [markdown]
# ## Ranks, Hits@k and MRR
#
# Take $N$ eval episodes. For query $i$ let $t_i = f(o^i_L)$ be the encoded true state after $L$
# steps and $p_i = \hat z^i_L$ the prediction. The original code compares every target with every
# prediction, $d_{ij} = \lVert t_i - p_j \rVert^2$ over all $K \cdot D$ coordinates, and asks where
# the true pair $d_{ii}$ lands in row $i$. With the true pair placed first and a *stable* sort, it
# wins every tie, so its 0-based rank is a count:
#
# $$
# \begin{aligned}
# \operatorname{rank}_i &= \#\{\, j : d_{ij} < d_{ii} \,\}, \\
# \text{Hits@}k &= \frac1N \sum_i \mathbb 1[\operatorname{rank}_i < k], &
# \text{MRR} &= \frac1N \sum_i \frac{1}{\operatorname{rank}_i + 1}.
# \end{aligned}
# $$
#
# Three queries in one dimension, small enough to check by hand:

# %%
targets = np.array([[0.0], [1.0], [2.0]])
predictions = np.array([[1.0], [1.0], [0.0]])
d = (targets[:, None, 0] - predictions[None, :, 0]) ** 2
print("d[i, j] = (t_i - p_j)^2:")
print(d)
ranking = rank_global(predictions, targets)
print("ranks:", ranking.rank.tolist())
print("  ".join(f"{k} {v:.3f}" for k, v in scores(ranking, ks=(1, 2, 3)).items()))

# %% [markdown]
# Row 0: $p_2$ is closer than the true $p_0$, rank 1. Row 1: $p_0$ ties with the true $p_1$ at
# distance 0 and the tie goes to the true match, rank 0. Row 2: two predictions are closer, rank 2.
# So Hits@1 $= 1/3$ and MRR $= (\tfrac12 + 1 + \tfrac13)/3 = 0.611$.
#
# The tie rule matters more than it looks: a model whose encoder has **collapsed** (every
# observation mapped to the same point) has all distances equal, and scores perfectly.

# %%
collapsed = np.zeros((500, 5, 2))
print("collapsed model:", scores(rank_global(collapsed, collapsed)))

# %% [markdown]
# That is the original code's behaviour, and we reproduce it exactly; keep it in mind whenever a
# score looks too good (the contrastive hinge is what keeps C-SWMs from collapsing, see
# {ref}`chap-model`).
#
# ### Counting instead of sorting
#
# The original builds the full $N \times N \times (K\!\cdot\!D)$ difference tensor and sorts every
# row: at $N = 10{,}000$ Shapes queries that is 4 GB of float32 and $10^4$ sorts of $10^4$
# numbers. The formula above needs neither. {func}`~cswm_lib.ranking.rank_global` takes a chunk
# of queries at a time, gets $d_{ij} - d_{ii}$ from one matrix product
# ($\lVert t\rVert^2 + \lVert p\rVert^2 - 2\,t\cdot p$, folded into augmented vectors) and counts
# negative entries. Rounding could flip a near-tie, so entries within a proven error bound of zero
# are recomputed exactly from coordinate differences; identical embeddings therefore tie exactly as
# in the original. Here it is against a straight re-implementation of the original (broadcast, then
# a stable sort per row):

# %%
def original_ranks(pred: np.ndarray, targ: np.ndarray) -> np.ndarray:
    """The original's way: full broadcast, true pair prepended as column 0, stable sort
    per row."""
    n = len(pred)
    dist = ((targ.reshape(n, 1, -1) - pred.reshape(1, n, -1)) ** 2).sum(-1)
    aug = np.concatenate([np.diag(dist)[:, None], dist], axis=1)
    order = np.argsort(aug, axis=1, kind="stable")
    return (order == 0).argmax(1)


# %% [markdown]
# Both on random embeddings of growing $N$, a tenth of the predictions collapsed onto one point so
# that ties occur:

# %%
rng = np.random.default_rng(seed)
timing = {"N": [], "ours_s": [], "sort_s": []}
for n in speed_sizes:
    t_ = rng.normal(size=(n, 5, 2)).astype(np.float32)
    p_ = (t_ + 0.3 * rng.normal(size=t_.shape)).astype(np.float32)
    p_[rng.random(n) < 0.1] = p_[0]  # some collapsed predictions, so ties occur
    t0 = time.perf_counter()
    ours = rank_global(p_, t_).rank.numpy()
    t1 = time.perf_counter()
    theirs = original_ranks(p_.astype(np.float64), t_.astype(np.float64))
    t2 = time.perf_counter()
    assert np.array_equal(ours, theirs)
    for key, v in zip(timing, (n, t1 - t0, t2 - t1), strict=True):
        timing[key].append(v)
    print(f"N={n:5d}  ours {t1 - t0:6.3f} s   broadcast+sort {t2 - t1:6.3f} s   "
          "same ranks: True")

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(5, 3))
ax.loglog(timing["N"], timing["sort_s"], "o-",
          label="broadcast + sort (original's method)")
ax.loglog(timing["N"], timing["ours_s"], "s--", label="chunked counting (ours)")
ax.set_xlabel("number of queries N")
ax.set_ylabel("seconds")
ax.legend(loc="lower left", bbox_to_anchor=(0, 1.02), fontsize=9, frameon=False)
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# `benchmarks/bench_eval.py` measures the same at $N$ = 1k, 10k and 100k together with peak memory
# (not part of this run): the original's method needs about 8 GB at 10k and cannot run at 100k on a
# 24 GB machine (the tensor alone would be 400 GB); ours stays within a few tens of MB.
#
# ## Duplicates: the same state in two episodes
#
# In a 5x5 grid with five objects there are $25!/20! \approx 6.4$ million arrangements, and in Atari
# far fewer distinct screens. Two eval episodes can reach *the same* state. A good model then makes
# two almost identical predictions, and for each of the two targets the *other* query's prediction
# is closer about half of the time: a miss, although the model predicted the right state. Biza et
# al. de-duplicate with ground-truth state ids (object positions; Atari RAM). Their
# script repairs only the **top slot**: if the closest candidate is not the true pair but has the
# same state id, the query counts as a hit (its rank becomes 0). We also provide the **correct**
# variant, where every candidate with the target's state id *is* a true match, for every $k$ and
# for MRR. They differ when the true match sits behind a non-duplicate and a duplicate:

# %%
targets = np.array([[0.0], [10.0], [20.0]])
predictions = np.array([[3.0], [0.5], [1.0]])  # row 0: p1 (0.25) < p2 (1) < p0 (9)
for ids in ([[1], [2], [1]], [[1], [1], [2]]):
    ids = np.array(ids)
    row = {m: rank_global(predictions, targets, ids, dedup=m).effective_rank[0].item()
           for m in (None, "published", "correct")}
    print(f"state ids {ids[:, 0].tolist()}: rank of query 0 ->", row)

# %% [markdown]
# With ids `[1, 2, 1]` the duplicate $p_2$ is second: the published repair does not see it (rank
# stays 2), the correct variant ranks query 0 behind only $p_1$ (rank 1). With ids `[1, 1, 2]` the
# duplicate is on top and both give rank 0.
#
# ## Local: within one episode
#
# The local score asks whether $\hat z_L$ is closer to $f(o_L)$ than to the other states of the
# *same* episode, $f(o_0), \dots, f(o_{10})$ -- here the arg-min must be index $L$, ties going to
# the *lowest* index (no tie advantage). Random-policy episodes often repeat a state (a blocked
# move changes nothing), so the local score also has a de-duplicated version.

# %%
# one episode, 4 states; o_1 and o_2 encode alike
states = np.array([[[0.0], [1.0], [1.0], [3.0]]])
pred = np.array([[1.0]])
ids = np.array([[[0], [5], [5], [6]]])  # ... because they are the same state
for m in (None, "published", "correct"):
    print(f"dedup={m!s:9}  rank of o_2:",
          rank_local(pred, states, 2, ids, dedup=m).effective_rank.item())

# %% [markdown]
# ## A trained model and a real eval set
#
# Now the real thing. The model is a **reference model** shipped with the book: one seed of the
# recorded `cpu`-scale run of {ref}`chap-immovable` ({mod}`cswm_lib.reference_models`), a C-SWM
# ({ref}`chap-model`) trained on Shapes immovable -- two of the five objects never move -- with the
# paper's mixture of episodic and random negatives ({ref}`chap-negatives`). We score it on
# Shapes-immovable eval episodes generated *with state ids* ({ref}`chap-datasets`), so that
# de-duplication works. With `models = "train"` -- the `cpu` and `full` parameter sets choose it
# -- this run instead trains a C-SWM with the baseline negatives on `train_env` and scores it on
# `eval_env` (at the `small` scale only briefly: too little to beat its control).

# %% tags=["hide-input"]
def train_here() -> tuple:
    """The "train" path: a baseline C-SWM on `train_env`, scored on `eval_env`."""
    here = data_dir() / "evaluation"
    train_path = ensure_dataset(
        train_env, here / f"{train_env}_n{train_episodes}_s1.h5", train_episodes,
        seed=1, progress=False)
    eval_path = ensure_dataset(
        eval_env, here / f"{eval_env}_ids_n{eval_episodes}_s2.h5", eval_episodes,
        seed=2, save_state_ids=True, progress=False)
    config = TrainConfig(dataset=str(train_path), epochs=epochs,
                         batch_size=train_batch_size, hidden_dim=hidden_dim, seed=seed,
                         device=device, progress=False,
                         name=f"eval_{train_env}_n{train_episodes}_h{hidden_dim}"
                              f"_b{train_batch_size}_e{epochs}_s{seed}")
    folder = train(config)
    label = f"{model_line(folder)}; trained here ({scale} scale)"
    return load_model(folder, device=dev), label, eval_path, read_log(folder)


# %%
ON_RECORD = ("08_immovable", "Shapes immovable")  # the shipped models' record
OTHER = {"mixed": "baseline", "baseline": "mixed"}[reference_strategy]
pair = [reference_strategy, OTHER]
shipped = reference_models.available(*ON_RECORD, pair, reference_seed)
if models == "shipped" and not shipped:
    print("no shipped reference model in this checkout: training one here")
source, log = ("shipped" if models == "shipped" and shipped else "train"), None
t0 = time.perf_counter()
if source == "shipped":
    ref = reference_models.load(*ON_RECORD, reference_strategy, reference_seed,
                                device=str(dev))
    model, label = ref.model, f"shipped -- {ref.label}"
    eval_path = readme_dataset("shapes_imm_eval", max(1, 10_000 // eval_episodes),
                               progress=False)
else:
    model, label, eval_path, log = train_here()
episodes = load_episodes(eval_path)
print(f"the model ({time.perf_counter() - t0:.1f} s to get it):")
print(textwrap.fill(label, 80, initial_indent="  ", subsequent_indent="  "))
print(episodes)

# %% [markdown]
# ## Every mode, side by side
#
# One {func}`~cswm_lib.evaluate.evaluate` call per setting. `N` is the number of queries (one per
# eval episode), `cands` the candidates each query is ranked among. The last rows,
# **no_transition**, predict $\hat z_L = z_0$ (no transition at all): a baseline any world model
# should beat. We encode every frame of every episode once with
# {func}`~cswm_lib.evaluate.embed_paths` (all 11 states, for the local score, and every roll-out
# length) and hand the embeddings to {func}`~cswm_lib.evaluate.evaluate_settings`, which runs the
# settings on them, so each setting costs only its ranking.

# %%
from cswm_lib.evaluate import SETTINGS, embed_paths, evaluate_settings

# the named settings + the controls
settings = [*SETTINGS, "global_no_transition", "local_no_transition"]
t0 = time.perf_counter()
embedded = embed_paths(model, episodes, num_steps_list, device=dev, all_states=True,
                       progress=False)
print(f"embedded {episodes.num_episodes} episodes, L = {num_steps_list}, "
      f"in {time.perf_counter() - t0:.1f} s")
t0 = time.perf_counter()
table = evaluate_settings(model, episodes, settings, batch_size=eval_batch_size,
                          embeddings=embedded)
print(f"{len(table)} evaluations in {time.perf_counter() - t0:.1f} s; "
      f"the table shows L = {num_steps_list[0]}, the figure below every L")
Markdown(report.evaluation_table({k: v for k, v in table.items()
                                  if k[1] == num_steps_list[0]}))

# %% tags=["hide-input"]
report.plot_settings(table).axes[0].set_title("one model, every way of scoring it",
                                              fontsize=9)
plt.show()

# %% [markdown]
# Read the table row against row. A global score can look excellent while the **no-transition**
# predictor -- no dynamics at all -- is not far behind: different episodes are far apart in latent
# space, so a prediction that stays near its own start is still closest to its own target. The
# local score removes that crutch: all 11 candidates come from the query's own episode, and a
# prediction that has not moved lands on $o_0$. How much does the learned transition add over the
# no-transition predictor, in Hits@1 percentage points (de-duplicated, correct variant)?

# %%
pairs = {"global": "global_dedup_correct", "local": "local_dedup_correct"}
control = evaluate_settings(model, episodes,
                            [f"{m}_no_transition" for m in pairs.values()],
                            embeddings=embedded)
gain = {f"{where} L={L}": 100 * (table[m, L]["Hits@1"]
                                 - control[f"{m}_no_transition", L]["Hits@1"])
        for L in num_steps_list for where, m in pairs.items()}
print("\n".join(f"{k}: {v:+.1f}" for k, v in gain.items()))

# %% [markdown]
# A positive gain is learned dynamics: the transition moved the prediction to the right state. The
# same comparison for the shipped model of the other strategy, on the same eval set, puts the gain
# next to the control and the alternative (the local score, de-duplicated, every $L$):

# %%
compare = {"scored above": (model, embedded)}
if source == "shipped":
    compare = {f"{reference_strategy} (scored above)": (model, embedded)}
    other = reference_models.load(*ON_RECORD, OTHER, reference_seed, device=str(dev))
    compare[OTHER] = (other.model, embed_paths(other.model, episodes, num_steps_list,
                                               device=dev, all_states=True,
                                               progress=False))
versus = {"model": "local_dedup_correct",
          "no-transition control": "local_dedup_correct_no_transition"}
local_hits = {}
for name, (m, emb) in compare.items():
    r = evaluate_settings(m, episodes, list(versus.values()), embeddings=emb)
    local_hits[name] = {what: [r[setting, L]["Hits@1"] for L in num_steps_list]
                        for what, setting in versus.items()}
    above = [f"L={L}: {100 * (a - c):+.1f}" for L, a, c in
             zip(num_steps_list, *local_hits[name].values(), strict=True)]
    print(f"{name}: local Hits@1 above its control (pp)\n  " + ", ".join(above))

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, len(local_hits), figsize=(4 * len(local_hits), 3),
                         sharey=True, squeeze=False)
for ax, (name, h) in zip(axes[0], local_hits.items(), strict=True):
    x = np.arange(len(num_steps_list))
    for i, (what, vals) in enumerate(h.items()):
        ax.bar(x + 0.4 * i - 0.2, [100 * v for v in vals], 0.4, label=what,
               hatch=["", "//"][i], edgecolor="k", linewidth=0.5)
    ax.set_xticks(x, [f"L = {L}" for L in num_steps_list])
    ax.set_title(name, fontsize=9)
axes[0, 0].set_ylabel("local Hits@1, de-dup. (%)")
axes[0, 0].legend(fontsize=9, frameon=False, loc="lower left", bbox_to_anchor=(0, 1.1),
                  ncol=2)
plt.show()

# %% [markdown]
# Batched scores sit above global ones because each query faces 99 competitors instead of
# $N - 1$; the published running-mean averaging moves them a little more.
#
# ## Score vs number of candidates
#
# The number of candidates is a free parameter of the metric, not of the model. We embed once per
# roll-out length and rank the same predictions within batches of growing size (chance level for
# Hits@1 is $1/B$).

# %%
from cswm_lib.ranking import scores_by_batch_size

sweep = {L: scores_by_batch_size(emb["predictions"], emb["targets"], candidate_sizes)
         for L, emb in embedded.items()}

# %% tags=["hide-input"]
report.plot_candidates(sweep)
plt.show()

# %% [markdown]
# The same predictions score very differently depending on how many candidates they face, and the
# gap grows with the roll-out length. Numbers computed with different batch sizes (or different
# eval-set sizes, for the global score) are not comparable.
#
# ## How many duplicates, and what de-duplication does
#
# *Across* episodes, duplicates are rare in Shapes: for $N$ roughly uniform random arrangements the
# expected number of identical pairs is about $N^2 / (2 \cdot 6.4\text{M})$. *Within* an episode
# they are common: every blocked move repeats the previous state.

# %%
n_arrangements = math.perm(25, 5)
dups = {}
for steps in num_steps_list:
    g, loc = table["global_dedup_correct", steps], table["local_dedup_correct", steps]
    across, within = g["num_duplicate_targets"], loc["num_duplicate_targets"]
    dups[steps] = {"across_episodes": across, "within_episode": within}
    print(f"L={steps:2d}: queries whose target state is another query's target: "
          f"{across:5d} of {g['N']}\n"
          f"      whose o_L recurs in its own episode: {within:5d}")
n = episodes.num_episodes
print(f"expected identical pairs among {n} uniform arrangements: "
      f"{n * (n - 1) / 2 / n_arrangements:.2f}")

# %% [markdown]
# How many distinct states each eval episode visits:

# %% tags=["hide-input"]
ids = episodes.state_ids  # [E, T+1, S]
distinct = [len(np.unique(ep, axis=0)) for ep in ids]
fig, ax = plt.subplots(figsize=(5, 3))
ax.hist(distinct, bins=np.arange(0.5, ids.shape[1] + 1.5), rwidth=0.85)
ax.set_xlabel(f"distinct states among the {ids.shape[1]} states of an episode")
ax.set_ylabel("episodes")
plt.show()

# %% [markdown]
# What de-duplication changes, per roll-out length (Hits@1, %):

# %%
Markdown(report.hits_by_steps(table, ["global", "global_dedup", "global_dedup_correct",
                                      "local", "local_dedup", "local_dedup_correct"]))

# %% [markdown]
# Globally, a small Shapes eval set has (almost) no duplicates, so both de-duplications change
# nothing; at 10,000 episodes a handful of pairs appear, and with Atari's few distinct screens many
# more. Locally, de-duplication matters a lot: when $o_L$ equals an earlier state of the episode,
# the plain local score cannot count the prediction as correct (the tie goes to the earlier index),
# whatever the model does.
#
# ## Command line
#
# The same API from a shell, with the original scripts' flags:
#
# ```bash
# python -m cswm_lib.evaluate --save-folder checkpoints/NAME --dataset data/shapes_eval.h5 \
#     --num-steps 1 5 10 [--dedup [published|correct]] [--mode global|batched|local] \
#     [--batch-size 100] [--averaging mean|published] [--json out.json]
# ```
#
# The script-compatible settings: `--mode global` is `eval.py`; `--dedup` is `eval_ids.py --dedup`;
# `--mode batched --dedup --averaging published` is `eval_ids_b.py --dedup`; `--mode local --dedup
# --averaging published` is `eval_ids_b_inep.py --dedup`. Every published script drops the
# incomplete last batch of 100 episodes; `averaging="published"` and batched mode do too, while the
# default global and local modes use every episode.
#
# ## Summary
#
# - A query's rank is the number of candidates strictly closer than its true match; ties go to the
#   true match (so a collapsed encoder scores perfectly). Counting, chunk by chunk, gives the
#   original's numbers without an $N \times N \times KD$ tensor or a sort.
# - The published de-duplication repairs only the top slot; the correct variant treats every
#   candidate with the target's state id as a true match.
# - The number of candidates changes the score: batched (100) scores are higher than global ones
#   and not comparable with them.
# - Global scores mostly test whether episodes are told apart; local scores test the dynamics within
#   an episode, where repeated states make de-duplication essential.
#
# ## Exercises
#
# 1. Set `models = "train"`: a C-SWM trained here, briefly, on `train_env`. Does it beat its
#    no-transition control? Train longer (`epochs = 50`): which scores move most, global or local?
# 2. With `models = "train"`, set `eval_env = "ShapesImmovableEval-v0"` (objects 0 and 1 never
#    move). How do the within-episode duplicate counts and the local scores change?
# 3. Make the model collapse on purpose (e.g. pass `hinge=0.0` to `TrainConfig`) and compare the
#    global and local scores. Which metric notices?
# 4. Rank the no-transition predictor within batches of 2, 10 and 100. At which batch size is it
#    indistinguishable from the trained model?

# %% tags=["hide-cell"]
results = {
    "scores": {f"{label} | L={steps}": {k: r[k] for k in ("Hits@1", "Hits@5",
                                                           "Hits@10", "MRR", "N",
                                                           "num_candidates") if k in r}
               for (label, steps), r in table.items()},
    "hits1_vs_candidates": {str(L): [[b, r["Hits@1"]] for b, r in by_size.items()]
                            for L, by_size in sweep.items()},
    "duplicates": {str(k): v for k, v in dups.items()},
    "hits1_gain_over_no_transition_pp": gain,
    "local_dedup_correct_hits1": local_hits,
    "timing": timing,
    "eval_episodes": episodes.num_episodes,
    "model": {"source": source, "label": label},
    "train": None if log is None else {"episodes": train_episodes, "epochs": epochs,
                                       "final_loss": log[-1]["loss"]},
}
save_results("06_evaluation", results, scale)
