"""Learning curves: budgets in updates, periodic evaluation that never perturbs training, resume."""

from pathlib import Path

import pytest
import torch
from tiny_worlds import tiny_episodes

from cswm_lib.curves import curve_value, read_curve
from cswm_lib.data.loaders import TransitionBatches
from cswm_lib.errors import CswmError
from cswm_lib.evaluate import NEAREST_START
from cswm_lib.train import TrainConfig, main, read_log, train

TINY = dict(hidden_dim=32, embedding_dim=2, num_objects=2, action_dim=4, batch_size=8, progress=False,
            learning_rate=1e-3, dataset="tiny.h5", strategy="mixed")


def cfg(tmp_path, **kw):
    return TrainConfig(**{**TINY, "save_folder": str(tmp_path), **kw})


def weights(folder, name="last.pt"):
    return torch.load(folder / name, weights_only=True)


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_budget_in_updates_and_eval_leaves_training_untouched(tmp_path):
    eps, ev = tiny_episodes(E=3, T=6, seed=1), tiny_episodes(E=4, T=6, seed=2)  # 18 transitions: 3 batches
    plain = train(cfg(tmp_path, num_updates=7, name="plain"), eps)
    curved = train(cfg(tmp_path, num_updates=7, name="curved", eval_every=3, eval_episodes=3), eps, ev)
    assert same(weights(plain), weights(curved))
    assert same(weights(plain, "model.pt"), weights(curved, "model.pt"))
    log = read_log(curved)
    assert [(r["epoch"], r["updates"]) for r in log] == [(1, 3), (2, 6), (3, 7)]  # last epoch partial
    curve = read_curve(curved)
    assert [p["updates"] for p in curve] == [0, 3, 6, 7]
    point = curve[-1]
    scored = {(r["setting"], r["num_steps"], r["metric"]) for r in point["records"]}
    assert {("local_dedup", 1, "Hits@1"), ("local_dedup_no_transition", 5, "MRR"),
            ("global_dedup", 1, "Hits@1"), ("global_dedup_no_transition", 1, "Hits@1"),
            ("local_dedup", 5, NEAREST_START)} <= scored
    assert 0 <= curve_value(point, "local_dedup", 1) <= 1 and point["loss"] > 0
    with pytest.raises(CswmError, match="has no local_dedup/3/Hits@1"):
        curve_value(point, "local_dedup", 3)
    # an epochs budget counts the same updates
    by_epochs = train(cfg(tmp_path, epochs=2, name="epochs"), eps)
    six = train(cfg(tmp_path, num_updates=6, name="six"), eps)
    assert same(weights(by_epochs), weights(six))


def test_resumed_curve_is_bit_identical(tmp_path, monkeypatch):
    eps, ev = tiny_episodes(E=3, T=6, seed=1), tiny_episodes(E=4, T=6, seed=2)
    c = dict(num_updates=8, eval_every=2, eval_episodes=4)
    full = train(cfg(tmp_path, name="full", **c), eps, ev)
    real, calls = TransitionBatches.epoch, {"n": 0}

    def flaky(self, generator=None):  # interrupted in the middle of epoch 2, after a curve point
        calls["n"] += 1
        for i, b in enumerate(real(self, generator)):
            if calls["n"] == 2 and i == 2:
                raise KeyboardInterrupt
            yield b

    monkeypatch.setattr(TransitionBatches, "epoch", flaky)
    with pytest.raises(KeyboardInterrupt):
        train(cfg(tmp_path, name="cut", **c), eps, ev)
    assert [p["updates"] for p in read_curve(tmp_path / "cut")] == [0, 2, 4]
    monkeypatch.setattr(TransitionBatches, "epoch", real)
    train(cfg(tmp_path, name="cut", **c), eps, ev)
    drop = ("train_seconds",)
    strip = [{k: v for k, v in p.items() if k not in drop} for p in read_curve(full)]
    assert strip == [{k: v for k, v in p.items() if k not in drop} for p in read_curve(tmp_path / "cut")]
    assert same(weights(full), weights(tmp_path / "cut"))
    # a longer budget continues the same run
    longer = train(cfg(tmp_path, name="cut", **{**c, "num_updates": 10}), eps, ev)
    assert [p["updates"] for p in read_curve(longer)][-2:] == [8, 10]


