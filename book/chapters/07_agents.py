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
# (chap-agents)=
# # Agents and their data
#
# The Atari datasets of the earlier chapters (see {ref}`chap-environments` and {ref}`sec-env-atari`)
# were made by a *random* policy: a fixed warm-up of random actions, then ten random transitions.
# A random Pong player never gets past the first rally, so every episode starts in almost the same
# place. Section 4.3 of {cite}`biza2021impact` therefore
# collects "a full version of the datasets" from a trained agent: an A3C policy
# {cite}`mnih2016asynchronous` plays the game for a random number of steps (the *burn-in*), then ten
# random-action transitions are recorded, as before. This chapter builds that pipeline:
#
# 1. **A3C** -- actor-critic with generalised advantage estimation {cite}`schulman2016gae`, trained
#    by several processes that share one model and one optimizer state;
# 2. a **verification** that our A3C learns, on CartPole, in well under a minute;
# 3. **Pong training** at a toy budget (it will not learn here -- the paper's budget is 80M frames);
# 4. **collection** of train / valid / test splits whose start states never coincide.
#
# The models trained on these splits are compared in a later chapter.

# %% [markdown]
# ## Parameters
#
# Small defaults: CartPole until it is solved, a few thousand frames of Pong, and splits of a handful
# of episodes. The `full` parameter file sets the paper's budget (80M frames, 20 processes, per game)
# and {ref}`the README <sources>`'s collection commands (10,000 / 1,000 / 1,000 episodes, seeds 1 / 2 / 3).

# %% tags=["parameters"]
scale = "small"  # small | cpu | full
cartpole_workers = 2
cartpole_max_frames = 400_000  # stop early once the target is reached
cartpole_target = 195.0  # mean return over the last 100 episodes
cartpole_lr = 2e-3
# A3C on Atari (baby-a3c / the paper: 20 processes, 80M frames per game, a checkpoint every 2M)
a3c = {"games": ["PongDeterministic-v4"], "workers": 2, "max_frames": 2_000, "lr": 1e-4,
       "checkpoint_every": 1_000}  # full: Pong and Space Invaders
# burn-in lengths per game: [min, max)
burnin = {"PongDeterministic-v4": [58, 100], "SpaceInvadersDeterministic-v4": [50, 300]}
split_episodes = {"train": 6, "valid": 3, "test": 3}  # README: 10000 / 1000 / 1000
split_seeds = {"train": 1, "valid": 2, "test": 3}
eps = 0.5
num_steps = 10
burnin_attempts = 8  # burn-ins played per GRU setting to compare them

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display

from cswm_lib import report
from cswm_lib.a3c import (
    AtariPolicy,
    MLPPolicy,
    evaluate_policy,
    load_checkpoint,
    load_policy,
    read_returns,
)
from cswm_lib.a3c.collect import burnin_summary, shared_states
from cswm_lib.a3c.train import A3CConfig, a3c_loss, train
from cswm_lib.book import save_results
from cswm_lib.data.hdf5 import load_episodes

# %% [markdown]
# ## Actor-critic with generalised advantages
#
# A3C learns a policy $\pi_\theta(a \mid s)$ (the *actor*) and a value estimate $V_\theta(s)$ (the
# *critic*) from short rollouts of $T = 20$ steps. With $\delta_t = r_t + \gamma V(s_{t+1}) - V(s_t)$,
# the generalised advantage is
#
# $$A_t = \sum_{l \ge 0} (\gamma \tau)^l \, \delta_{t+l},$$
#
# and the loss of one rollout, summed over its steps, is
#
# $$\mathcal{L} = -\sum_t \log \pi(a_t \mid s_t)\, A_t
#   + c_v \sum_t \tfrac12 \big(R_t - V(s_t)\big)^2 - c_H \sum_t H\big(\pi(\cdot \mid s_t)\big),$$
#
# where $R_t$ is the discounted return bootstrapped with $V(s_T)$ (zero when the game ended). The
# paper's settings (those of baby-a3c) are $\gamma = 0.99$, $\tau = 1$, $c_v = 0.5$, $c_H = 0.01$,
# gradient norm clipped at 40 and Atari rewards clipped to $[-1, 1]$. A two-step example whose
# numbers can be checked by hand: values $(1, 2)$, rewards $(1, 0)$, bootstrap $4$, $\gamma = 0.5$.

# %%
loss, parts = a3c_loss(torch.tensor([1.0, 2.0]), torch.zeros(2, 2),
                       torch.tensor([0, 1]), torch.tensor([1.0, 0.0]), bootstrap=4.0,
                       gamma=0.5)
print({k: round(v, 4) for k, v in parts.items()}, "loss", round(loss.item(), 4))

