"""Random-policy datasets, as the paper's data generator made them (``python -m cswm_lib.data.generate``).

    python -m cswm_lib.data.generate --env-id ShapesImmovableTrain-v0 --fname data/shapes_imm_train.h5 \
        --num-episodes 1000 --seed 1 [--atari] [--save-state-ids]

Every episode ``e`` gets its own seeds derived from ``(seed, e)`` (env reset seed and the random
agent's generator), so the file does not depend on how many worker processes made it and the same
seed gives byte-identical arrays. Episodes are generated in chunks by a process pool and written
in order into a temporary file that is renamed onto ``fname`` only when complete (Ctrl-C leaves the
old file and no partial one). Before any work, ``fname`` is checked: it must be a regular file in an
existing, writable folder with room for the estimated size (printed for runs over 1 GiB), and an
existing file that is not one of our datasets is replaced only with ``--overwrite``.
"""

from __future__ import annotations

import argparse
import contextlib
import numbers
import os
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from cswm_lib import checks
from cswm_lib.data.hdf5 import COMPRESSION, FORMAT_VERSION, EpisodeWriter, read_attrs
from cswm_lib.envs import ATARI_IDS, check_env_id
from cswm_lib.envs import atari as atari_lib
from cswm_lib.envs import block_pushing as bp
from cswm_lib.errors import CswmError
from cswm_lib.utils import ArgumentParser, cli_errors, data_dir, interrupt_guard, process_map

#: The datasets of the original READMEs at full size (the chapters shrink them), that is C-SWM's shapes,
#: cubes, pong and spaceinvaders, and the negative-sampling fork's immovable worlds and eval files with ids.
README_DATASETS: dict[str, dict] = {
    "shapes_train": dict(env_id="ShapesTrain-v0", num_episodes=1000, seed=1),
    "shapes_eval": dict(env_id="ShapesEval-v0", num_episodes=10000, seed=2),
    "cubes_train": dict(env_id="CubesTrain-v0", num_episodes=1000, seed=3),
    "cubes_eval": dict(env_id="CubesEval-v0", num_episodes=10000, seed=4),
    "pong_train": dict(env_id="PongDeterministic-v4", num_episodes=1000, seed=1, atari=True),
    "pong_eval": dict(env_id="PongDeterministic-v4", num_episodes=100, seed=2, atari=True,
                      save_state_ids=True),
    "spaceinvaders_train": dict(env_id="SpaceInvadersDeterministic-v4", num_episodes=1000, seed=1,
                                atari=True),
    "spaceinvaders_eval": dict(env_id="SpaceInvadersDeterministic-v4", num_episodes=100, seed=2,
                               atari=True, save_state_ids=True),
    "shapes_imm_train": dict(env_id="ShapesImmovableTrain-v0", num_episodes=1000, seed=1),
    "shapes_imm_eval": dict(env_id="ShapesImmovableEval-v0", num_episodes=10000, seed=2, save_state_ids=True),
    "cubes_imm_train": dict(env_id="CubesImmovableTrain-v0", num_episodes=1000, seed=3),
    "cubes_imm_eval": dict(env_id="CubesImmovableEval-v0", num_episodes=10000, seed=4, save_state_ids=True),
}

GENERATOR_VERSION = 1  # bump when the generated data would change for the same parameters
ATARI_STEPS = 10  # recorded transitions per Atari episode


def episode_seeds(seed: int, episode: int) -> tuple[int, np.random.Generator]:
    """(env reset seed, random-agent generator) of episode ``episode`` -- a function of both only."""
    ss = np.random.SeedSequence(entropy=seed, spawn_key=(episode,))
    return int(ss.generate_state(1)[0]), np.random.default_rng(ss)


