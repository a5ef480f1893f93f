"""A3C training (Mnih et al. 2016) in the style of baby-a3c: Hogwild worker processes, one shared model.

Every worker process owns an environment and a local copy of the policy. It repeatedly

1. copies the shared weights into its local policy,
2. plays a rollout of up to ``rollout`` steps (sampling actions from the softmax),
3. computes the actor-critic loss with generalised advantage estimation (:func:`a3c_loss`),
4. writes its gradients onto the shared parameters and steps the shared :class:`SharedAdam`.

The main process only coordinates: it reads finished-episode records from a queue, keeps the
training curve (``curve.jsonl``) and the running averages, writes an atomic ``checkpoint.pt``
every ``checkpoint_every`` frames, and stops the workers at ``max_frames`` or once the mean return
of the last ``window`` episodes reaches ``target_return``. ``train`` resumes from the checkpoint in
its folder. Runs are NOT bit-reproducible: the workers race for the shared weights by design.

"Frames" counts agent steps summed over all workers (as baby-a3c did; an Atari step is 4 or 3
emulator frames with frame skipping).

CLI: ``python -m cswm_lib.a3c.train CartPole-v1 --max-frames 300000 --target-return 195``.
"""

from __future__ import annotations

import argparse
import json
import math
import numbers
import queue as queue_lib
import time
from collections import deque
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from cswm_lib import checks
from cswm_lib.a3c.agent import (
    agent_obs,
    check_policy_weights,
    is_atari,
    load_checkpoint,
    make_env,
    make_policy,
    read_returns,
)
from cswm_lib.a3c.optim import SharedAdam
from cswm_lib.errors import CswmError
from cswm_lib.paths import output_folder
from cswm_lib.utils import (
    ArgumentParser,
    atomic_path,
    checkpoints_dir,
    cli_errors,
    die_with_parent,
    ignore_interrupts,
    interrupt_guard,
)

# --------------------------------------------------------------------------------------------
# configuration


@dataclass
class A3CConfig:
    """Hyper-parameters of one A3C run (defaults: baby-a3c's, except the frame budget)."""

    env_id: str = "PongDeterministic-v4"
    num_workers: int = 20  # baby-a3c: 20 processes
    max_frames: int = 80_000_000  # baby-a3c: 8e7
    rollout: int = 20  # steps per update ("rnn_steps")
    lr: float = 1e-4
    gamma: float = 0.99
    tau: float = 1.0  # GAE lambda
    value_coef: float = 0.5
    entropy_coef: float = 0.01
    grad_clip: float = 40.0
    clip_rewards: bool | None = None  # None: clip to [-1, 1] for Atari only
    max_episode_steps: int = 10_000  # cut (treated as a truncation, bootstrapped) after this many steps
    hidden: int | None = None  # None: 256 (Atari GRU) / 64 (MLP)
    target_return: float | None = None  # stop once the mean return of the last `window` episodes reaches it
    window: int = 100
    checkpoint_every: int = 2_000_000  # frames
    seed: int = 1
    folder: str | None = None  # None: <checkpoints>/a3c/<env id lower-case>
    start_method: str = "spawn"
    progress: bool = True

    def resolved_folder(self) -> Path:
        return Path(self.folder) if self.folder else checkpoints_dir() / "a3c" / self.env_id.lower()

    def validate(self) -> None:
        whole = ("num_workers", "max_frames", "rollout", "max_episode_steps", "window", "checkpoint_every",
                 "seed", "hidden")
        for k in whole:
            v = getattr(self, k)
            bad = isinstance(v, bool) or not isinstance(v, numbers.Integral)
            if bad and (v is not None or k != "hidden"):
                raise CswmError(f"{k} must be a whole number, got {v!r}")
        for k in ("lr", "gamma", "tau", "value_coef", "entropy_coef", "grad_clip", "target_return"):
            v = getattr(self, k)
            if (v is not None or k != "target_return") and (
                    isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v)):
                raise CswmError(f"{k} must be a finite number, got {v!r}")
        if self.num_workers < 1:
            raise CswmError(f"num_workers must be >= 1, got {self.num_workers}")
        # worker r seeds with seed * 1000 + r + frames done
        checks.seed(self.seed, "--seed", scale=1000, offset=self.num_workers + self.max_frames)
        if self.rollout < 1 or self.max_frames < 1 or self.checkpoint_every < 1 or self.window < 1:
            raise CswmError("rollout, max_frames, checkpoint_every and window must be >= 1")
        if self.hidden is not None and self.hidden > 65536:
            raise CswmError(f"--hidden {self.hidden} is beyond what this library builds (at most 65536)")
        if self.max_episode_steps < 1 or (self.hidden is not None and self.hidden < 1):
            raise CswmError(f"max_episode_steps and hidden must be >= 1, got {self.max_episode_steps}, "
                            f"{self.hidden}")
        if not 0 < self.gamma <= 1 or not 0 <= self.tau <= 1:
            raise CswmError(f"gamma must be in (0, 1] and tau in [0, 1], got {self.gamma}, {self.tau}")
        if self.lr <= 0 or self.grad_clip <= 0 or self.value_coef < 0 or self.entropy_coef < 0:
            raise CswmError(f"need lr > 0, grad_clip > 0, value_coef >= 0 and entropy_coef >= 0; got "
                            f"{self.lr}, {self.grad_clip}, {self.value_coef}, {self.entropy_coef}")
        if self.start_method not in mp.get_all_start_methods():
            raise CswmError(f"unknown start_method {self.start_method!r}: expected one of "
                            f"{', '.join(mp.get_all_start_methods())}")
        output_folder(self.resolved_folder(), "A3C folder")