# %% [markdown]
# The advantages are $(1, 0)$ and the returns $(2, 2)$, so the value term is
# $\tfrac12 (2-1)^2 = 0.5$ and, with uniform logits, the policy term is $\ln 2 \approx 0.693$.
#
# ## The networks
#
# For Atari the agent is baby-a3c's network: the screen rows 35..195, averaged to grey and halved to
# 80x80, go through four 3x3 stride-2 convolutions (32 channels, ELU) down to 5x5, then a GRU cell
# with 256 units that remembers the past, and two linear heads. CartPole gets a small MLP.

# %%
atari_net, mlp_net = AtariPolicy(num_actions=6), MLPPolicy(obs_dim=4, num_actions=2)
value, logits, hx = atari_net(torch.zeros(1, 1, 80, 80), atari_net.initial_state())
print("Atari policy:", sum(p.numel() for p in atari_net.parameters()), "parameters;",
      "value", list(value.shape), "logits", list(logits.shape),
      "GRU state", list(hx.shape))
print("CartPole MLP:", sum(p.numel() for p in mlp_net.parameters()), "parameters")

# %% [markdown]
# ## Many workers, one model
#
# `cswm_lib.a3c.train` starts `num_workers` processes (`torch.multiprocessing`). The model's weights
# live in shared memory; so do the Adam moments, in `cswm_lib.a3c.SharedAdam`. Each worker
# copies the shared weights, plays a rollout, computes its gradients and applies them to the shared
# weights with the shared Adam state, without locks ("Hogwild"). baby-a3c meant to do the same, but
# its custom `step` method was indented inside `__init__`, so it never replaced `Adam.step`: the
# moments were shared, but every process counted its own steps for Adam's bias correction and the
# shared step counter never moved (a small effect, felt only early in training). Ours shares the
# step count too (a unit test steps the optimizer in a child process and reads the state in the
# parent).
#
# The main process writes a checkpoint (weights, optimizer state, frames seen, running averages)
# atomically every `checkpoint_every` frames, and `train` resumes from it when called again. Because
# workers race for the shared weights, two runs with the same seed differ: A3C is not
# bit-reproducible, and we do not pretend it is.
#
# ## Does it learn? CartPole
#
# A day-long Pong run is a poor unit test. CartPole-v1 is the classic sanity check: the problem
# counts as solved when the mean return over 100 consecutive episodes reaches 195.

# %%
cp_cfg = A3CConfig(env_id="CartPole-v1", num_workers=cartpole_workers,
                   max_frames=cartpole_max_frames, lr=cartpole_lr,
                   target_return=cartpole_target, checkpoint_every=100_000,
                   progress=False)
t0 = time.time()
cp_folder = train(cp_cfg)
cp = load_checkpoint(cp_folder)
cp_mean = float(np.mean(cp["stats"]["recent"]))
print(f"{cp['frames']} frames, {cp['stats']['episodes']} episodes,\n"
      f"mean return of the last {len(cp['stats']['recent'])}: {cp_mean:.1f}; "
      f"training took {cp['elapsed']:.1f} s ({time.time() - t0:.1f} s in this cell)")

# %%
ax = report.plot_agent_curve(read_returns(cp_folder), target=cartpole_target)
ax.set_title(f"A3C on CartPole-v1, {cartpole_workers} workers")
plt.show()

# %% [markdown]
# The returns above come from the *sampling* policy during training. The saved weights, played again
# for 100 fresh episodes:

# %%
cp_eval = evaluate_policy(load_policy(cp_folder), "CartPole-v1", episodes=100,
                          seed=1000)
print(f"100 evaluation episodes: mean return {cp_eval.mean():.1f} "
      f"(min {cp_eval.min():.0f}, max {cp_eval.max():.0f})")
results = dict(cartpole_frames=int(cp["frames"]),  # what this chapter records
               cartpole_mean_return_last100=cp_mean,
               cartpole_train_seconds=float(cp["elapsed"]),
               cartpole_eval_mean_return=float(cp_eval.mean()))

# %% [markdown]
# Training stops the moment the moving average crosses the target, so the frozen weights need not
# keep that level: the evaluation mean can land on either side of 195, and training a little longer
# (raise `cartpole_target`) makes it stable.
#
# ## Pong and Space Invaders
#
# The same code trains the Atari agents. At the small scale we spend a few thousand frames: enough to
# watch the machinery (episodes, checkpoints, resume), far too few to learn -- the returns stay near
# -21, a lost game. The paper trained each game for about a day on a big CPU (80M frames, 20
# processes); the `full` parameters reproduce that budget.

