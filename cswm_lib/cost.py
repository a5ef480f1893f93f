"""What the paper-scale sweeps cost, and how they fan out over an executor (:mod:`cswm_lib.executor`).

:func:`full_sweeps` reads the ``full`` parameter file into one :class:`Sweep` per (section, dataset):
how many runs (strategies x seeds), how many optimizer updates each. :func:`update_cost` measures
one training update of a model at batch ``B`` on this machine's CPU (CPU seconds of this process,
``time.process_time``, one torch thread: time the process waited for a core on a shared machine is
not counted, so the load inflates it far less than wall time) and
counts its floating-point operations with torch's ``FlopCounterMode``; both scale linearly with the
batch, so small batches are measured and the result is scaled to the run's batch. :func:`cost_table`
turns that into CPU-hours and GPU-hours per sweep, with the GPU's throughput and utilisation stated
as assumptions, and :func:`cost_markdown` prints it::

    rows = cost_table(full_sweeps(), gpu_tflops=60.0, utilisation=0.3)
    print(cost_markdown(rows))

The A3C agents of Sec. 4.3 (CPU work: environments and batch-1 forward passes) are
:func:`a3c_cost`: frames per second of one worker measured here, times the frame budget.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from cswm_lib.data.generate import ATARI_STEPS, README_DATASETS
from cswm_lib.experiments import readme_model
from cswm_lib.model import CSWM, ModelConfig
from cswm_lib.utils import project_root, torch_threads

#: The observation shape of each dataset kind -- block pushing renders RGB 50x50, Atari stacks
#: two 50x50 frames.
OBS_SHAPE = {"block_pushing": (3, 50, 50), "atari": (6, 50, 50)}


@dataclass
class Sweep:
    """The training runs of one (section, dataset) at some scale: ``len(strategies) x len(seeds)``
    runs of ``updates`` optimizer updates of batch ``batch_size``."""

    experiment: str
    dataset: str
    model: dict[str, Any]
    strategies: dict[str, dict[str, Any]]
    seeds: list[int]
    batch_size: int
    updates: int
    transitions: int
    obs_shape: tuple[int, int, int]
    before: list[str] = field(default_factory=list)  # jobs that must finish first (4.3: agent, collection)

    @property
    def runs(self) -> int:
        return len(self.strategies) * len(self.seeds)


def transitions(name: str) -> int:
    """Transitions of a README dataset: episodes x steps (Train 100, Eval 10, Atari 10)."""
    spec = README_DATASETS[name]
    steps = ATARI_STEPS if spec.get("atari") else (100 if "Train" in spec["env_id"] else 10)
    return spec["num_episodes"] * steps


def _updates(epochs: int | None, num_updates: int | None, n: int, batch: int) -> int:
    return int(num_updates) if num_updates else int(epochs) * -(-n // batch)


def full_sweeps(params_file: str | Path | None = None) -> list[Sweep]:
    """The training sweeps of chapters 08 (4.1), 09 (4.2) and 10 (4.3) in a parameter file
    (default: ``book/params/full.yaml``)."""
    path = Path(params_file or project_root() / "book" / "params" / "full.yaml")
    chapters = yaml.safe_load(path.read_text())["chapters"]
    out = []
    c = chapters["08_immovable"]
    for world, data in (("shapes", "shapes_imm_train"), ("cubes", "cubes_imm_train")):
        budget = c[world]  # train_divisor, epochs, num_updates, batch_size, ...
        n = transitions(data) // budget.get("train_divisor", 1)
        batch = budget["batch_size"]
        updates = _updates(budget["epochs"], budget.get("num_updates"), n, batch)
        model = readme_model(world, hidden_dim=c["hidden_dim"])
        out.append(Sweep("4.1", f"{world.capitalize()} immovable", model, c["strategies"],
                         list(c["seeds"]), batch, updates, n, OBS_SHAPE["block_pushing"]))
    for section, key in (("4.2", "09_atari_time_aligned"), ("4.3", "10_local_global")):
        c = chapters[key]
        for game, data in (("pong", "pong_train"), ("spaceinvaders", "spaceinvaders_train")):
            if section == "4.2":
                n, before = transitions(data) // c.get("train_divisor", 1), []
            else:
                n = c["split_episodes"]["train"] * c.get("episode_steps", ATARI_STEPS)
                before = ["A3C agent", "collection (train/valid/test)"]
            batch, model = c["batch_size"], readme_model(game, hidden_dim=c["hidden_dim"])
            out.append(Sweep(section, {"pong": "Pong", "spaceinvaders": "Space Invaders"}[game],
                             model, c["strategies"], list(c["seeds"]), batch,
                             _updates(c["epochs"], c.get("num_updates"), n, batch), n, OBS_SHAPE["atari"],
                             before))
    return out


def _update_once(model: CSWM, opt: torch.optim.Optimizer, strategy: str, batch: int,
                 obs_shape: tuple[int, int, int], g: torch.Generator) -> None:
    cfg = model.config
    obs = torch.rand(batch, *obs_shape, generator=g)
    nxt = torch.rand(batch, *obs_shape, generator=g)
    action = torch.randint(0, cfg.num_actions, (batch,), generator=g)
    if strategy == "baseline":
        kw = {"neg_batch_index": torch.randperm(batch, generator=g)[:, None]}
    else:  # dataset negatives: one more batch of observations to encode
        kw = {"neg_obs": torch.rand(batch, 1, *obs_shape, generator=g)}
    loss, _, _ = model.contrastive_loss(obs, action, nxt, **kw)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def update_cost(model: dict[str, Any], strategy: str, obs_shape: tuple[int, int, int],
                batch: int = 32, repeats: int = 3) -> dict[str, float]:
    """One training update of ``strategy`` (an id of :data:`cswm_lib.negatives.STRATEGIES`: every
    strategy but ``baseline`` encodes one more batch of observations, its negatives) at batch
    ``batch`` on this CPU with one torch thread: ``{"seconds"}`` (CPU
    time of this process, median of ``repeats`` after a warm-up) and ``{"flops"}`` (forward +
    backward, FlopCounterMode: matmuls and convolutions, 2 per multiply-add). Both are per update at
    this batch."""
    from torch.utils.flop_counter import FlopCounterMode

    keys = {k: v for k, v in model.items() if k in ModelConfig.__dataclass_fields__}
    net = CSWM(ModelConfig(input_shape=obs_shape, **keys))
    opt = torch.optim.Adam(net.parameters(), lr=5e-4)
    g = torch.Generator().manual_seed(0)
    with torch_threads(1):
        with FlopCounterMode(display=False) as counter:
            _update_once(net, opt, strategy, batch, obs_shape, g)
        times = []
        for _ in range(repeats):
            t0 = time.process_time()  # CPU time: a busy machine's waiting is not counted
            _update_once(net, opt, strategy, batch, obs_shape, g)
            times.append(time.process_time() - t0)
    return {"seconds": sorted(times)[len(times) // 2], "flops": float(counter.get_total_flops()),
            "batch": batch}


def cost_table(sweeps: list[Sweep], gpu_tflops: float = 60.0, utilisation: float = 0.3,
               measure_batch: int = 32, repeats: int = 3) -> list[dict[str, Any]]:
    """One row per (sweep, strategy): runs, updates per run, measured seconds and counted TFLOPs per
    update (scaled from ``measure_batch`` to the sweep's batch), CPU core-hours per run and for the
    strategy's runs, and GPU-hours = FLOPs / (``gpu_tflops`` x ``utilisation``).

    ``gpu_tflops`` is an ASSUMED dense fp32 (TF32) throughput of one GPU in TFLOP/s and
    ``utilisation`` the ASSUMED fraction of it small convolutions reach; both are stated in the table.
    """
    rows, measured = [], {}
    for s in sweeps:
        for strategy in s.strategies:
            key = json.dumps([s.model, strategy != "baseline", s.obs_shape], sort_keys=True)
            if key not in measured:  # (4.2 and 4.3 train the same models: measured once)
                measured[key] = update_cost(s.model, strategy, s.obs_shape, measure_batch, repeats)
            m = measured[key]
            scale = s.batch_size / m["batch"]
            flops = m["flops"] * scale * s.updates  # one run
            cpu_h = m["seconds"] * scale * s.updates / 3600
            gpu_h = flops / (gpu_tflops * 1e12 * utilisation) / 3600
            rows.append({
                "experiment": s.experiment, "dataset": s.dataset, "strategy": strategy,
                "runs": len(s.seeds), "updates": s.updates, "batch": s.batch_size,
                "cpu_s_per_update": m["seconds"] * scale, "tflop_per_update": m["flops"] * scale / 1e12,
                "cpu_core_hours_per_run": cpu_h, "gpu_hours_per_run": gpu_h,
                "gpu_hours": gpu_h * len(s.seeds), "before": " -> ".join(s.before),
                "gpu_tflops": gpu_tflops, "utilisation": utilisation, "measure_batch": measure_batch,
            })
    return rows


def a3c_cost(env_id: str = "PongDeterministic-v4", updates: int = 20, rollout: int = 20,
             max_frames: int = 80_000_000, workers: int = 20) -> dict[str, float]:
    """Frames per CPU second (process time) of ONE A3C worker here (one thread; the env and batch-1
    forward/backward of the baby-a3c policy) and the core-hours and wall-hours of a ``max_frames``
    budget on ``workers`` workers (perfect scaling assumed; A3C is CPU work, a GPU does not shorten
    it)."""
    from cswm_lib.a3c.agent import make_policy
    from cswm_lib.a3c.optim import SharedAdam
    from cswm_lib.a3c.train import A3CConfig, Actor

    cfg = A3CConfig(env_id=env_id, num_workers=1, rollout=rollout)
    with torch_threads(1):
        actor = Actor(cfg, seed=0)
        shared = make_policy(env_id, hidden=cfg.hidden)
        opt = SharedAdam(shared.parameters(), lr=cfg.lr)
        actor.update(shared, opt)  # warm-up
        t0, frames = time.process_time(), 0
        for _ in range(updates):
            frames += actor.update(shared, opt)[0]
        seconds = time.process_time() - t0
    fps = frames / seconds
    return {"env_id": env_id, "frames_per_second_per_worker": fps,
            "core_hours": max_frames / fps / 3600, "wall_hours": max_frames / fps / 3600 / workers,
            "workers": workers, "max_frames": max_frames}


def fan_out(sweeps: list[Sweep], games: int = 2, splits: int = 3) -> dict[str, Any]:
    """How a full run fans out: jobs per stage and the longest chain of dependent jobs."""
    train_jobs = sum(s.runs for s in sweeps)
    return {
        "training jobs": train_jobs,
        "scoring jobs": train_jobs,
        "A3C jobs": games,
        "collection jobs": games * splits,
        "longest chain": "A3C agent -> collection -> training -> scoring (4.3)",
    }


def cost_markdown(rows: list[dict[str, Any]], a3c: list[dict[str, float]] | None = None) -> str:
    """The cost table in markdown (one row per section, dataset and strategy) with its assumptions."""
    # headers break at their spaces and game ids are shortened, so the table fits the book's column
    lines = [
        "| Sec. | dataset | strategy | runs | updates / run (batch) | CPU s / update | TFLOP / update "
        "| core-h / run | GPU-h / run | GPU-h, all runs |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['experiment']} | {r['dataset']} | {r['strategy']} | {r['runs']} | {r['updates']} "
            f"({r['batch']}) | {r['cpu_s_per_update']:.2f} | {r['tflop_per_update']:.3f} "
            f"| {r['cpu_core_hours_per_run']:.1f} | {r['gpu_hours_per_run']:.2f} | {r['gpu_hours']:.2f} |"
        )
    for a in a3c or []:
        game = a["env_id"].removesuffix("Deterministic-v4")
        lines.append(
            f"| 4.3 | {game} | A3C agent | 1 | {a['max_frames']:.0e} frames | "
            f"{1 / a['frames_per_second_per_worker']:.4f} per frame | -- | {a['core_hours']:.0f} | "
            f"CPU: {a['wall_hours']:.1f} h on {a['workers']} cores | -- |"
        )
    if rows:
        r = rows[0]
        lines += ["", f"Assumed GPU: {r['gpu_tflops']:g} TFLOP/s at {100 * r['utilisation']:.0f}% "
                  f"utilisation; CPU seconds (process time) measured with one torch thread at batch "
                  f"{r['measure_batch']} and scaled linearly to the run's batch."]
    return "\n".join(lines)
