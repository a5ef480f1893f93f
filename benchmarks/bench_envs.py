"""Environment and dataset benchmark: env steps/s and bytes on disk per transition.

    .venv/bin/python benchmarks/bench_envs.py [--steps 3000] [--mpl-steps 200] [--episodes 100]

Side by side on this machine:
- Shapes: our env (sprites pasted per frame) vs a re-implementation of the original's approach
  (a fresh float32 image per step, each shape rasterised from its geometry as scikit-image does).
- Cubes: our env (pre-rendered cube layers) vs the original's approach (one matplotlib 3D figure
  per frame, cropped and resized) -- `render_cubes_matplotlib`.
- Atari: raw env steps/s, and with the paper's preprocessing (crop, resize, RAM read).
- Datasets: bytes on disk per transition for format v1 (gzip-1 and lzf) vs the original float layout
  (computed from the array shapes and dtypes), and write/load throughput.
Anchors (original code on a machine like ours, ``benchmarks/README.md``): ~3,300 Shapes and ~25 Cubes
steps/s; 1.2 GB per 20k Shapes transitions. Absolute numbers drift +-25 % on shared machines: compare the
ratios measured side by side.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cswm_lib.envs  # noqa: F401,E402  (registers the ids)
from cswm_lib.data.generate import generate  # noqa: E402
from cswm_lib.data.hdf5 import load_episodes  # noqa: E402
from cswm_lib.envs import atari  # noqa: E402
from cswm_lib.envs import block_pushing as bp  # noqa: E402
from cswm_lib.utils import write_json  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "bench_envs.json"


# ------------------------------------------------------------------ the original's approach, re-implemented
def _disk(r0: float, c0: float, radius: float, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    rr, cc = np.mgrid[: shape[0], : shape[1]]
    inside = (rr - r0) ** 2 + (cc - c0) ** 2 < radius**2
    return np.nonzero(inside)


def _polygon(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Rasterise a triangle by point-in-triangle tests over its bounding box (like skimage.draw.polygon)."""
    r0, r1 = int(rows.min()), int(min(rows.max(), shape[0] - 1))
    c0, c1 = int(cols.min()), int(min(cols.max(), shape[1] - 1))
    rr, cc = np.mgrid[r0 : r1 + 1, c0 : c1 + 1]
    (ay, by, cy), (ax, bx, cx) = rows, cols
    d1 = (rr - by) * (ax - bx) - (cc - bx) * (ay - by)
    d2 = (rr - cy) * (bx - cx) - (cc - cx) * (by - cy)
    d3 = (rr - ay) * (cx - ax) - (cc - ax) * (cy - ay)
    inside = ~(((d1 < 0) | (d2 < 0) | (d3 < 0)) & ((d1 > 0) | (d2 > 0) | (d3 > 0)))
    return rr[inside], cc[inside]


