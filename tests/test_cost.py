"""The full-scale cost table: sweeps read from full.yaml, FLOPs linear in the batch, dataset negatives
cost an extra encoder pass, GPU-hours follow the stated assumptions. (Budget: ~5 s.)"""

from __future__ import annotations

import pytest

from cswm_lib.cost import Sweep, cost_markdown, cost_table, fan_out, full_sweeps, update_cost

SHAPES = {"encoder": "small", "hidden_dim": 32, "num_objects": 5}


def test_full_sweeps_follow_the_readme_commands():
    sweeps = {(s.experiment, s.dataset): s for s in full_sweeps()}
    shapes = sweeps["4.1", "Shapes immovable"]
    assert (shapes.transitions, shapes.batch_size, shapes.updates) == (100_000, 1024, 100 * 98)
    assert sweeps["4.2", "Pong"].updates == 200 * 10  # 1000 episodes x 10 steps, 200 epochs
    assert sweeps["4.3", "Pong"].before == ["A3C agent", "collection (train/valid/test)"]
    fan = fan_out(list(sweeps.values()))
    assert fan["training jobs"] == sum(s.runs for s in sweeps.values()) and fan["A3C jobs"] == 2


def test_update_cost_scales_with_the_batch_and_the_negatives():
    base4 = update_cost(SHAPES, "baseline", (3, 50, 50), batch=4, repeats=1)
    base8 = update_cost(SHAPES, "baseline", (3, 50, 50), batch=8, repeats=1)
    mixed8 = update_cost(SHAPES, "mixed", (3, 50, 50), batch=8, repeats=1)
    assert base4["flops"] > 0 and base4["seconds"] > 0
    assert base8["flops"] == pytest.approx(2 * base4["flops"], rel=0.05)
    assert mixed8["flops"] > 1.2 * base8["flops"]  # a third batch of observations goes through the encoder


def test_cost_table_gpu_hours_follow_the_assumptions():
    sweep = Sweep("4.1", "Shapes", SHAPES, {"baseline": {}}, [1, 2], batch_size=8, updates=1000,
                  transitions=8000, obs_shape=(3, 50, 50))
    fast = cost_table([sweep], gpu_tflops=100.0, utilisation=0.5, measure_batch=4, repeats=1)[0]
    slow = cost_table([sweep], gpu_tflops=50.0, utilisation=0.5, measure_batch=4, repeats=1)[0]
    assert slow["gpu_hours_per_run"] == pytest.approx(2 * fast["gpu_hours_per_run"], rel=0.05)
    flops_run = fast["tflop_per_update"] * 1e12 * 1000
    assert fast["gpu_hours_per_run"] == pytest.approx(flops_run / (50e12 * 3600))
    assert fast["gpu_hours"] == pytest.approx(2 * fast["gpu_hours_per_run"])
    table = cost_markdown([fast])
    assert "| 4.1 | Shapes | baseline | 2 | 1000 (8) |" in table
    assert "Assumed GPU: 100 TFLOP/s at 50%" in table


def test_update_cost_counts_cpu_time_not_wall_time(monkeypatch):
    """A busy shared machine must not inflate the CPU seconds: they come from ``time.process_time``."""
    import types

    import cswm_lib.cost as cost

    ticks = iter(range(0, 1000, 2))
    monkeypatch.setattr(cost, "time", types.SimpleNamespace(process_time=lambda: float(next(ticks))))
    assert update_cost(SHAPES, "baseline", (3, 50, 50), batch=2, repeats=1)["seconds"] == 2.0
