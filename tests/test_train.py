"""Training: overfitting a tiny world, determinism, resume equality, checkpoints, CLI flags and errors."""

import json
import math

import pytest
import torch
from tiny_worlds import tiny_episodes

from cswm_lib import vocabulary
from cswm_lib.checkpoint import load_model
from cswm_lib.data.loaders import TransitionBatches
from cswm_lib.errors import CswmError
from cswm_lib.model import check_compatible
from cswm_lib.train import (
    TrainConfig,
    build_parser,
    config_from_args,
    main,
    read_log,
    train,
)

TINY = dict(
    hidden_dim=32,
    embedding_dim=2,
    num_objects=2,
    action_dim=4,
    batch_size=16,
    progress=False,
    learning_rate=1e-3,
)


def cfg(tmp_path, **kw):
    return TrainConfig(**{**TINY, "save_folder": str(tmp_path), "dataset": "tiny.h5", **kw})


def weights(folder, name="last.pt"):
    return torch.load(folder / name, weights_only=True)


def same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_overfit_drives_positive_energy_down_and_negatives_beyond_hinge(tmp_path):
    eps = tiny_episodes(E=8, T=16, K=2, seed=1)
    folder = train(cfg(tmp_path, epochs=25, name="fit", batch_size=32, learning_rate=3e-3), eps)
    log = read_log(folder)
    assert min(r["loss"] for r in log) < 0.4 * log[0]["loss"]
    model = load_model(folder, "cpu")  # the best epoch
    b = next(iter(TransitionBatches(eps, 64, shuffle=False)))
    with torch.no_grad():
        z = model.encode(b.obs)
        pos = model.energy(z, model.encode(b.next_obs), b.action)
        e_pairs = model.energy(z[:, None], z[None])  # every pair of current states [B, B]
    distinct = (b.obs[:, None] != b.obs[None]).flatten(2).any(-1)  # different images
    assert pos.mean() < 0.15  # well inside the hinge (1.0)
    assert (e_pairs[distinct] > 0.5).float().mean() > 0.75
    assert e_pairs[distinct].mean() > 5 * pos.mean()


@pytest.mark.parametrize("negatives", ["baseline", "mixed"])
def test_same_seed_same_weights_and_resume_is_bit_identical(tmp_path, monkeypatch, negatives):
    eps = tiny_episodes(E=3, T=6)
    full = train(cfg(tmp_path, epochs=4, name="full", strategy=negatives, num_negatives=2), eps)
    again = train(cfg(tmp_path / "b", epochs=4, name="full", strategy=negatives, num_negatives=2), eps)
    assert read_log(full) == [
        dict(r, seconds=a["seconds"]) for r, a in zip(read_log(again), read_log(full), strict=True)
    ]
    assert same(weights(full), weights(again))

    # interrupt in the middle of epoch 3, then run the same command again
    real, calls = TransitionBatches.epoch, {"n": 0}

    def flaky(self, generator=None):
        calls["n"] += 1
        for i, b in enumerate(real(self, generator)):
            if calls["n"] == 3 and i == 1:
                raise KeyboardInterrupt
            yield b

    monkeypatch.setattr(TransitionBatches, "epoch", flaky)
    c = cfg(tmp_path, epochs=4, name="cut", strategy=negatives, num_negatives=2)
    with pytest.raises(KeyboardInterrupt):
        train(c, eps)
    assert len(read_log(tmp_path / "cut")) == 2
    monkeypatch.setattr(TransitionBatches, "epoch", real)
    train(c, eps)
    assert same(weights(full), weights(tmp_path / "cut"))
    assert same(weights(full, "model.pt"), weights(tmp_path / "cut", "model.pt"))
    assert [r["loss"] for r in read_log(full)] == [r["loss"] for r in read_log(tmp_path / "cut")]