class OriginalShapesEnv:
    """Per-step dynamics + per-frame drawing, the way the original block-pushing env worked."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.colors = bp.SET1.astype(np.float32) / 255.0
        self.reset()

    def reset(self) -> None:
        self.pos = np.zeros((5, 2), dtype=np.int64)
        for k in range(5):  # one by one, resampling until free (as the original)
            while True:
                p = self.rng.integers(5, size=2)
                if not (self.pos[:k] == p).all(1).any():
                    self.pos[k] = p
                    break

    def render(self) -> np.ndarray:
        im = np.zeros((50, 50, 3), dtype=np.float32)
        for k, (r, c) in enumerate(self.pos):
            if k % 3 == 0:
                rr, cc = _disk(r * 10 + 5, c * 10 + 5, 5, im.shape[:2])
            elif k % 3 == 1:
                rr, cc = _polygon(np.array([r * 10, r * 10 + 10, r * 10 + 10]),
                                  np.array([c * 10 + 5, c * 10, c * 10 + 10]), im.shape[:2])
            else:
                rr, cc = np.mgrid[r * 10 : min(r * 10 + 11, 50), c * 10 : min(c * 10 + 11, 50)]
                rr, cc = rr.ravel(), cc.ravel()
            im[rr, cc] = self.colors[k]
        return im.transpose(2, 0, 1)

    def step(self, action: int) -> np.ndarray:
        obj, d = divmod(int(action), 4)
        target = self.pos[obj] + bp.DIRECTIONS[d]
        if (0 <= target).all() and (target < 5).all() and not (self.pos == target).all(1).any():
            self.pos[obj] = target
        return self.render()


# ------------------------------------------------------------------ measurements
def rate(fn, n: int) -> float:
    t0 = time.perf_counter()
    fn(n)
    return n / (time.perf_counter() - t0)


def env_rate(env_id: str, n: int, preprocess: bool = False) -> float:
    env = gym.make(env_id, disable_env_checker=True)
    env.reset(seed=0)
    acts = np.random.default_rng(0).integers(env.action_space.n, size=n)

    def run(_: int) -> None:
        for a in acts:
            obs, _, term, trunc, _ = env.step(int(a))
            if preprocess:
                atari.preprocess_frame(obs, env_id)
                atari.get_ram(env)
            if term or trunc:
                env.reset()

    return rate(run, n)


def original_shapes_rate(n: int) -> float:
    env = OriginalShapesEnv()
    acts = np.random.default_rng(0).integers(20, size=n)

    def run(_: int) -> None:
        for t, a in enumerate(acts):
            env.step(a)
            if t % 100 == 99:
                env.reset()

    return rate(run, n)


def original_cubes_rate(n: int) -> float:
    env = bp.BlockPushing("cubes")
    env.reset(seed=0)
    acts = np.random.default_rng(0).integers(20, size=n)

    def run(_: int) -> None:
        for a in acts:
            env.move(a)
            bp.render_cubes_matplotlib(env.positions)

    return rate(run, n)


def dataset_sizes(episodes: int, folder: Path) -> list[dict]:
    rows = []
    cases = [("ShapesTrain-v0", episodes, False, 3, 4), ("CubesTrain-v0", episodes, False, 3, 8),
             ("PongDeterministic-v4", episodes, True, 6, 8)]
    for env_id, n, is_atari, channels, itemsize in cases:
        for compression in ("gzip", "lzf"):
            path = folder / f"{env_id}_{compression}.h5"
            t0 = time.perf_counter()
            generate(env_id, path, n, seed=1, atari=is_atari, num_workers=1, progress=False,
                     compression=compression)
            gen_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            ep = load_episodes(path)
            load_s = time.perf_counter() - t0
            transitions = ep.num_transitions
            ours = path.stat().st_size / transitions
            original = 2 * channels * 50 * 50 * itemsize + 8  # float obs + next_obs + int64 action
            rows.append(dict(env_id=env_id, compression=compression, transitions=transitions,
                             ours_bytes_per_transition=ours, original_bytes_per_transition=original,
                             size_ratio=original / ours, generate_transitions_per_s=transitions / gen_s,
                             load_transitions_per_s=transitions / load_s))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=3000, help="env steps per fast measurement")
    p.add_argument("--mpl-steps", type=int, default=200, help="steps, per-frame matplotlib Cubes baseline")
    p.add_argument("--episodes", type=int, default=100, help="episodes per dataset-size measurement")
    a = p.parse_args()

    bp.cube_sprites()  # one-off (~2 s), not part of the per-step cost
    res: dict = {}
    res["shapes_ours"] = env_rate("ShapesTrain-v0", a.steps)
    res["shapes_original_approach"] = original_shapes_rate(a.steps)
    res["cubes_ours"] = env_rate("CubesTrain-v0", a.steps)
    res["cubes_original_approach"] = original_cubes_rate(a.mpl_steps)
    for env_id in atari.ATARI_IDS:
        res[f"{env_id}_raw"] = env_rate(env_id, a.steps)
        res[f"{env_id}_preprocessed"] = env_rate(env_id, a.steps, preprocess=True)
    print(f"\n{'environment steps/s':40s} {'ours':>10s} {'original approach':>18s} {'ratio':>7s}")
    for world in ("shapes", "cubes"):
        ours, orig = res[f"{world}_ours"], res[f"{world}_original_approach"]
        print(f"{world:40s} {ours:10,.0f} {orig:18,.0f} {ours / orig:6.0f}x")
    for env_id in atari.ATARI_IDS:
        print(f"{env_id + ' (raw / preprocessed)':40s} {res[env_id + '_raw']:10,.0f} "
              f"{res[env_id + '_preprocessed']:18,.0f}")

    with tempfile.TemporaryDirectory() as tmp:
        rows = dataset_sizes(a.episodes, Path(tmp))
    print(f"\n{'dataset':22s} {'comp':5s} {'B/transition':>12s} {'original':>9s} {'ratio':>6s} "
          f"{'gen tr/s':>9s} {'load tr/s':>10s}")
    for r in rows:
        print(f"{r['env_id']:22s} {r['compression']:5s} {r['ours_bytes_per_transition']:12,.0f} "
              f"{r['original_bytes_per_transition']:9,d} {r['size_ratio']:5.0f}x "
              f"{r['generate_transitions_per_s']:9,.0f} {r['load_transitions_per_s']:10,.0f}")
    print("\nanchors (original code, benchmarks/README.md): Shapes ~3,300 steps/s, Cubes ~25 steps/s, "
          "1.2 GB per 20k Shapes transitions (60 kB each)")
    write_json(RESULTS, {"env_steps_per_s": res, "datasets": rows, "args": vars(a)})
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