# %%
agents = {}
for game in a3c["games"]:
    cfg = A3CConfig(env_id=game, num_workers=a3c["workers"], lr=a3c["lr"],
                    max_frames=a3c["max_frames"],
                    checkpoint_every=a3c["checkpoint_every"],
                    progress=False)
    t0 = time.time()
    agents[game] = train(cfg)
    ck = load_checkpoint(agents[game])
    curve = read_returns(agents[game])
    last = np.mean([r["return"] for r in curve[-100:]]) if curve else float("nan")
    print(f"{game}: {ck['frames']} frames, {ck['stats']['episodes']} episodes,\n"
          f"  mean return {last:.1f}, {time.time() - t0:.1f} s")
    results[f"{game}_frames"] = int(ck["frames"])
    results[f"{game}_episodes"] = int(ck["stats"]["episodes"])
    results[f"{game}_mean_return"] = float(last)

# %%
fig, axes = plt.subplots(1, len(a3c["games"]), squeeze=False,
                         figsize=(min(7.2, 6 * len(a3c["games"])), 3.8))
for ax, game in zip(axes[0], a3c["games"], strict=True):
    report.plot_agent_curve(read_returns(agents[game]), ax=ax)
    ax.set_title(game)
plt.show()

# %% [markdown]
# ## Collecting episodes with the agent
#
# Each episode of the dataset is made like this (`cswm_lib.a3c.collect`):
#
# 1. reset the game and draw a burn-in length uniformly from `[min_burnin, max_burnin)`
#    (Pong 58..100, Space Invaders 50..300);
# 2. during the burn-in the agent plays **epsilon-greedily**: with probability $\epsilon = 0.5$ a
#    random action, else the most likely action of its policy;
# 3. then `num_steps = 10` transitions with **uniformly random** actions are recorded: frames
#    (previous and current screen, 6x50x50, preprocessed exactly as in {ref}`sec-env-atari`) and the
#    128-byte console RAM as the state id.
#
# An episode is dropped when the game ends early, when Pong scores a point during the burn-in, or when
# Space Invaders loses a life; and when its first recorded state (by RAM) is a start state of an
# earlier split -- the valid split is checked against train, test against train and valid.
#
# One quirk of the original: its collector reset the agent's GRU state to zeros before *every*
# action, so the agent played without memory (it was trained with memory). That changes which start
# states the Section 4.3 datasets contain, so reproduction runs keep it: `burnin_gru="reset"` is the
# default, and `burnin_gru="carry"` (`--burnin-gru carry`) is the fix that carries the state through
# the burn-in. Here is one burn-in, seen through the agent's eyes:

# %%
game = a3c["games"][0]
from cswm_lib.a3c import make_env
from cswm_lib.a3c.collect import attempt_rng, collect_episode

env = make_env(game)
screens = []
rng = attempt_rng(0, 0)
ep, reason = collect_episode(env, load_policy(agents[game]), game, rng, burnin[game][0],
                             num_steps, eps, reset_seed=0, burnin_frames=screens)
print("burn-in screens:", len(screens), "x", screens[0].shape, "-> episode", reason)
picks = np.linspace(0, len(screens) - 1, 5).astype(int)
fig, axes = plt.subplots(1, 5, figsize=(7.2, 2.8))
for ax, i in zip(axes, picks, strict=True):
    ax.imshow(screens[i])
    ax.set_title(f"burn-in step {i}", fontsize=9)
    ax.axis("off")
plt.show()

# %% [markdown]
# What does the memory change? We play the same burn-in attempts under both settings -- the same
# random generator per attempt, so the same burn-in lengths and the same epsilon coin flips; only
# the greedy actions can differ -- and compare what the burn-ins score, how long they survive, how
# many attempts are kept and how many distinct start states the kept ones reach.

# %%
burnin_compare = {}
for game in a3c["games"]:
    policy = load_policy(agents[game])
    for gru in ("reset", "carry"):
        t0 = time.time()
        s = burnin_summary(game, policy, burnin_attempts, *burnin[game], eps=eps,
                           burnin_gru=gru, seed=0)
        burnin_compare[game, gru] = s
        print(f"{game} burnin_gru={gru!r}: "
              f"mean burn-in return {s['returns'].mean():+.2f},\n"
              f"    mean steps played {s['lengths'].mean():.1f}, "
              f"kept {s['reasons']['kept']}/{burnin_attempts}, "
              f"distinct starts {s['distinct_starts']} ({time.time() - t0:.1f} s)")
        results[f"{game}_burnin_{gru}_mean_return"] = float(s["returns"].mean())
        results[f"{game}_burnin_{gru}_distinct_starts"] = int(s["distinct_starts"])
    reset, carry = burnin_compare[game, "reset"], burnin_compare[game, "carry"]
    same = (shared_states(reset["start_rams"], carry["start_rams"])
            if len(reset["start_rams"]) else 0)
    print(f"start states reached under both settings: {same}")

# %% [markdown]
# The barely trained agent of the small scale may play both settings the same way: its greedy action
# hardly depends on its GRU state yet. An agent trained with memory can use it, so whether, and how
# much, the published memoryless burn-in changes the datasets' start states is what this cell
# measures at the `cpu` and `full` scales; the datasets below use the published setting.
#
# ## Three splits without shared start states