def dataset_attrs(env_id: str, num_episodes: int, seed: int, atari: bool = False,
                  save_state_ids: bool = False, warmup: int | None = None,
                  shape_rule: str | None = None) -> dict[str, Any]:
    """The HDF5 root attributes describing a generated dataset (also what :func:`ensure_dataset` compares).

    ``shape_rule`` (Shapes ids only; default the published ``"skimage-0.15"``): which pixels the
    shapes cover, see :data:`cswm_lib.envs.block_pushing.SHAPE_RULES`. It is recorded in the file,
    so a Shapes file written before the rule existed (current-scikit-image pixels) is regenerated."""
    check_env_id(env_id)
    is_atari = env_id in ATARI_IDS
    if atari != is_atari:
        hint = "pass --atari (atari=True)" if is_atari else "drop --atari (atari=False)"
        raise CswmError(f"env id {env_id!r} {'is' if is_atari else 'is not'} an Atari game: {hint}")
    if int(num_episodes) < 1:
        raise CswmError(f"--num-episodes must be >= 1, got {num_episodes}")
    checks.seed(seed, "--seed")
    if warmup is not None and not is_atari:
        raise CswmError(f"--warmup applies to Atari ids only (no-op steps before the recorded frames), "
                        f"not {env_id!r}")
    if warmup is not None and (isinstance(warmup, bool) or not isinstance(warmup, numbers.Integral)
                               or not 0 <= warmup <= 100_000):
        raise CswmError(f"--warmup must be a whole number in 0..100000, got {warmup!r}")
    attrs: dict[str, Any] = dict(
        env_id=env_id, num_episodes=int(num_episodes), seed=int(seed), atari=bool(atari),
        save_state_ids=bool(save_state_ids), format_version=FORMAT_VERSION,
        generator_version=GENERATOR_VERSION, policy="random",
    )
    if is_atari:
        game = atari_lib.game_info(env_id)
        attrs.update(episode_length=ATARI_STEPS, warmup=int(game.warmup if warmup is None else warmup),
                     frame_stack="previous,current", state_id="ram")
    else:
        attrs.update(episode_length=int(gym.spec(env_id).max_episode_steps), state_id="positions")
    if env_id.startswith("Shapes"):
        attrs["shape_rule"] = bp.check_shape_rule(shape_rule or bp.DEFAULT_SHAPE_RULE)
    elif shape_rule is not None:
        raise CswmError(f"shape_rule applies to Shapes ids only, not {env_id!r}")
    return attrs


# ------------------------------------------------------------------------- worker side
_ENVS: dict[str, gym.Env] = {}
_SEEDED: set[str] = set()


def _env(env_id: str) -> gym.Env:
    if env_id not in _ENVS:
        _ENVS[env_id] = gym.make(env_id, disable_env_checker=True)
    return _ENVS[env_id]


def _block_pushing_chunk(attrs: dict[str, Any], start: int, stop: int) -> tuple[np.ndarray, ...]:
    env: bp.BlockPushing = _env(attrs["env_id"]).unwrapped
    T, n_act = attrs["episode_length"], env.action_space.n
    positions = np.empty((stop - start, T + 1, env.num_objects, 2), dtype=np.int64)
    actions = np.empty((stop - start, T), dtype=np.int64)
    for i, e in enumerate(range(start, stop)):
        env_seed, rng = episode_seeds(attrs["seed"], e)
        env.reset(seed=env_seed)
        actions[i] = rng.integers(n_act, size=T)
        positions[i, 0] = env.positions
        for t, a in enumerate(actions[i]):
            env.move(a)
            positions[i, t + 1] = env.positions
    if "shape_rule" in attrs:
        env.shape_rule = attrs["shape_rule"]
    frames = env.render_positions(positions)
    return frames, actions, positions.reshape(stop - start, T + 1, -1)


def _atari_chunk(attrs: dict[str, Any], start: int, stop: int) -> tuple[np.ndarray, ...]:
    env = _env(attrs["env_id"])
    frames, actions, rams = [], [], []
    for e in range(start, stop):
        for attempt in range(100):  # an episode whose game ends early is redrawn with new seeds
            env_seed, rng = episode_seeds(attrs["seed"], e + attempt * 2**31)
            # the ALE without sticky actions is deterministic given the actions: seed once per process
            reset_seed = None if attrs["env_id"] in _SEEDED else env_seed
            _SEEDED.add(attrs["env_id"])
            ep = atari_lib.random_episode(env, attrs["env_id"], rng, reset_seed, attrs["episode_length"],
                                          attrs["warmup"])
            if ep is not None:
                break
        else:
            raise CswmError(f"{attrs['env_id']}: 100 attempts at episode {e} all ended early")
        frames.append(ep[0])
        actions.append(ep[1])
        rams.append(ep[2])
    return np.stack(frames), np.stack(actions), np.stack(rams).astype(np.int64)


def _chunk(job: tuple[dict[str, Any], int, int]) -> tuple[int, tuple[np.ndarray, ...]]:
    attrs, start, stop = job
    fn = _atari_chunk if attrs["atari"] else _block_pushing_chunk
    return start, fn(attrs, start, stop)