def test_outputs_and_best_epoch(tmp_path):
    eps = tiny_episodes(E=2, T=4)
    folder = train(cfg(tmp_path, epochs=2, name="out"), eps)
    assert {p.name for p in folder.iterdir()} >= {
        "model.pt",
        "last.pt",
        "config.json",
        "log.jsonl",
        "state.pt",
    }
    conf = json.loads((folder / "config.json").read_text())
    assert conf["model"]["input_shape"] == [3, 50, 50] and conf["train"]["strategy"] == "baseline"
    log = read_log(folder)
    best = min(log, key=lambda r: r["loss"])
    assert same(weights(folder, "model.pt"), torch.load(folder / "model.pt", weights_only=True))
    assert best["best"] and set(log[0]) >= {"epoch", "loss", "pos", "neg", "seconds"}
    m = load_model(folder, "cpu", num_objects=2)
    assert m.config.hidden_dim == 32


def test_cli_flag_mapping():
    p = build_parser()
    c = config_from_args(p.parse_args(["--custom-neg", "--in-ep-prob", "0.0"]))
    assert (c.strategy, c.beta) == ("time_aligned", 0.0)
    c = config_from_args(p.parse_args(["--custom-neg", "--disable-time-aligned"]))
    assert (c.strategy, c.beta, c.time_aligned) == ("mixed", 0.5, False)
    c = config_from_args(p.parse_args(["--strategy", "episodic", "--num-negs", "3", "--no-cuda"]))
    assert (c.strategy, c.num_negatives, c.device) == ("episodic", 3, "cpu")
    assert config_from_args(p.parse_args([])).strategy == "baseline"
    with pytest.raises(CswmError, match="disagree"):
        config_from_args(p.parse_args(["--beta", "0.2", "--in-ep-prob", "0.3"]))


def test_one_line_errors(tmp_path, capsys):
    eps = tiny_episodes(E=2, T=4, K=2)  # 8 actions
    cases = [
        (dict(num_objects=1), "has 8 actions but --action-dim x --num-objects = 4"),
        (dict(copy_action=True), "has 8 actions but --action-dim = 4"),
        (dict(encoder="huge"), "unknown encoder 'huge'"),
    ]
    for kw, pat in cases:
        with pytest.raises(CswmError, match=pat) as err:
            train(cfg(tmp_path, epochs=1, name="err", **kw), eps)
        assert "\n" not in str(err.value)
    with pytest.raises(
        CswmError, match=r"expects observations \[3, 50, 50\] .* but the dataset has \[6, 50, 50\]"
    ):
        check_compatible(cfg(tmp_path).model_config((3, 50, 50)), tiny_episodes(E=2, T=4, channels=6))
    atari = tiny_episodes(E=2, T=4, channels=6)
    atari.attrs["atari"] = True
    with pytest.raises(CswmError, match="is Atari data: .* pass --copy-action"):
        train(cfg(tmp_path, epochs=1, name="atari"), atari)
    train(cfg(tmp_path, epochs=1, name="run"), eps)
    with pytest.raises(CswmError, match="another config \\(num_objects: 2 there vs 3 now\\)"):
        train(cfg(tmp_path, epochs=1, name="run", num_objects=3), eps)
    with pytest.raises(SystemExit) as ex:
        main(["--dataset", str(tmp_path / "missing.h5"), "--no-progress"])
    assert ex.value.code == 2
    assert capsys.readouterr().err.strip() == f"error: dataset not found: {tmp_path / 'missing.h5'}"
    with pytest.raises(SystemExit):
        main(["--strategy", "baseline", "--custom-neg", "--dataset", "x.h5"])
    assert "--custom-neg asks for dataset negatives" in capsys.readouterr().err