def test_bad_budgets_are_one_line_errors(tmp_path, capsys):
    eps = tiny_episodes(E=2, T=4)  # 8 transitions, one batch per epoch
    for kw, pat in [
        (dict(num_updates=0), "--num-updates must be >= 1, got 0"),
        (dict(num_updates=5, eval_every=6), "--eval-every 6 is larger than the run"),
        (dict(eval_every=-1), "--eval-every must be >= 0"),
    ]:
        with pytest.raises(CswmError, match=pat):
            cfg(tmp_path, **kw)
    with pytest.raises(CswmError, match=r"--eval-every 3 is larger than the run \(2 updates\)"):
        train(cfg(tmp_path, epochs=2, eval_every=3, name="e"), eps)
    with pytest.raises(CswmError, match="--eval-every needs --eval-dataset"):
        train(cfg(tmp_path, epochs=2, eval_every=1, name="e"), eps)
    with pytest.raises(SystemExit):
        main(["--dataset", "x.h5", "--num-updates", "-3"])
    assert capsys.readouterr().err.strip() == "error: --num-updates must be >= 1, got -3"


def test_experiment_budget_and_curves(tmp_path, monkeypatch):
    from cswm_lib import experiments as ex

    monkeypatch.setenv("CSWM_CHECKPOINTS", str(tmp_path))
    monkeypatch.setattr(ex, "datasets", lambda spec: (tmp_path / "tr.h5", tmp_path / "ev.h5"))
    eps, ev = tiny_episodes(E=3, T=6, seed=1), tiny_episodes(E=4, T=6, seed=2)
    def fake_load(path):
        return eps if Path(path).name == "tr.h5" else ev

    fake_load.cache_clear = lambda: None  # the cached loader's interface
    monkeypatch.setattr(ex, "load_episodes_cached", fake_load)
    model = {k: TINY[k] for k in ("hidden_dim", "num_objects")}
    spec = ex.Experiment(experiment="t", dataset="tiny", train_data="shapes_imm_train",
                         eval_data="shapes_imm_eval", model=model, batch_size=8, num_updates=5,
                         eval_every=2, eval_episodes=4, seeds=[1, 2])
    assert "_u5_" in spec.folder_name()
    folders = ex.train_all(spec)
    assert [p["updates"] for p in read_curve(folders["baseline", 2])] == [0, 2, 4, 5]
    mtime = (folders["baseline", 1] / "curve.jsonl").stat().st_mtime_ns
    ex.train_all(spec)  # finished runs are reused
    assert (folders["baseline", 1] / "curve.jsonl").stat().st_mtime_ns == mtime