# ------------------------------------------------------------------------- driver
def generate(env_id: str, fname: str | os.PathLike, num_episodes: int, seed: int, atari: bool = False,
             save_state_ids: bool = False, num_workers: int | None = None, warmup: int | None = None,
             progress: bool = True, compression: str | None = COMPRESSION,
             shape_rule: str | None = None, overwrite: bool = False) -> Path:
    """Generate ``num_episodes`` random-policy episodes of ``env_id`` into ``fname`` (format v1).

    ``num_workers``: processes (default: up to 4 CPU cores, 1 for small jobs). ``shape_rule``: see
    :func:`dataset_attrs`. ``fname``'s folder must exist; an existing file there is replaced only if
    it is one of our datasets or ``overwrite`` is true (see :func:`check_output`). Returns the path.
    """
    attrs = dataset_attrs(env_id, num_episodes, seed, atari, save_state_ids, warmup, shape_rule)
    E, T = attrs["num_episodes"], attrs["episode_length"]
    check_output(fname, overwrite, estimate_bytes(E, T, atari, save_state_ids, compression))
    steps_per_chunk = 500 if atari else 2000
    chunk = max(1, min(steps_per_chunk // T, -(-E // 8)))
    jobs = [(attrs, s, min(s + chunk, E)) for s in range(0, E, chunk)]
    if num_workers is None:
        work = E * T * (50 if atari else (5 if env_id.startswith("Cubes") else 1))
        num_workers = 1 if work < 20_000 else min(4, os.cpu_count() or 1)
    num_workers = max(1, min(int(num_workers), len(jobs)))
    if attrs["env_id"].startswith("Cubes"):
        bp.cube_sprites()  # render the cube layers once, before forking
    obs_shape = (6 if atari else 3, atari_lib.IMG, atari_lib.IMG)
    state_dim = (128 if atari else 2 * bp.NUM_OBJECTS) if save_state_ids else None
    bar = tqdm(total=E, desc=f"generating {Path(fname).name}", unit="ep", disable=not progress)
    try:
        _write(jobs, fname, E, T, obs_shape, state_dim, attrs, compression, num_workers, save_state_ids, bar)
    except OSError as err:  # e.g. the disk filled up after all: the old file is untouched, no .tmp left
        raise CswmError(f"writing {fname} failed: {err.strerror or str(err).splitlines()[0]}") from None
    return Path(fname)


def _write(jobs, fname, E, T, obs_shape, state_dim, attrs, compression, num_workers, save_state_ids, bar):
    # chunks in order: in this process, or from worker processes (killed at once on Ctrl-C or an error)
    chunks = process_map(_chunk, jobs, num_workers) if num_workers > 1 else (_chunk(job) for job in jobs)
    with interrupt_guard() as guard, contextlib.closing(chunks) as results, \
            EpisodeWriter(fname, E, T, obs_shape, state_dim, attrs, compression) as writer:
        try:
            for start, (frames, actions, ids) in results:
                writer.write(start, frames, actions, ids if save_state_ids else None)
                bar.update(len(frames))
                # a Ctrl-C swallowed on the way (Python ignores exceptions raised in weakref callbacks, and
                # h5py runs some) stops the run here, at the next chunk, not after the last one
                guard.check()
            guard.check()  # and the old file stays in place
        finally:
            bar.close()
    return Path(fname)


def estimate_bytes(num_episodes: int, episode_length: int, atari: bool, save_state_ids: bool,
                   compression: str | None = COMPRESSION) -> tuple[int, int]:
    """(likely, at most) size in bytes of a generated file: at most = the uncompressed arrays; likely =
    an eighth of that, on the safe side of gzip level 1 on these frames (small files compressed 32x
    for Shapes, 10x for Cubes and 28x for Pong)."""
    E, T = int(num_episodes), int(episode_length)
    frames = E * (T + 1) * (6 if atari else 3) * atari_lib.IMG * atari_lib.IMG
    ids = E * (T + 1) * (128 if atari else 2 * bp.NUM_OBJECTS) * 8 if save_state_ids else 0
    most = frames + ids + E * T * 8 + 64 * 1024
    return (most if compression is None else most // 8), most


def check_output(fname: str | os.PathLike, overwrite: bool, size: tuple[int, int], show: bool = True) -> None:
    """One-line errors before any work: ``fname`` must be (or become) a regular file in a writable
    folder with room for the data; an existing file that is not one of our datasets is replaced only
    with ``overwrite``."""
    import shutil

    from cswm_lib.data.hdf5 import is_our_dataset
    from cswm_lib.paths import output_file

    path = output_file(fname, "--fname", ours=is_our_dataset, overwrite=overwrite,
                       foreign="a dataset of ours")
    parent = path.parent if str(path.parent) else Path(".")
    likely, most = size
    free = shutil.disk_usage(parent).free
    if show and most > 2**30:
        print(f"estimated size of {path.name}: about {likely / 2**20:,.0f} MiB (at most {most / 2**20:,.0f} "
              f"MiB uncompressed); {free / 2**20:,.0f} MiB free", file=sys.stderr)
    if free < likely * 1.2:
        raise CswmError(f"not enough free disk space for {path}: about {likely / 2**20:,.0f} MiB needed, "
                        f"{free / 2**20:,.0f} MiB free in {parent}")


def ensure_dataset(env_id: str, fname: str | os.PathLike, num_episodes: int, seed: int, atari: bool = False,
                   save_state_ids: bool = False, warmup: int | None = None, shape_rule: str | None = None,
                   **kwargs: Any) -> Path:
    """Return ``fname``, generating it first unless it exists with exactly these parameters.

    Parameters are compared with the file's HDF5 root attributes; ``kwargs`` (``num_workers``,
    ``progress``, ...) go to :func:`generate` and do not change the data.
    """
    wanted = dataset_attrs(env_id, num_episodes, seed, atari, save_state_ids, warmup, shape_rule)
    path = Path(fname)
    if path.exists():
        try:
            have = read_attrs(path)
        except CswmError:
            have = {}
        if all(have.get(k) == v for k, v in wanted.items()):
            return path
    path.parent.mkdir(parents=True, exist_ok=True)
    kwargs.setdefault("overwrite", True)  # the path is ensure_dataset's to manage: a foreign file is replaced
    return generate(env_id, path, num_episodes, seed, atari, save_state_ids, warmup=warmup,
                    shape_rule=shape_rule, **kwargs)


def readme_dataset(name: str, divisor: int = 1, min_episodes: int = 2, episodes: int | None = None,
                   **kwargs: Any) -> Path:
    """Ensure one of :data:`README_DATASETS` exists in ``data_dir()`` and return its path.

    ``divisor`` > 1 makes a reduced copy with ``num_episodes // divisor`` episodes (at least
    ``min_episodes``, at most the README size),
    named ``<name>_div<divisor>.h5`` so it never overwrites the full-size ``<name>.h5``.
    ``episodes`` (instead of a divisor) asks for exactly that many, more than the README's too:
    ``<name>_n<episodes>.h5``. Every episode's seeds depend on (seed, episode) only, so a larger
    set begins with the README's episodes, byte for byte.
    """
    if name not in README_DATASETS:
        raise CswmError(f"unknown dataset {name!r}: expected one of {', '.join(README_DATASETS)}")
    if int(divisor) < 1:
        raise CswmError(f"divisor must be >= 1, got {divisor}")
    spec = dict(README_DATASETS[name])
    readme_size = spec["num_episodes"]
    if episodes is not None:
        checks.integer(episodes, "episodes", 1)
        if int(divisor) != 1:
            raise CswmError(f"give a divisor or a number of episodes for {name}, not both")
    if episodes is not None and int(episodes) != readme_size:
        spec["num_episodes"] = int(episodes)
        path = data_dir() / f"{name}_n{int(episodes)}.h5"
    else:
        spec["num_episodes"] = min(readme_size, max(min_episodes, readme_size // int(divisor)))
        path = data_dir() / (f"{name}.h5" if divisor == 1 else f"{name}_div{divisor}.h5")
    return ensure_dataset(fname=path, **spec, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m cswm_lib.data.generate", description=__doc__.splitlines()[0])
    p.add_argument("--env-id", required=True, help="e.g. ShapesTrain-v0, PongDeterministic-v4")
    p.add_argument("--fname", required=True, help="output HDF5 file")
    p.add_argument("--num-episodes", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--atari", action="store_true", help="Atari preprocessing (required for Atari ids)")
    p.add_argument("--save-state-ids", action="store_true", help="also store ground-truth state ids")
    p.add_argument("--warmup", type=int, default=None, help="Atari warm-up steps (58 Pong, 50 SI)")
    p.add_argument("--shape-rule", choices=bp.SHAPE_RULES, default=None,
                   help=f"Shapes pixels (default {bp.DEFAULT_SHAPE_RULE}, as the paper's data)")
    p.add_argument("--num-workers", type=int, default=None, help="processes (default: automatic)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file that is not a dataset")
    p.add_argument("--no-progress", action="store_true")
    return p


@cli_errors
def main(argv: list[str] | None = None) -> None:
    a = build_parser().parse_args(argv)
    if a.num_workers is not None and a.num_workers < 1:
        raise CswmError(f"--num-workers must be >= 1, got {a.num_workers}")
    path = generate(a.env_id, a.fname, a.num_episodes, a.seed, a.atari, a.save_state_ids,
                    num_workers=a.num_workers, warmup=a.warmup, progress=not a.no_progress,
                    shape_rule=a.shape_rule, overwrite=a.overwrite)
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