# --------------------------------------------------------------------------------------------
# the loss


def discount(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Reverse discounted cumulative sum: ``y[t] = x[t] + factor * y[t+1]`` over ``[T]``."""
    out = torch.empty_like(x)
    acc = torch.zeros((), dtype=x.dtype)
    for t in range(x.shape[0] - 1, -1, -1):
        acc = x[t] + factor * acc
        out[t] = acc
    return out


def a3c_loss(values: torch.Tensor, logits: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor,
             bootstrap: float, gamma: float = 0.99, tau: float = 1.0, value_coef: float = 0.5,
             entropy_coef: float = 0.01) -> tuple[torch.Tensor, dict[str, float]]:
    """Actor-critic loss of one rollout, summed over its ``T`` steps (as baby-a3c).

    Args:
        values: ``[T]`` critic values V(s_t) (with gradients).
        logits: ``[T, A]`` actor logits.
        actions: ``[T]`` actions taken.
        rewards: ``[T]`` rewards received (already clipped if the game calls for it).
        bootstrap: V(s_T) of the state after the rollout, 0 if the episode terminated there.

    The terms::

        policy loss  = -sum_t log pi(a_t|s_t) * A_t,  A_t = GAE(gamma, tau) of
                       delta_t = r_t + gamma V(s_{t+1}) - V(s_t);
        value loss   = sum_t 0.5 (R_t - V(s_t))^2 with R_t the bootstrapped discounted return;
        loss         = policy + value_coef * value - entropy_coef * sum_t H(pi(.|s_t)).
    """
    v = values.detach()
    v_next = torch.cat([v[1:], torch.tensor([bootstrap], dtype=v.dtype)])
    deltas = rewards + gamma * v_next - v
    advantages = discount(deltas, gamma * tau)
    returns = discount(torch.cat([rewards, torch.tensor([bootstrap], dtype=rewards.dtype)]), gamma)[:-1]
    logp = F.log_softmax(logits, dim=-1)
    policy_loss = -(logp.gather(1, actions[:, None]).squeeze(1) * advantages).sum()
    value_loss = 0.5 * (returns - values).pow(2).sum()
    entropy = -(logp.exp() * logp).sum()
    loss = policy_loss + value_coef * value_loss - entropy_coef * entropy
    return loss, {"policy": policy_loss.item(), "value": value_loss.item(), "entropy": entropy.item()}


# --------------------------------------------------------------------------------------------
# the actor: one worker process


class Actor:
    """One worker's environment, local policy and episode bookkeeping.

    :meth:`update` plays one rollout of up to ``cfg.rollout`` steps with the local copy of the
    shared weights and applies its gradients to ``shared`` through the shared optimizer.
    """

    def __init__(self, cfg: A3CConfig, seed: int):
        self.cfg = cfg
        self.rng = np.random.default_rng(seed)
        self.env = make_env(cfg.env_id)
        self.clip = is_atari(cfg.env_id) if cfg.clip_rewards is None else cfg.clip_rewards
        self.local = make_policy(cfg.env_id, self.env, cfg.hidden)
        obs, _ = self.env.reset(seed=seed)
        self._new_episode(obs)

    def _new_episode(self, obs: np.ndarray) -> None:
        self.x, self.hx = agent_obs(self.cfg.env_id, obs), self.local.initial_state()
        self.ep_return, self.ep_len, self.ep_entropy = 0.0, 0, 0.0

    def update(self, shared: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[int, tuple | None]:
        """One rollout + one shared update; returns (steps played, (return, length, mean entropy) of the
        episode that ended in this rollout, or None)."""
        cfg, local = self.cfg, self.local
        local.load_state_dict(shared.state_dict())
        hx = None if self.hx is None else self.hx.detach()
        values, logits, actions, rewards = [], [], [], []
        done = terminated = False
        for _ in range(cfg.rollout):
            value, logit, hx = local(self.x, hx)
            probs = F.softmax(logit.detach()[0], dim=-1).numpy().astype(np.float64)
            action = int(self.rng.choice(len(probs), p=probs / probs.sum()))
            obs, reward, terminated, truncated, _ = self.env.step(action)
            self.ep_return += float(reward)
            self.ep_len += 1
            self.ep_entropy += float(-(probs * np.log(probs + 1e-12)).sum())
            values.append(value[0, 0])
            logits.append(logit[0])
            actions.append(action)
            rewards.append(float(np.clip(reward, -1, 1)) if self.clip else float(reward))
            self.x = agent_obs(cfg.env_id, obs)
            done = terminated or truncated or self.ep_len >= cfg.max_episode_steps
            if done:
                break
        self.hx = hx
        bootstrap = 0.0
        if not terminated:  # cut by the time limit or the rollout length: bootstrap from V(s_T)
            with torch.no_grad():
                bootstrap = float(local(self.x, hx)[0][0, 0])
        loss, _ = a3c_loss(torch.stack(values), torch.stack(logits), torch.tensor(actions),
                           torch.tensor(rewards, dtype=torch.float32), bootstrap, cfg.gamma, cfg.tau,
                           cfg.value_coef, cfg.entropy_coef)
        local.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(local.parameters(), cfg.grad_clip)
        for p, sp in zip(local.parameters(), shared.parameters(), strict=True):
            sp.grad = p.grad
        optimizer.step()
        episode = None
        if done:
            episode = (self.ep_return, self.ep_len, self.ep_entropy / self.ep_len)
            obs, _ = self.env.reset()
            self._new_episode(obs)
        return len(actions), episode


def _worker(rank: int, cfg: A3CConfig, shared: nn.Module, optimizer: SharedAdam, frames, stop, records,
            seed: int) -> None:
    """The life of one worker process: updates until the frame budget is spent or ``stop`` is set;
    every finished episode goes to ``records`` as ``(rank, return, length, mean entropy)``."""
    ignore_interrupts()  # Ctrl-C is the coordinator's: it stops the workers and saves a checkpoint
    die_with_parent()  # a coordinator killed without cleanup (SIGKILL, OOM) leaves no worker playing on
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    actor = Actor(cfg, seed)
    while not stop.is_set() and frames.value < cfg.max_frames:
        steps, episode = actor.update(shared, optimizer)
        with frames.get_lock():
            frames.value += steps
        if episode is not None:
            records.put((rank, *episode))
    actor.env.close()


# --------------------------------------------------------------------------------------------
# train: the coordinating process


class _Stats:
    """Running averages (baby-a3c's exponential ones, horizon 0.99) and the last-`window` mean."""

    def __init__(self, window: int, state: dict[str, Any] | None = None):
        state = state or {}
        self.episodes = state.get("episodes", 0)
        self.run_return = state.get("run_return")
        self.run_length = state.get("run_length")
        self.recent = deque(state.get("recent", []), maxlen=window)

    def add(self, ret: float, length: int) -> None:
        self.episodes += 1
        self.recent.append(ret)
        h = 0.99
        self.run_return = ret if self.run_return is None else h * self.run_return + (1 - h) * ret
        self.run_length = length if self.run_length is None else h * self.run_length + (1 - h) * length

    @property
    def mean_recent(self) -> float:
        return float(np.mean(self.recent)) if self.recent else math.nan

    def state(self) -> dict[str, Any]:
        return {"episodes": self.episodes, "run_return": self.run_return, "run_length": self.run_length,
                "recent": list(self.recent)}


def _save_checkpoint(folder: Path, cfg: A3CConfig, model: nn.Module, optimizer: SharedAdam, frames: int,
                     stats: _Stats, elapsed: float) -> None:
    state = {"config": asdict(cfg), "model": {k: v.clone() for k, v in model.state_dict().items()},
             "optimizer": optimizer.state_dict(), "frames": frames, "stats": stats.state(),
             "elapsed": elapsed}
    with atomic_path(folder / "checkpoint.pt") as tmp:
        torch.save(state, tmp)


def train(cfg: A3CConfig, resume: bool = True) -> Path:
    """Train (or resume) an A3C agent; return its folder (``checkpoint.pt``, ``curve.jsonl``).

    The checkpoint written last holds the final weights; ``load_policy(folder)`` reads them.
    A finished run (budget spent or target reached) is returned at once when called again.
    """
    cfg.validate()
    folder = cfg.resolved_folder()
    torch.manual_seed(cfg.seed)
    model = make_policy(cfg.env_id, hidden=cfg.hidden)  # an unknown env id fails here, before any mkdir
    folder.mkdir(parents=True, exist_ok=True)
    optimizer = SharedAdam(model.parameters(), lr=cfg.lr)
    start_frames, elapsed, stats = 0, 0.0, _Stats(cfg.window)
    curve_path = folder / "curve.jsonl"
    if resume and (folder / "checkpoint.pt").is_file():
        ckpt = load_checkpoint(folder)
        if ckpt["config"]["env_id"] != cfg.env_id or ckpt["config"]["hidden"] != cfg.hidden:
            raise CswmError(f"checkpoint in {folder} is for {ckpt['config']['env_id']} (hidden "
                            f"{ckpt['config']['hidden']}), not {cfg.env_id} (hidden {cfg.hidden})")
        check_policy_weights(ckpt["model"], model, folder / "checkpoint.pt", cfg.env_id)
        model.load_state_dict(ckpt["model"])
        try:
            optimizer.load_state_dict(ckpt["optimizer"])
        except (ValueError, KeyError, TypeError, RuntimeError) as err:
            raise CswmError(f"{folder / 'checkpoint.pt'}: its optimizer state does not fit the policy "
                            f"({type(err).__name__}); resume is not possible, pass --no-resume") from None
        start_frames, elapsed, stats = ckpt["frames"], ckpt["elapsed"], _Stats(cfg.window, ckpt["stats"])
        # episodes logged after the checkpoint are replayed by the resumed run: drop them
        kept = [r for r in read_returns(folder) if r["episode"] <= stats.episodes]
        with atomic_path(curve_path) as tmp:
            tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
    else:
        curve_path.write_text("")
    if start_frames >= cfg.max_frames or _reached(cfg, stats):
        return folder
    model.share_memory()
    optimizer.share_memory()

    ctx = mp.get_context(cfg.start_method)
    frames, stop, records = ctx.Value("l", start_frames), ctx.Event(), ctx.Queue()
    seeds = [cfg.seed * 1000 + r + start_frames for r in range(cfg.num_workers)]
    workers = [ctx.Process(target=_worker, daemon=True,
                           args=(r, cfg, model, optimizer, frames, stop, records, seeds[r]))
               for r in range(cfg.num_workers)]
    for w in workers:
        w.start()
    t0 = time.time() - elapsed
    next_ckpt = (start_frames // cfg.checkpoint_every + 1) * cfg.checkpoint_every
    bar = _progress(cfg, start_frames)
    interrupted: KeyboardInterrupt | None = None
    try:
        with interrupt_guard() as guard, curve_path.open("a") as log:
            while True:
                try:
                    rank, ret, length, entropy = records.get(timeout=0.5)
                except queue_lib.Empty:
                    rank = None
                n = frames.value
                if rank is not None:
                    stats.add(ret, length)
                    row = {"frames": n, "episode": stats.episodes, "worker": rank, "return": ret,
                           "length": length, "entropy": entropy, "run_return": stats.run_return,
                           "run_length": stats.run_length, "mean_recent": stats.mean_recent,
                           "time": time.time() - t0}
                    log.write(json.dumps(row) + "\n")
                    log.flush()
                if bar is not None:
                    bar.n = min(n, cfg.max_frames)
                    bar.set_postfix(episodes=stats.episodes, mean_recent=f"{stats.mean_recent:.1f}",
                                    refresh=False)
                    bar.refresh()
                guard.check()
                finished = n >= cfg.max_frames or _reached(cfg, stats)
                if finished or not any(w.is_alive() for w in workers):
                    break
                if n >= next_ckpt:
                    _save_checkpoint(folder, cfg, model, optimizer, n, stats, time.time() - t0)
                    next_ckpt = (n // cfg.checkpoint_every + 1) * cfg.checkpoint_every
    except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM (utils.Terminated)
        interrupted = err
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=30)
            if w.is_alive():
                w.terminate()
        if bar is not None:
            bar.close()
    if interrupted is not None:  # Ctrl-C: keep what the workers learnt so far; the next run resumes from it
        _save_checkpoint(folder, cfg, model, optimizer, frames.value, stats, time.time() - t0)
        raise interrupted
    crashed = any(w.exitcode not in (0, None) for w in workers)
    if crashed and frames.value < cfg.max_frames and not _reached(cfg, stats):
        raise RuntimeError(f"A3C worker(s) died: exit codes {[w.exitcode for w in workers]}")
    _save_checkpoint(folder, cfg, model, optimizer, frames.value, stats, time.time() - t0)
    return folder


def _reached(cfg: A3CConfig, stats: _Stats) -> bool:
    return (cfg.target_return is not None and len(stats.recent) >= cfg.window
            and stats.mean_recent >= cfg.target_return)


def _progress(cfg: A3CConfig, start: int):
    if not cfg.progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=cfg.max_frames, initial=start, desc=f"A3C {cfg.env_id}", unit="frame", unit_scale=True)


# --------------------------------------------------------------------------------------------
# CLI


def _parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m cswm_lib.a3c.train", description=__doc__.split("\n")[0])
    p.add_argument("env_id", help="gymnasium id, e.g. PongDeterministic-v4 or CartPole-v1")
    for f in fields(A3CConfig):
        if f.name == "env_id":
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        if f.name == "clip_rewards":
            p.add_argument(flag, choices=["auto", "yes", "no"], default="auto")
        elif isinstance(default, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        else:
            kind = {"max_frames": float, "checkpoint_every": float, "target_return": float, "hidden": int,
                    "folder": str}.get(f.name, type(default))
            p.add_argument(flag, type=kind, default=default)
    p.add_argument("--no-resume", action="store_true", help="start from scratch even if a checkpoint exists")
    return p


@cli_errors
def main(argv: list[str] | None = None) -> Path:
    args = vars(_parser().parse_args(argv))
    resume = not args.pop("no_resume")
    args["clip_rewards"] = {"auto": None, "yes": True, "no": False}[args["clip_rewards"]]
    for k in ("max_frames", "checkpoint_every"):  # given as floats so 1e6 is accepted
        if not math.isfinite(args[k]) or args[k] != int(args[k]):
            raise CswmError(f"--{k.replace('_', '-')} must be a whole number, got {args[k]}")
        args[k] = int(args[k])
    folder = train(A3CConfig(**args), resume=resume)
    stats = load_checkpoint(folder)
    recent = stats["stats"]["recent"]
    print(f"{folder}: {stats['frames']} frames, {stats['stats']['episodes']} episodes, mean return of the "
          f"last {len(recent)}: {np.mean(recent or [math.nan]):.2f}")
    return folder


if __name__ == "__main__":
    main()