def test_curve_table_and_figure(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from cswm_lib import report
    from cswm_lib.curves import curve_table

    eps, ev = tiny_episodes(E=3, T=6, seed=1), tiny_episodes(E=4, T=6, seed=2)
    folders = {(label, s): train(cfg(tmp_path, num_updates=4, eval_every=2, name=f"{label}{s}", seed=s,
                                     strategy=neg), eps, ev)
               for label, neg in (("baseline", "baseline"), ("mixed", "mixed")) for s in (1, 2)}
    table = curve_table(folders)
    assert table["mixed"]["2"]["updates"] == [0, 2, 4]
    assert table["mixed"]["2"]["local_dedup|1|Hits@1"] == [
        curve_value(p, "local_dedup", 1) for p in read_curve(folders["mixed", 2])
    ]
    fig = report.plot_curve_grid({"tiny": table, "again": table})
    assert fig.get_size_inches()[0] <= 7.5
    ax = fig.axes[0]
    assert len(ax.lines) == 2 * (2 + 1 + 1)  # per strategy: 2 seeds, mean, control
    styles = {(line.get_color(), line.get_linestyle()) for line in ax.lines if line.get_linewidth() == 2}
    assert len(styles) == 2


def test_departure_from_the_no_transition_control():
    from cswm_lib.curves import departure

    def seed(values, control):
        return {"updates": [0, 100, 200, 300], "local_dedup|1|Hits@1": values,
                "local_dedup_no_transition|1|Hits@1": control}

    curves = {
        "new": {"1": seed([0.3, 0.62, 0.7, 0.9], [0.62] * 4), "2": seed([0.3, 0.62, 0.62, 0.95], [0.62] * 4)},
        "baseline": {"1": seed([0.3, 0.62, 0.62, 0.63], [0.62] * 4)},
    }
    assert departure(curves, "new", margin=0.03) == 200  # mean 0.66 at 200 > 0.62 + 0.03
    assert departure(curves, "new", margin=0.05) == 300
    assert departure(curves, "baseline") is None


def test_departure_markdown_says_when_each_strategy_leaves_its_control():
    from cswm_lib.report import departure_markdown

    def seed(values, control):
        return {"updates": [0, 100, 200, 300], "local_dedup|1|Hits@1": values,
                "local_dedup_no_transition|1|Hits@1": control}

    runs = {"new": {"1": seed([0.3, 0.62, 0.7, 0.9], [0.62] * 4)},
            "baseline": {"1": seed([0.3, 0.62, 0.62, 0.63], [0.62] * 4)}}
    text = departure_markdown({"Shapes": runs, "Cubes": {"new": runs["baseline"]}}, ["new"])
    assert text.splitlines() == [
        "* Shapes: new rises above its no-transition control (by more than 5 points, mean over seeds) "
        "at 200 updates.",
        "* Cubes: new does not rise above its no-transition control within 300 updates.",
    ]
    both = departure_markdown({"Shapes": runs}, margin=0.1)  # every strategy with curves
    assert both == ("* Shapes: new rises above its no-transition control (by more than 10 points, mean over "
                    "seeds) at 300 updates; baseline does not rise above its no-transition control within "
                    "300 updates.")


def test_reference_run_is_the_recorded_run_with_verdicts(tmp_path):
    import json

    from cswm_lib.report import reference_run

    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "08_immovable.json").write_text(json.dumps({"results": {"verdicts": [{"v": 1}]}}))
    (tmp_path / "cpu" / "09_atari.json").write_text(json.dumps({"results": {"table": []}}))
    assert reference_run("08_immovable", "small", folder=tmp_path)["results"]["verdicts"] == [{"v": 1}]
    assert reference_run("08_immovable", "cpu", folder=tmp_path) is None  # this run is the reference
    assert reference_run("09_atari", "small", folder=tmp_path) is None  # recorded before verdicts
    assert reference_run("10_local_global", "small", folder=tmp_path) is None  # none recorded


def test_budget_markdown_takes_the_slowest_seed_of_a_world_that_learned_as_the_yardstick():
    from cswm_lib.report import budget_markdown

    def seed(values):
        return {"updates": [0, 100, 200, 300], "local_dedup|1|Hits@1": values,
                "local_dedup_no_transition|1|Hits@1": [0.62] * 4}

    flat = seed([0.3, 0.62, 0.62, 0.62])
    shapes = {"new": {"1": seed([0.3, 0.9, 0.9, 0.9]), "2": seed([0.3, 0.62, 0.62, 0.8])},
              "baseline": {"1": flat}}
    cubes = {"new": {"1": flat, "2": flat}, "baseline": {"1": flat, "2": flat}}
    timed = []
    text = budget_markdown({"Shapes": shapes, "Cubes": cubes}, "new", lambda w: timed.append(w) or 0.6)
    assert timed == ["Cubes"]  # only the world that needs the estimate is timed
    assert text == ("* Cubes: at least the 300 updates the slowest seed of Shapes needed; at 0.60 s per "
                    "update (one core, measured here) that is 3 min per run, 0.2 h for its 4 runs.")
    # no yardstick: a world whose seeds did not all leave the control gives none
    shapes["new"]["2"] = flat
    assert budget_markdown({"Shapes": shapes, "Cubes": cubes}, "new", lambda w: 0.6) == ""
