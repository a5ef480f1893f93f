"""Policy-driven Atari datasets (Section 4.3): burn-in with a trained A3C agent, then random actions.

``policy`` says who plays the burn-in: ``"a3c"`` (published, the default: the agent of ``agent``),
``"random"`` (uniformly random actions), or a RAM-reading stand-in of
:mod:`cswm_lib.a3c.standin` (``"track_ball"`` for Pong), for scales whose agents play no better
than random. The name is stored in the file's ``policy`` attribute and is part of its identity.

One episode (attempt ``i``, its own random generator drawn from ``(seed, i)``):

1. reset the game; draw a burn-in length uniformly from ``[min_burnin, max_burnin)``;
2. burn-in: the agent plays epsilon-greedily (a uniformly random action with probability ``eps``,
   else the argmax of its policy, or the stand-in's action). ``burnin_gru`` (:data:`BURNIN_GRU`)
   says what its GRU state does: ``"reset"`` (published, the default) -- zeros before every
   action, as the original collector did, so its agent plays without memory; ``"carry"`` (the
   fix) -- carried from step to step, as the agent was trained;
3. record ``num_steps`` transitions with uniformly random actions: frames (previous, current)
   ``[6, 50, 50]`` and the 128-byte RAM as the state id of every frame.

An attempt is dropped when the game ends early, when Pong scores a point during burn-in, when
Space Invaders' lives leave 3 (burn-in or recording), or when its first recorded RAM equals the
first RAM of an episode in one of the ``check_dup_paths`` files (so no split shares a start state).
Collection stops after ``max_episodes`` kept episodes. The result is written atomically in the
book's format (``cswm_lib.data.hdf5``); progress is saved every ``checkpoint_every`` kept episodes
to ``<save_path>.partial.npz`` and a rerun continues from there, producing the same file as an
uninterrupted run.

CLI (the original's flags)::

    python -m cswm_lib.a3c.collect PongDeterministic-v4 --min-burnin 58 --max-burnin 100 \\
        --max-episodes 1000 --num-steps 10 --save-path data/pong_valid.h5 \\
        --check-dup-paths data/pong_train.h5 --eps 0.5 --seed 2
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from cswm_lib import checks
from cswm_lib.a3c.agent import agent_obs, load_checkpoint, load_policy, make_env
from cswm_lib.a3c.standin import STANDINS, RamPolicy, make_standin
from cswm_lib.data.episodes import Episodes
from cswm_lib.envs import atari
from cswm_lib.errors import CswmError
from cswm_lib.utils import (
    ArgumentParser,
    atomic_path,
    checkpoints_dir,
    cli_errors,
    interrupt_guard,
)

COLLECTOR_VERSION = 1  # bump when the same parameters would give different data
DROP_REASONS = ("ended", "point", "lives", "duplicate")
#: What happens to the agent's GRU state during burn-in -- "reset" to zeros before every action (the published
#: collector: a memoryless agent) or "carry" it from step to step (the fix). The default is "reset".
BURNIN_GRU = ("reset", "carry")
#: The players of the burn-in -- the A3C agent of ``agent`` (published), uniformly random actions,
#: or a stand-in of :mod:`cswm_lib.a3c.standin`.
POLICIES = ("a3c", "random", *STANDINS)


@dataclass
class CollectConfig:
    """Parameters of one collection run (CLI flags of the original ``collect.py``)."""

    env_id: str
    save_path: str
    min_burnin: int = 58
    max_burnin: int = 100
    max_episodes: int = 1000
    num_steps: int = 10
    eps: float = 0.5
    seed: int = 0
    burnin_gru: str = "reset"  # BURNIN_GRU: "reset" = published (memoryless), "carry" = fixed
    check_dup_paths: list[str] = field(default_factory=list)
    agent: str | None = None  # A3C folder; None: <checkpoints>/a3c/<env lower>; "random": no agent
    policy: str = "a3c"  # POLICIES: "a3c" = the agent of `agent` (published), "random", or a stand-in's name
    checkpoint_every: int = 500  # kept episodes between partial saves
    progress: bool = True

    def agent_folder(self) -> Path | None:
        if self.agent == "random" or self.policy != "a3c":
            return None
        return Path(self.agent) if self.agent else checkpoints_dir() / "a3c" / self.env_id.lower()

    def validate(self) -> None:
        if self.env_id not in atari.ATARI_IDS:
            ids = ", ".join(atari.ATARI_IDS)
            raise CswmError(f"collection needs an Atari id ({ids}), got {self.env_id!r}")
        if not 0 <= self.min_burnin < self.max_burnin:
            raise CswmError(f"need 0 <= --min-burnin < --max-burnin, got {self.min_burnin} and "
                            f"{self.max_burnin}")
        if self.max_episodes < 1 or self.num_steps < 1:
            raise CswmError(f"--max-episodes and --num-steps must be >= 1, got {self.max_episodes}, "
                            f"{self.num_steps}")
        checks.seed(self.seed, "--seed")
        checks.choice(self.policy, "--policy", POLICIES)
        if self.policy in STANDINS:
            make_standin(self.policy, self.env_id)  # refuses another game's stand-in
        if self.policy != "a3c" and self.agent not in (None, "random"):
            raise CswmError(f"--agent names an A3C agent, which --policy {self.policy} does not play; "
                            "drop --agent or pass --policy a3c")
        if not 0.0 <= self.eps <= 1.0:
            raise CswmError(f"--eps must be in [0, 1], got {self.eps}")
        if self.burnin_gru not in BURNIN_GRU:
            raise CswmError(f"--burnin-gru must be one of {', '.join(BURNIN_GRU)}, got {self.burnin_gru!r}")
        if self.checkpoint_every < 1:
            raise CswmError(f"--checkpoint-every must be >= 1 (kept episodes), got {self.checkpoint_every}")
        for p in self.check_dup_paths:
            if not Path(p).is_file():
                raise CswmError(f"--check-dup-paths file not found: {p}")
        from cswm_lib.paths import output_file

        # (a file that is not a dataset of ours is refused by collect(), which knows --overwrite)
        output_file(self.save_path, "--save-path", inputs=[self.agent_folder(), *self.check_dup_paths],
                    make_parents=True)


def attempt_rng(seed: int, attempt: int) -> np.random.Generator:
    """The generator of attempt ``attempt``: a function of (seed, attempt) only (so resume is exact)."""
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(attempt,)))


def start_state_blacklist(paths: list[str | os.PathLike], env_id: str | None = None) -> set[bytes]:
    """RAMs of the first frame of every episode in ``paths`` (our format or the original's); with
    ``env_id``, files recorded from another game are refused."""
    from cswm_lib.data.hdf5 import load_episodes

    black: set[bytes] = set()
    for p in paths:
        ep = load_episodes(p)
        if env_id is not None and ep.attrs.get("env_id", env_id) != env_id:
            raise CswmError(f"--check-dup-paths file {p} holds {ep.attrs['env_id']} episodes, not {env_id}")
        if ep.state_ids is None:
            raise CswmError(f"--check-dup-paths file has no state_ids to compare start states: {p}")
        black.update(_ram_key(r) for r in ep.state_ids[:, 0])
    return black


def _ram_key(ram: np.ndarray) -> bytes:
    return np.asarray(ram, dtype=np.uint8).tobytes()


@torch.no_grad()
def collect_episode(env: gym.Env, policy: nn.Module | RamPolicy | None, env_id: str, rng: np.random.Generator,
                    burnin: int, num_steps: int, eps: float, blacklist: set[bytes] = frozenset(),
                    reset_seed: int | None = None, burnin_frames: list[np.ndarray] | None = None,
                    burnin_gru: str = "reset", burnin_rewards: list[float] | None = None,
                    ) -> tuple[tuple[np.ndarray, ...] | None, str]:
    """Play one attempt; return ``((frames [T+1, 6, 50, 50], actions [T], rams [T+1, 128]), "kept")``
    or ``(None, reason)`` with reason in ``DROP_REASONS``. ``policy=None`` burns in at random; a
    :class:`~cswm_lib.a3c.standin.RamPolicy` acts on the RAM before each step.
    ``burnin_gru``: see :data:`BURNIN_GRU`. ``burnin_frames`` / ``burnin_rewards``, if lists, receive
    the raw RGB screens ``[210, 160, 3]`` and the rewards of the burn-in steps."""
    if burnin_gru not in BURNIN_GRU:
        raise CswmError(f"burnin_gru must be one of {', '.join(BURNIN_GRU)}, got {burnin_gru!r}")
    game = atari.game_info(env_id)
    pong, invaders = game.game == "pong", game.game == "space_invaders"
    n = int(env.action_space.n)
    rgb, _ = env.reset(seed=reset_seed)
    prev = rgb
    standin = isinstance(policy, RamPolicy)
    if standin:
        policy.reset()
    hx0 = None if policy is None or standin else policy.initial_state()
    hx = hx0
    for _ in range(burnin):
        explore = rng.random() < eps
        if standin:
            greedy = policy.act(atari.get_ram(env))
        elif policy is not None:
            _, logits, hx = policy(agent_obs(env_id, rgb), hx)
            if burnin_gru == "reset":  # the published collector: zeros before every action
                hx = hx0
            greedy = int(logits[0].argmax())
        action = int(rng.integers(n)) if explore or policy is None else greedy
        prev = rgb
        if burnin_frames is not None:
            burnin_frames.append(rgb)
        rgb, reward, term, trunc, _ = env.step(action)
        if burnin_rewards is not None:
            burnin_rewards.append(float(reward))
        if term or trunc:
            return None, "ended"
        if pong and reward != 0:
            return None, "point"
        if invaders and env.unwrapped.ale.lives() != 3:
            return None, "lives"
    ram = atari.get_ram(env)
    if _ram_key(ram) in blacklist:
        return None, "duplicate"
    current = atari.preprocess_frame(rgb, game.game)
    frames = [atari.stack_frames(atari.preprocess_frame(prev, game.game), current)]
    rams = [ram]
    actions = rng.integers(n, size=num_steps)
    for a in actions:
        rgb, _, term, trunc, _ = env.step(int(a))
        if term or trunc:
            return None, "ended"
        if invaders and env.unwrapped.ale.lives() != 3:
            return None, "lives"
        previous, current = current, atari.preprocess_frame(rgb, game.game)
        frames.append(atari.stack_frames(previous, current))
        rams.append(atari.get_ram(env))
    return (np.stack(frames), actions.astype(np.int64), np.stack(rams)), "kept"


def burnin_summary(env_id: str, policy: nn.Module | RamPolicy | None, num_attempts: int, min_burnin: int,
                   max_burnin: int, eps: float = 0.5, burnin_gru: str = "reset",
                   seed: int = 0) -> dict[str, Any]:
    """Play ``num_attempts`` burn-ins as :func:`collect` does (the same generator per attempt, so
    the two :data:`BURNIN_GRU` settings see the same coin flips), recording one random step after
    each and checking no duplicates. Returns per attempt the burn-in ``returns`` (sum of rewards) and
    ``steps`` played, the ``reasons`` attempts ended (counts), and for the kept ones the
    ``start_rams`` ``[n, 128]`` and the number of ``distinct_starts``."""
    env = make_env(env_id)
    returns, steps, reasons, starts = [], [], dict.fromkeys(("kept", *DROP_REASONS), 0), []
    try:
        for attempt in range(num_attempts):
            rng = attempt_rng(seed, attempt)
            burnin = int(rng.integers(min_burnin, max_burnin))
            rewards: list[float] = []
            ep, reason = collect_episode(env, policy, env_id, rng, burnin, 1, eps,
                                         reset_seed=seed if attempt == 0 else None, burnin_gru=burnin_gru,
                                         burnin_rewards=rewards)
            returns.append(sum(rewards))
            steps.append(len(rewards))
            reasons[reason] += 1
            if ep is not None:
                starts.append(ep[2][0])
    finally:
        env.close()
    rams = np.stack(starts) if starts else np.zeros((0, 128), dtype=np.int64)
    return dict(burnin_gru=burnin_gru, returns=np.array(returns), lengths=np.array(steps), reasons=reasons,
                start_rams=rams, distinct_starts=shared_states(rams, rams) if len(rams) else 0)


def shared_states(a: np.ndarray, b: np.ndarray) -> int:
    """How many distinct state ids (rows of ``[..., S]``) occur in both ``a`` and ``b``.

    ``shared_states(x.state_ids[:, 0], y.state_ids[:, 0])`` counts shared start states;
    ``shared_states(x.state_ids, y.state_ids)`` counts shared states anywhere in the episodes.
    """
    def keys(ids: np.ndarray) -> set[bytes]:
        ids = np.ascontiguousarray(ids.reshape(-1, ids.shape[-1]).astype(np.int64))
        return {row.tobytes() for row in ids}

    return len(keys(a) & keys(b))


def split_path(env_id: str, split: str, num_episodes: int, eps: float = 0.5, policy: str = "a3c") -> Path:
    """Where the book keeps a split: ``<data>/<game>_<policy>_<split>_<E>ep_eps_<eps>.h5``
    (e.g. ``pong_a3c_train_10000ep_eps_0_5.h5``, ``pong_track_ball_train_500ep_eps_0_5.h5``), so small
    and full collections, and collections by different policies, never overwrite each other."""
    from cswm_lib.utils import data_dir

    game = atari.game_info(env_id).game.replace("_", "")
    return data_dir() / f"{game}_{policy}_{split}_{num_episodes}ep_eps_{str(eps).replace('.', '_')}.h5"


def collect_splits(
    env_id: str,
    agent: str | os.PathLike,
    episodes: dict[str, int],
    seeds: dict[str, int],
    burnin: Sequence[int],
    eps: float = 0.5,
    num_steps: int = 10,
    policy: str = "a3c",
) -> dict[str, Path]:
    """Collect (or reuse) the splits of one game in the order of ``episodes`` (``{split: number of
    episodes}``, e.g. train, valid, test), each at :func:`split_path` with the seed of ``seeds``, the
    agent of folder ``agent`` and burn-ins in ``[burnin[0], burnin[1])``; every split checks its start
    states against the splits before it (``check_dup_paths``), so no two share one. ``policy`` other
    than ``"a3c"`` (see :data:`POLICIES`) plays the burn-in instead of the agent (``agent`` is then
    ignored). ``{split: path}``."""
    paths: dict[str, Path] = {}
    done: list[str] = []
    for split, n in episodes.items():
        cfg = CollectConfig(env_id=env_id, save_path=str(split_path(env_id, split, n, eps, policy)),
                            min_burnin=burnin[0], max_burnin=burnin[1], max_episodes=n,
                            num_steps=num_steps, eps=eps, seed=seeds[split], check_dup_paths=done,
                            agent=str(agent) if policy == "a3c" else None, policy=policy, progress=False)
        paths[split] = collect(cfg)
        done = [*done, str(paths[split])]
    return paths


def split_stats(
    paths: dict[str, str | os.PathLike], pairs: Sequence[tuple[str, str]] | None = None
) -> dict[str, dict[str, Any]]:
    """What collecting the splits ``{split: path}`` kept and dropped, and what the splits share.

    Per split: ``episodes`` kept, ``attempts`` started, the attempts ``dropped_<reason>`` for each
    of ``DROP_REASONS``, ``mean_burnin`` (steps) and ``distinct_starts`` (distinct start
    states in the split). Per pair ``(a, b)`` of ``pairs`` (default: every pair, in order), under
    the key ``"a-b"``: ``shared_start`` (start states in both) and ``shared_any`` (states anywhere
    in the episodes of both).
    """
    from itertools import combinations

    from cswm_lib.data.hdf5 import load_episodes

    data = {s: load_episodes(p) for s, p in paths.items()}
    out: dict[str, dict[str, Any]] = {}
    for s, e in data.items():
        out[s] = {"episodes": e.num_episodes, "attempts": int(e.attrs["attempts"])}
        out[s] |= {f"dropped_{r}": int(e.attrs[f"dropped_{r}"]) for r in DROP_REASONS}
        out[s] |= {"mean_burnin": float(e.attrs["mean_burnin"]),
                   "distinct_starts": shared_states(e.state_ids[:, 0], e.state_ids[:, 0])}
    for a, b in combinations(data, 2) if pairs is None else pairs:
        x, y = data[a].state_ids, data[b].state_ids
        out[f"{a}-{b}"] = {"shared_start": shared_states(x[:, 0], y[:, 0]), "shared_any": shared_states(x, y)}
    return out


def collection_attrs(cfg: CollectConfig) -> dict[str, Any]:
    """The parameters stored as HDF5 root attributes (and compared to reuse or resume)."""
    folder = cfg.agent_folder()
    agent_frames = -1 if folder is None else int(load_checkpoint(folder)["frames"])
    policy = "a3c" if folder is not None else cfg.policy if cfg.policy in STANDINS else "random"
    return dict(
        env_id=cfg.env_id, num_episodes=int(cfg.max_episodes), seed=int(cfg.seed), atari=True,
        save_state_ids=True, episode_length=int(cfg.num_steps), frame_stack="previous,current",
        state_id="ram",
        policy=policy, min_burnin=int(cfg.min_burnin),
        max_burnin=int(cfg.max_burnin), eps=float(cfg.eps), agent=str(folder) if folder else policy,
        agent_frames=agent_frames, check_dup_paths=";".join(str(p) for p in cfg.check_dup_paths),
        burnin_gru=cfg.burnin_gru if folder is not None else "none",
        collector_version=COLLECTOR_VERSION,
    )


def _same(have: dict[str, Any], want: dict[str, Any]) -> bool:
    return all(have.get(k) == v for k, v in want.items())


def collect(cfg: CollectConfig, overwrite: bool = False) -> Path:
    """Collect ``cfg.max_episodes`` episodes into ``cfg.save_path`` (reused when it already holds a
    collection with the same parameters and agent, unless ``overwrite``). Returns the path."""
    from cswm_lib.data.hdf5 import read_attrs, save_episodes

    cfg.validate()
    for p in cfg.check_dup_paths:
        other = read_attrs(p).get("env_id", cfg.env_id)
        if other != cfg.env_id:
            raise CswmError(f"--check-dup-paths file {p} holds {other} episodes, not {cfg.env_id}")
    path = Path(cfg.save_path)
    want = collection_attrs(cfg)
    if path.is_file() and not overwrite:
        try:
            have = read_attrs(path)
        except CswmError:
            have = None
        if have is None or have.get("format") != "cswm-book":
            raise CswmError(f"--save-path {path} exists and is not a dataset of ours; pass --overwrite to "
                            "replace it")
        if _same(have, want):
            return path
    folder = cfg.agent_folder()
    if folder is not None:
        policy = load_policy(folder, env_id=cfg.env_id)
    else:
        policy = make_standin(cfg.policy, cfg.env_id) if cfg.policy in STANDINS else None
    blacklist = start_state_blacklist(cfg.check_dup_paths, cfg.env_id)
    partial = path.with_name(path.name + ".partial.npz")
    episodes: list[tuple[np.ndarray, ...]] = []
    counts = dict.fromkeys(("attempts", *DROP_REASONS), 0)
    burnins: list[int] = []
    if partial.is_file():
        state = _load_partial(partial)
        if _same(state["attrs"], want):
            episodes = list(zip(state["frames"], state["actions"], state["rams"], strict=True))
            counts, burnins = state["counts"], list(state["burnins"])
    env = make_env(cfg.env_id)
    bar = None
    if cfg.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.max_episodes, initial=len(episodes), desc=f"collect {cfg.env_id}", unit="ep")
    torch.set_num_threads(1)  # batch-1 forward passes: threads only add overhead
    try:
        with interrupt_guard() as guard:
            while len(episodes) < cfg.max_episodes:
                attempt = counts["attempts"]
                rng = attempt_rng(cfg.seed, attempt)
                burnin = int(rng.integers(cfg.min_burnin, cfg.max_burnin))
                # the ALE without sticky actions is deterministic given the actions: seed the emulator once
                ep, reason = collect_episode(env, policy, cfg.env_id, rng, burnin, cfg.num_steps, cfg.eps,
                                             blacklist, reset_seed=cfg.seed if attempt == 0 else None,
                                             burnin_gru=cfg.burnin_gru)
                counts["attempts"] += 1
                if ep is None:
                    counts[reason] += 1
                    if counts["attempts"] > 100 * cfg.max_episodes + 1000:
                        raise CswmError(f"{cfg.env_id}: {counts['attempts']} attempts kept only "
                                        f"{len(episodes)} episodes (dropped: {counts}); check "
                                        "--min-burnin/--max-burnin and --check-dup-paths")
                    continue
                guard.check()  # a swallowed Ctrl-C
                episodes.append(ep)
                burnins.append(burnin)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(attempts=counts["attempts"], refresh=False)
                if len(episodes) % cfg.checkpoint_every == 0 and len(episodes) < cfg.max_episodes:
                    _save_partial(partial, episodes, counts, burnins, want)
    except KeyboardInterrupt:  # Ctrl-C: keep the episodes kept so far; the next run continues from them
        if episodes and len(episodes) < cfg.max_episodes:
            _save_partial(partial, episodes, counts, burnins, want)
        if bar is not None:
            bar.close()  # before the command's last line ("interrupted" / "terminated")
        raise
    env.close()
    if bar is not None:
        bar.close()
    frames, actions, rams = (np.stack(x) for x in zip(*episodes, strict=True))
    attrs = {**want, **{f"dropped_{k}": v for k, v in counts.items() if k != "attempts"},
             "attempts": counts["attempts"], "mean_burnin": float(np.mean(burnins))}
    save_episodes(Episodes(frames, actions, rams.astype(np.int64), attrs), path)
    partial.unlink(missing_ok=True)
    return path


def _save_partial(partial: Path, episodes, counts, burnins, attrs) -> None:
    frames, actions, rams = (np.stack(x) for x in zip(*episodes, strict=True))
    with atomic_path(partial) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, frames=frames, actions=actions, rams=rams, counts=np.array(json.dumps(counts)),
                 burnins=np.array(burnins), attrs=np.array(json.dumps(attrs)))


def _load_partial(partial: Path) -> dict[str, Any]:
    """The saved progress of an interrupted collection (arrays and JSON only: no pickles)."""
    try:
        with np.load(partial, allow_pickle=False) as z:
            state = {k: z[k] for k in ("frames", "actions", "rams", "burnins")}
            state["counts"], state["attrs"] = json.loads(str(z["counts"])), json.loads(str(z["attrs"]))
    except Exception as err:  # any reason the file cannot be read safely
        raise CswmError(f"{partial} is not a valid partial collection ({type(err).__name__}); delete it to "
                        "start over") from None
    return state


def _parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m cswm_lib.a3c.collect", description=__doc__.split("\n")[0])
    p.add_argument("env_id", help="PongDeterministic-v4 or SpaceInvadersDeterministic-v4")
    p.add_argument("--min-burnin", type=int, default=58)
    p.add_argument("--max-burnin", type=int, default=100, help="exclusive")
    p.add_argument("--max-episodes", type=int, default=1000)
    p.add_argument("--num-steps", type=int, default=10)
    p.add_argument("--save-path", required=True)
    p.add_argument("--check-dup-paths", nargs="*", default=[])
    p.add_argument("--eps", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--burnin-gru", choices=BURNIN_GRU, default="reset",
                   help="agent's GRU state during burn-in: reset (published, memoryless) or carry (fixed)")
    p.add_argument("--agent", default=None, help="A3C folder (default checkpoints/a3c/<env>), or 'random'")
    p.add_argument("--policy", default="a3c",
                   help=f"who plays the burn-in: {', '.join(POLICIES)} (a3c = the agent of --agent, "
                        "published; the others are stand-ins of cswm_lib.a3c.standin)")
    p.add_argument("--checkpoint-every", type=int, default=500, help="kept episodes between partial saves")
    p.add_argument("--overwrite", action="store_true", help="collect again even if the file matches")
    return p


@cli_errors
def main(argv: list[str] | None = None) -> Path:
    args = vars(_parser().parse_args(argv))
    overwrite = args.pop("overwrite")
    path = collect(CollectConfig(**args), overwrite=overwrite)
    print(path)
    return path


if __name__ == "__main__":
    from cswm_lib.a3c.collect import main as package_main  # the package's copy: workers pickle by its path

    package_main()
