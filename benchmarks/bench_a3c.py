"""A3C benchmark: CartPole verification, worker update throughput vs baby-a3c's loop, collection.

    .venv/bin/python benchmarks/bench_a3c.py            # ~3-4 minutes on 2 busy cores
    .venv/bin/python benchmarks/bench_a3c.py --quick    # one CartPole seed, fewer updates

1. **CartPole verification** (the A3C correctness check): 2 worker processes train CartPole-v1 until
   the mean return of the last 100 episodes reaches 195; frames, wall time, and the mean return of
   100 fresh evaluation episodes with the saved weights, per seed.
2. **Atari update throughput**, one process, side by side on the same warm machine: our
   ``Actor.update`` against a faithful re-implementation of baby-a3c's worker loop (its
   ``imresize``-style preprocessing: grey, per-frame contrast stretch to 0..255, bilinear PIL resize;
   per-step autograd graph; GAE computed in numpy; ``scipy.signal.lfilter`` replaced by an
   equivalent loop since scipy is not a dependency). Same network, same optimizer, same env.
3. **Collection**: Pong episodes/s with an (untrained) agent, attempts per kept episode, and the
   file size of our format (uint8, gzip) against the original layout (float64 obs + next_obs,
   int32 RAM, one group per episode) for the same episodes.

Writes ``benchmarks/results/bench_a3c.json``. The machine is shared: compare the ratios.
Anchor (``benchmarks/README.md``, Anchors): ~2,000-3,000 raw Atari env steps/s at frameskip 3-4 on
this kind of machine; there is no A3C figure for the original code.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cswm_lib.a3c import SharedAdam, evaluate_policy, load_checkpoint, load_policy, make_env, make_policy  # noqa: E402
from cswm_lib.a3c.collect import CollectConfig, collect  # noqa: E402
from cswm_lib.a3c.train import A3CConfig, Actor, train  # noqa: E402
from cswm_lib.data.hdf5 import load_episodes  # noqa: E402
from cswm_lib.utils import write_json  # noqa: E402

PONG = "PongDeterministic-v4"


# ------------------------------------------------------------------ baby-a3c's worker loop, re-implemented
def baby_prepro(rgb: np.ndarray) -> np.ndarray:
    """``imresize(img[35:195].mean(2), (80, 80)) / 255``: scipy's imresize byte-scaled the float image
    to its own min..max, then resized with PIL bilinear."""
    grey = rgb[35:195].mean(2)
    lo, hi = grey.min(), grey.max()
    scaled = ((grey - lo) * (255.0 / max(hi - lo, 1e-12))).round().astype(np.uint8)
    small = np.asarray(Image.fromarray(scaled).resize((80, 80), Image.BILINEAR))
    return small.astype(np.float32).reshape(1, 80, 80) / 255.0


def _lfilter_discount(x: np.ndarray, gamma: float) -> np.ndarray:
    out, acc = np.zeros_like(x), 0.0
    for t in range(len(x) - 1, -1, -1):
        acc = x[t] + gamma * acc
        out[t] = acc
    return out


def baby_cost(values, logps, actions, rewards, gamma=0.99, tau=1.0):
    np_values = values.view(-1).data.numpy()
    delta_t = np.asarray(rewards) + gamma * np_values[1:] - np_values[:-1]
    logpys = logps.gather(1, actions.view(-1, 1))
    gen_adv_est = _lfilter_discount(delta_t, gamma * tau)
    policy_loss = -(logpys.view(-1) * torch.FloatTensor(gen_adv_est.copy())).sum()
    rewards = np.array(rewards, dtype=np.float64)
    rewards[-1] += gamma * np_values[-1]
    discounted_r = torch.tensor(_lfilter_discount(rewards, gamma).copy(), dtype=torch.float32)
    value_loss = 0.5 * (discounted_r - values[:-1, 0]).pow(2).sum()
    entropy_loss = (-logps * torch.exp(logps)).sum()
    return policy_loss + 0.5 * value_loss - 0.01 * entropy_loss


class BabyActor:
    def __init__(self, seed: int):
        self.env = make_env(PONG)
        self.local = make_policy(PONG, self.env)
        obs, _ = self.env.reset(seed=seed)
        self.state, self.hx, self.done = torch.tensor(baby_prepro(obs)), torch.zeros(1, 256), True

    def update(self, shared: nn.Module, optimizer) -> int:
        model = self.local
        model.load_state_dict(shared.state_dict())
        hx = torch.zeros(1, 256) if self.done else self.hx.detach()
        self.done = False
        values, logps, actions, rewards = [], [], [], []
        for _ in range(20):
            value, logit, hx = model(self.state.view(1, 1, 80, 80), hx)
            logp = F.log_softmax(logit, dim=-1)
            action = torch.exp(logp).multinomial(num_samples=1).data[0]
            obs, reward, term, trunc, _ = self.env.step(int(action))
            self.done = term or trunc
            self.state = torch.tensor(baby_prepro(obs))
            values.append(value)
            logps.append(logp)
            actions.append(action)
            rewards.append(float(np.clip(reward, -1, 1)))
            if self.done:
                break
        next_value = torch.zeros(1, 1) if self.done else model(self.state.unsqueeze(0), hx)[0]
        values.append(next_value.detach())
        loss = baby_cost(torch.cat(values), torch.cat(logps), torch.cat(actions), rewards)
        optimizer.zero_grad()
        model.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 40)
        for p, sp in zip(model.parameters(), shared.parameters(), strict=True):
            sp.grad = p.grad
        optimizer.step()
        if self.done:
            obs, _ = self.env.reset()
            self.state = torch.tensor(baby_prepro(obs))
        self.hx = hx
        return len(actions)


# ------------------------------------------------------------------ the three measurements
def bench_cartpole(seeds: list[int], tmp: Path) -> list[dict]:
    rows = []
    for seed in seeds:
        cfg = A3CConfig(env_id="CartPole-v1", num_workers=2, max_frames=600_000, lr=2e-3, target_return=195,
                        seed=seed, folder=str(tmp / f"cartpole{seed}"), progress=False,
                        checkpoint_every=100_000)
        t0 = time.time()
        train(cfg, resume=False)
        wall = time.time() - t0
        ck = load_checkpoint(cfg.folder)
        ev = evaluate_policy(load_policy(cfg.folder), "CartPole-v1", episodes=100, seed=10_000)
        mean100 = float(np.mean(ck["stats"]["recent"]))
        rows.append(dict(seed=seed, frames=int(ck["frames"]), episodes=int(ck["stats"]["episodes"]),
                         mean_return_last100=mean100, wall_s=wall, eval_mean_return=float(ev.mean()),
                         solved=mean100 >= 195))
        print(f"  CartPole seed {seed}: {rows[-1]['frames']} frames, {wall:.1f} s wall, "
              f"mean last 100 {rows[-1]['mean_return_last100']:.1f}, eval {rows[-1]['eval_mean_return']:.1f}")
    return rows


def bench_updates(updates: int, repeats: int) -> dict:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    shared = make_policy(PONG)
    ours_opt, baby_opt = SharedAdam(shared.parameters(), lr=1e-4), SharedAdam(shared.parameters(), lr=1e-4)
    ours, baby = Actor(A3CConfig(env_id=PONG), seed=1), BabyActor(seed=1)
    rates: dict[str, list[float]] = {"ours": [], "baby-a3c": []}
    contenders = (("ours", lambda: ours.update(shared, ours_opt)[0]),
                  ("baby-a3c", lambda: baby.update(shared, baby_opt)))
    for _name, act in contenders:
        act()  # warm-up
    for _ in range(repeats):  # interleaved, so both see the same machine load
        for name, act in contenders:
            t0, frames = time.perf_counter(), 0
            for _ in range(updates):
                frames += act()
            rates[name].append(frames / (time.perf_counter() - t0))
    env, t0 = make_env(PONG), time.perf_counter()
    env.reset(seed=0)
    for _ in range(2000):
        if any(env.step(int(np.random.randint(6)))[2:4]):
            env.reset()
    env_rate = 2000 / (time.perf_counter() - t0)
    rgb = env.step(0)[0]
    t_ours = _time(lambda: __import__("cswm_lib.a3c.model", fromlist=["x"]).atari_agent_obs(rgb))
    t_baby = _time(lambda: baby_prepro(rgb))
    return dict(frames_per_s={k: statistics.median(v) for k, v in rates.items()},
                all_rates=rates,
                speedup=statistics.median(rates["ours"]) / statistics.median(rates["baby-a3c"]),
                raw_env_steps_per_s=env_rate, prepro_ms={"ours": t_ours * 1e3, "baby-a3c": t_baby * 1e3})


def _time(fn, n: int = 300) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def bench_collect(episodes: int, tmp: Path) -> dict:
    agent = tmp / "pong_agent"
    train(A3CConfig(env_id=PONG, num_workers=1, max_frames=100, folder=str(agent), progress=False),
          resume=False)
    cfg = CollectConfig(env_id=PONG, save_path=str(tmp / "pong.h5"), min_burnin=58, max_burnin=100,
                        max_episodes=episodes, num_steps=10, eps=0.5, seed=1, agent=str(agent),
                        progress=False)
    t0 = time.time()
    path = collect(cfg, overwrite=True)
    wall = time.time() - t0
    ep = load_episodes(path)
    orig = tmp / "pong_original_layout.h5"
    with h5py.File(orig, "w") as f:  # what the original collector wrote for the same episodes
        for e in range(ep.num_episodes):
            g = f.create_group(str(e))
            x = ep.frames[e].astype(np.float64) / 255.0
            g["obs"], g["next_obs"], g["action"] = x[:-1], x[1:], ep.actions[e]
            ram = ep.state_ids[e].astype(np.int32)
            g["state_ids"], g["next_state_ids"] = ram[:-1], ram[1:]
    ours_b, orig_b = path.stat().st_size, orig.stat().st_size
    return dict(episodes=ep.num_episodes, attempts=int(ep.attrs["attempts"]), wall_s=wall,
                episodes_per_s=ep.num_episodes / wall, attempts_per_s=ep.attrs["attempts"] / wall,
                bytes_per_episode={"ours": ours_b / ep.num_episodes, "original": orig_b / ep.num_episodes},
                size_ratio=orig_b / ours_b)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    args = p.parse_args()
    seeds = args.seeds[:1] if args.quick else args.seeds
    updates, repeats, episodes = (10, 2, 5) if args.quick else (25, 3, 20)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        print("1. CartPole verification (2 worker processes, target 195 over 100 episodes)")
        cart = bench_cartpole(seeds, tmp)
        print("2. Atari update throughput, one process (frames/s)")
        upd = bench_updates(updates, repeats)
        print("3. Collection (Pong, untrained agent)")
        col = bench_collect(episodes, tmp)
    print("\n| measurement | ours | baby-a3c / original | ratio |\n|---|---|---|---|")
    for r in cart:
        print(f"| CartPole seed {r['seed']}: frames to 195 / wall s / eval mean | {r['frames']} / "
              f"{r['wall_s']:.1f} / {r['eval_mean_return']:.1f} | - | - |")
    f = upd["frames_per_s"]
    print(f"| Pong A3C update throughput, 1 process (frames/s) | {f['ours']:.0f} | {f['baby-a3c']:.0f} | "
          f"{upd['speedup']:.2f}x |")
    pm = upd["prepro_ms"]
    print(f"| agent preprocessing per frame (ms) | {pm['ours']:.3f} | {pm['baby-a3c']:.3f} | "
          f"{pm['baby-a3c'] / pm['ours']:.1f}x |")
    print(f"| raw Pong env steps/s (anchor: ~2,000-3,000) | {upd['raw_env_steps_per_s']:.0f} | - | - |")
    b = col["bytes_per_episode"]
    print(f"| collection: kept episodes/s ({col['attempts']} attempts for {col['episodes']}) | "
          f"{col['episodes_per_s']:.2f} | - | - |")
    print(f"| bytes per 10-step episode on disk | {b['ours']:.0f} | {b['original']:.0f} | "
          f"{col['size_ratio']:.0f}x |")
    out = ROOT / "benchmarks" / "results" / "bench_a3c.json"
    write_json(out, {"cartpole": cart, "updates": upd, "collect": col, "quick": args.quick})
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
