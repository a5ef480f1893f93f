"""Benchmark: embedding-explorer interaction latency on 1000-episode eval sets -- blitting vs redrawing.

The original C-SWM code has no explorer, so the comparison is with the two straightforward ways to
refresh a matplotlib figure from an ipywidgets callback, on the same precomputed data and panels:

* ``ours``: update the artists' data, restore the cached static background, draw only the changing
  artists (Agg blitting), encode the PNG the ``ipywidgets.Image`` shows;
* ``full draw``: update the same artists, then ``canvas.draw()`` the whole figure + PNG;
* ``new figure``: build a fresh figure with the same panels each time (what an ``interact`` callback
  that calls ``plt.subplots`` does) + ``savefig`` PNG.

Each interaction moves the episode or the step slider (alternately, random values); we report the
median and 90th percentile in ms, and the one-off precomputation. Models are untrained C-SWMs with
the paper's sizes (hidden 512, K = 5, 20 actions): the latency does not depend on the weights.

    .venv/bin/python benchmarks/bench_widgets.py            # 1000 x 10 steps and 1000 x 100 steps
    .venv/bin/python benchmarks/bench_widgets.py --quick    # 1000 x 10 only

Writes ``benchmarks/results/bench_widgets.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from cswm_lib.data.generate import readme_dataset  # noqa: E402
from cswm_lib.data.hdf5 import load_episodes  # noqa: E402
from cswm_lib.model import CSWM, ModelConfig  # noqa: E402
from cswm_lib.widgets import EmbeddingExplorer  # noqa: E402


def model(seed: int, D: int) -> CSWM:
    torch.manual_seed(seed)
    return CSWM(ModelConfig(embedding_dim=D, num_objects=5, hidden_dim=512))


def moves(n: int, E: int, T: int, seed: int = 0) -> list[tuple[str, int]]:
    rng = np.random.default_rng(seed)
    return [("episode", int(rng.integers(E))) if i % 2 == 0 else ("step", int(rng.integers(T + 1)))
            for i in range(n)]


def time_ours(ex: EmbeddingExplorer, plan: list[tuple[str, int]]) -> list[float]:
    sliders, out = ex.sliders, []
    for name, value in plan:
        t0 = time.perf_counter()
        sliders[name].value = value
        out.append(time.perf_counter() - t0)
    return out


def time_full_draw(ex: EmbeddingExplorer, plan: list[tuple[str, int]]) -> list[float]:
    from PIL import Image

    fig, out = ex.figure, []
    for a in ex._dynamic:
        a.set_animated(False)
    try:
        for name, value in plan:
            t0 = time.perf_counter()
            ex._episode, ex._step = (value, ex._step) if name == "episode" else (ex._episode, value)
            ex._fill(ex._obs_artists, ex.rows, ex._episode, ex._step)
            fig.canvas.draw()
            rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3]
            Image.fromarray(rgb).save(io.BytesIO(), format="png", compress_level=1)
            out.append(time.perf_counter() - t0)
    finally:
        for a in ex._dynamic:
            a.set_animated(True)
    return out


def time_new_figure(ex: EmbeddingExplorer, plan: list[tuple[str, int]]) -> list[float]:
    e, t, out = 0, 0, []
    for name, value in plan:
        t0 = time.perf_counter()
        e, t = (value, t) if name == "episode" else (e, value)
        fig = ex.plot(e, t)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=ex.dpi)
        plt.close(fig)
        out.append(time.perf_counter() - t0)
    return out


def stats(xs: list[float]) -> dict[str, float]:
    return {"median_ms": 1e3 * float(np.median(xs)), "p90_ms": 1e3 * float(np.percentile(xs, 90))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="only the 1000 x 10-step eval set")
    p.add_argument("--interactions", type=int, default=30)
    a = p.parse_args()
    sets = [("shapes_eval", 10)] + ([] if a.quick else [("shapes_train", 1)])  # (README name, divisor)
    rows = []
    for name, divisor in sets:
        eps = load_episodes(readme_dataset(name, divisor, progress=False))
        E, T = eps.num_episodes, eps.episode_length
        for D, two in [(2, False), (4, False), (2, True)]:
            t0 = time.perf_counter()
            ex = EmbeddingExplorer(model(0, D), eps, other=model(1, D) if two else None, progress=False)
            pre = time.perf_counter() - t0
            plan = moves(a.interactions, E, T)
            ex.sliders  # noqa: B018 -- build the widget (first render) outside the timing
            r = {"dataset": f"{name} ({E} x {T} steps)", "states": E * (T + 1), "D": D,
                 "models": 2 if two else 1, "precompute_s": pre,
                 "ours": stats(time_ours(ex, plan)), "full_draw": stats(time_full_draw(ex, plan)),
                 "new_figure": stats(time_new_figure(ex, plan[: max(6, a.interactions // 3)]))}
            rows.append(r)
            print(f"{r['dataset']:28s} D={D} models={r['models']}  precompute {pre:5.1f} s   median ms: "
                  f"ours {r['ours']['median_ms']:6.1f}  full draw {r['full_draw']['median_ms']:6.1f}  "
                  f"new figure {r['new_figure']['median_ms']:6.1f}   (new figure / ours "
                  f"{r['new_figure']['median_ms'] / r['ours']['median_ms']:.1f}x)", flush=True)
    out = Path(__file__).parent / "results" / "bench_widgets.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                           "load_avg_1min": os.getloadavg()[0], "torch": torch.__version__},
                               "interactions": a.interactions, "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