def test_adam_equals_torch_adam_and_does_not_import_the_compiler(tmp_path):
    """train.Adam: bitwise the parameters and state of torch.optim.Adam (state dicts interchange),
    and a whole training run in a fresh interpreter never imports torch._dynamo."""
    import copy
    import subprocess
    import sys

    from cswm_lib.train import Adam

    torch.manual_seed(0)
    m1 = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3))
    m2 = copy.deepcopy(m1)
    o1, o2 = Adam(m1.parameters(), lr=1e-2), torch.optim.Adam(m2.parameters(), lr=1e-2)
    x = torch.randn(16, 5)
    for i in range(6):
        for m, o in ((m1, o1), (m2, o2)):
            o.zero_grad()
            m(x).pow(2).sum().backward()
            o.step()
        if i == 2:  # swap states mid-way: each loads the other's state dict
            s1, s2 = o1.state_dict(), o2.state_dict()
            o1.load_state_dict(s2)
            o2.load_state_dict(s1)
    assert all(torch.equal(a, b) for a, b in zip(m1.parameters(), m2.parameters(), strict=True))
    for a, b in zip(o1.state.values(), o2.state.values(), strict=True):
        assert all(torch.equal(a[k], b[k]) for k in ("step", "exp_avg", "exp_avg_sq"))

    data = tmp_path / "d.h5"
    from cswm_lib.data.hdf5 import save_episodes

    save_episodes(tiny_episodes(E=4, T=5), data)
    code = (
        "import sys; from cswm_lib.train import main; "
        f"main(['--dataset', {str(data)!r}, '--save-folder', {str(tmp_path)!r}, '--name', 'r', "
        "'--epochs', '2', '--batch-size', '8', '--hidden-dim', '16', '--num-objects', '2', "
        "'--no-progress']); "
        "print('DYNAMO', 'torch._dynamo' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "DYNAMO False" in out


def test_training_is_bit_identical_to_the_reference_loop(tmp_path):
    """20 updates of two tiny runs give the weights (sha256 of every tensor), optimizer state, log and
    curve lines recorded by the loop before its rewrite (tests/train_reference.py, commit cac58f3)."""
    from train_reference import REFERENCE, train_reference

    want = json.loads(REFERENCE.read_text())
    if want["torch"] != torch.__version__:
        pytest.skip(f"reference made with torch {want['torch']}, this is {torch.__version__}")
    got = train_reference(tmp_path)
    for run in ("baseline_curve", "mixed"):
        # the curve lines of the reference, in today's names; today's curves also score the
        # local_later settings (added after the reference) and mark the selected weights' point
        want[run]["curve"] = vocabulary.modernise(want[run].get("curve", []))
        got[run]["curve"] = [
            {k: ([r for r in v if not r["setting"].startswith("local_later")] if k == "records" else v)
             for k, v in p.items() if k != "weights"}
            for p in got[run]["curve"] if p.get("weights", "last") == "last"
        ]
        want[run] = {k: v for k, v in want[run].items() if k != "curve" or v}
        got[run] = {k: v for k, v in got[run].items() if k != "curve" or v}
        assert got[run] == want[run], run


def test_last_curve_point_scores_the_last_weights_and_a_marked_point_scores_model_pt(tmp_path):
    """Issue 19 item 4: curves and final scores come from the same weights. The learning rate makes
    the lowest-loss epoch (model.pt) an earlier one than the last."""
    from cswm_lib.curves import curve_scores, curve_table, curve_value, eval_subset, read_curve, read_selected

    eps, ev = tiny_episodes(E=3, T=6, seed=3), tiny_episodes(E=2, T=6, seed=4)
    c = cfg(tmp_path, name="sel", strategy="mixed", num_negatives=2, time_aligned=False, learning_rate=0.02,
            batch_size=6, num_updates=20, seed=7, eval_every=7, eval_episodes=1)
    folder = train(c, eps, ev)
    subset = eval_subset(ev, 1)
    curve, selected = read_curve(folder), read_selected(folder)
    last = load_model(folder, "cpu")
    last.load_state_dict(weights(folder, "last.pt"))
    assert curve[-1]["updates"] == 20 and curve[-1]["records"] == curve_scores(last, subset)
    best = min(read_log(folder)[:-1], key=lambda r: r["loss"])  # complete epochs; the partial 7th is worse
    assert selected["weights"] == "selected" and selected["updates"] == best["updates"] == 15
    assert selected["loss"] == best["loss"]
    assert selected["records"] == curve_scores(load_model(folder), subset)
    assert not same(weights(folder, "model.pt"), weights(folder))  # two sets of weights, each scored
    table = curve_table({("mixed", 7): folder})["mixed"]["7"]
    assert table["updates"] == [0, 7, 14, 20] and table["selected:updates"] == [15]
    assert table["selected:local_dedup|1|Hits@1"] == [curve_value(selected, "local_dedup", 1)]
    # a curve written before the marked point existed still reads
    lines = (folder / "curve.jsonl").read_text().splitlines()
    (folder / "curve.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    assert read_selected(folder) is None
    assert "selected:updates" not in curve_table({("m", 7): folder})["m"]["7"]


def test_a_state_written_before_the_meter_and_the_rename_resumes_bit_identically(tmp_path, monkeypatch):
    """state.pt of the loop before issue 21 (positional running totals ``acc``, config key
    ``negatives``, no ``selected``) resumes to the same weights as an uninterrupted run."""
    eps = tiny_episodes(E=3, T=6)
    full = train(cfg(tmp_path, epochs=3, name="full", strategy="mixed", batch_size=4), eps)
    c = cfg(tmp_path, epochs=2, name="old", strategy="mixed", batch_size=4)
    train(c, eps)
    state = torch.load(tmp_path / "old" / "state.pt", weights_only=True)
    m = state.pop("meter")
    state["acc"] = {"epoch": [m["loss"], m["pos"], m["neg"], m["transitions"]],
                    "point": [m["point_loss"], m["point_updates"]], "seconds": m["seconds"],
                    "train_seconds": m["train_seconds"]}
    state["config"]["negatives"] = state["config"].pop("strategy")
    del state["selected"]
    torch.save(state, tmp_path / "old" / "state.pt")
    train(cfg(tmp_path, epochs=3, name="old", strategy="mixed", batch_size=4), eps)
    assert same(weights(full), weights(tmp_path / "old"))
    assert same(weights(full, "model.pt"), weights(tmp_path / "old", "model.pt"))


def test_model_settings_are_declared_once_in_model_config(tmp_path):
    from cswm_lib.model import MODEL_KEYS, ModelConfig

    a = cfg(tmp_path, encoder="medium", embedding_dim=4, copy_action=True, action_dim=6)
    b = TrainConfig(**{**{k: v for k, v in TINY.items() if k not in MODEL_KEYS}, "save_folder": str(tmp_path),
                       "dataset": "tiny.h5"},
                    model=ModelConfig(encoder="medium", embedding_dim=4, copy_action=True, action_dim=6,
                                      hidden_dim=32, num_objects=2))
    assert a == b and a.model.encoder == "medium" and a.model_config((6, 50, 50)).input_shape == (6, 50, 50)
    d = a.to_dict()
    assert d["encoder"] == "medium" and d["strategy"] == "baseline" and "model" not in d
    assert set(MODEL_KEYS) <= set(d) and "input_shape" not in d
    with pytest.raises(CswmError, match="either as model=ModelConfig"):
        TrainConfig(model=ModelConfig(), hidden_dim=32)
    with pytest.raises(TypeError, match="'negatives' \\(renamed strategy\\)"):
        TrainConfig(negatives="mixed")
    import dataclasses

    assert dataclasses.replace(a, seed=3).model == a.model  # the executor rewrites configs this way


def test_checks_one_style():
    from cswm_lib import checks

    assert checks.seed(0) == 0 and checks.seed(2**32 - 1) == 2**32 - 1
    import numpy as np

    assert checks.integer(np.int64(5), "--x", 1) == 5 and type(checks.integer(np.int64(5), "--x")) is int
    assert checks.real(2, "--x") == 2.0 and checks.real(math.inf, "--x", finite=False) == math.inf
    for bad, pat in [(True, "whole number, got True"), (1.5, "whole number, got 1.5"), ("3", "whole number")]:
        with pytest.raises(CswmError, match=pat):
            checks.integer(bad, "--x")
    with pytest.raises(CswmError, match=r"--x must be in \[0, 4294967296\)"):
        checks.seed(2**32, "--x")
    with pytest.raises(CswmError, match=r"--lr must be > 0 \(why\), got 0.0"):
        checks.real(0.0, "--lr", 0, lo_open=True, why="why")
    with pytest.raises(CswmError, match="must be True or False"):
        checks.boolean("no", "--flag")
    # the bounds of the seed range are the RNGs' own
    np.random.RandomState(2**32 - 1)
    with pytest.raises(ValueError):
        np.random.RandomState(2**32)
    train_seed = (2**32 - 1) * 100_003 + 10**6  # train's per-epoch generator seed stays in torch's range
    torch.Generator().manual_seed(train_seed)