# %%
from cswm_lib.a3c.collect import collect_splits, split_path, split_stats

paths = {}
for game in a3c["games"]:
    t0 = time.time()
    splits = collect_splits(game, agents[game], split_episodes, split_seeds,
                            burnin[game], eps, num_steps)
    paths |= {(game, split): path for split, path in splits.items()}
    print(f"{game} ({time.time() - t0:.1f} s):",
          *(p.name for p in splits.values()), sep="\n    ")

# %%
stats = {game: split_stats({s: paths[game, s] for s in split_episodes})
         for game in a3c["games"]}
display(Markdown(report.split_table(stats)))
for game, st in stats.items():
    for s in split_episodes:
        results[f"{game}_{s}_episodes"] = st[s]["episodes"]
        results[f"{game}_{s}_attempts"] = st[s]["attempts"]
        results[f"{game}_{s}_distinct_start_states"] = st[s]["distinct_starts"]
    for s1, s2 in [("train", "valid"), ("train", "test"), ("valid", "test")]:
        results[f"{game}_{s1}_{s2}_shared_start"] = st[f"{s1}-{s2}"]["shared_start"]
        results[f"{game}_{s1}_{s2}_shared_any"] = st[f"{s1}-{s2}"]["shared_any"]

# %% [markdown]
# "attempts" counts every episode started; the columns after it say why attempts were dropped. With
# an untrained Pong agent most attempts end in a point during the burn-in: the ball is missed after
# about 60 steps, so only short burn-ins survive. A trained agent returns the ball and keeps far more.
# No start state is shared between splits, by construction; the duplicate check looks only at start
# states, so later states of two episodes can still coincide (the lines under the table). The "starts" column
# counts distinct start states inside one split: the original did not de-duplicate within a split
# either.
#
# Finally, the ten recorded steps of one training episode (the current screen of each 6-channel
# frame; actions are random from here on):

# %% tags=["hide-input"]
e = load_episodes(paths[a3c["games"][0], "train"])
print(e)
report.plot_episode_frames(e, 0, actions=True)
plt.show()

# %% [markdown]
# ## Commands at the paper's scale
#
# The `full` parameters run exactly the README commands. On the command line they read:

# %%
for game in a3c["games"]:
    print(f"python -m cswm_lib.a3c.train {game} \\\n"
          "    --num-workers 20 --max-frames 8e7 --lr 1e-4")
    done = []
    for split, n in {"train": 10000, "valid": 1000, "test": 1000}.items():
        seed = {"train": 1, "valid": 2, "test": 3}[split]
        path = f"data/{split_path(game, split, n, 0.5).name}"
        dup = "".join(f" \\\n        {p}" for p in done)
        dup = f" \\\n    --check-dup-paths{dup}" if done else ""
        print(f"python -m cswm_lib.a3c.collect {game} \\\n"
              f"    --min-burnin {burnin[game][0]} --max-burnin {burnin[game][1]} \\\n"
              f"    --max-episodes {n} --num-steps 10 --eps 0.5 --seed {seed} \\\n"
              f"    --save-path {path}{dup}")
        done.append(path)

# %% [markdown]
# ## Summary
#
# - A3C = actor-critic on short rollouts with GAE advantages, an entropy bonus and clipped gradients;
#   several processes update one shared model with one *shared* Adam state (baby-a3c's was not shared
#   by accident).
# - Our implementation solves CartPole (mean return >= 195 over 100 episodes) in well under a minute
#   on two cores; the same code, with the baby-a3c conv+GRU network, trains the Atari agents.
# - The Section 4.3 datasets start after an epsilon-greedy burn-in by the agent -- memoryless as
#   published (`burnin_gru="reset"`, the default), or with its GRU state carried (`"carry"`) --,
#   record ten random transitions, and keep train / valid / test start states apart.
#
# ## Exercises
#
# 1. Train CartPole with `cartpole_workers = 1` and `4`. How do frames-to-solve and wall time change
#    on your machine? Why can more workers need *more* frames?
# 2. Set `tau = 0.95` in `A3CConfig` (GAE with $\lambda < 1$) and compare the CartPole curves.
# 3. Collect with `eps = 1.0` (a random burn-in, like the random-policy datasets). How does the
#    distribution of start states change, and how many attempts are dropped?
# 4. Count how many *later* states are shared between train and test at the full scale. Should the
#    duplicate check cover them too?
# 5. Raise `burnin_attempts` and train the agent longer: from when on do `burnin_gru="reset"` and
#    `"carry"` reach different start states?

# %% tags=["hide-cell"]
results["scale"] = scale
save_results("07_agents", results, scale)
