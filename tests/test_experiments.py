"""Experiments layer: a tiny end-to-end run (datasets, training, reuse, scores, rows), aggregation by
hand, the start-state metric, the no-transition modes, reporting helpers and one-line errors."""

import numpy as np
import pytest
import torch

import cswm_lib.experiments as ex
from cswm_lib import vocabulary
from cswm_lib.analysis import gap, local_global_view
from cswm_lib.checkpoint import load_model
from cswm_lib.data.hdf5 import load_episodes
from cswm_lib.errors import CswmError
from cswm_lib.evaluate import NEAREST_START, evaluate
from cswm_lib.experiments import (
    ROW_KEYS,
    Experiment,
    aggregate,
    evaluate_all,
    train_all,
)
from cswm_lib.ranking import nearest_start
from cswm_lib.report import markdown_table


def tiny_spec(**kw):
    base = dict(
        experiment="4.1",
        dataset="Shapes immovable",
        train_data="shapes_imm_train",
        eval_data="shapes_imm_eval",
        train_divisor=500,
        eval_divisor=500,
        model={"encoder": "small", "hidden_dim": 16},
        strategies={
            "baseline": {},
            "mixed": {"beta": 0.5, "time_aligned": False},
        },
        seeds=[0, 1],
        epochs=2,
        batch_size=64,
        settings=["global_dedup", "local_dedup", "local_dedup_no_transition"],
        num_steps=[1, 2],
        scale="small",
        device="cpu",
    )
    return Experiment(**{**base, **kw})


@pytest.fixture
def tmp_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("CSWM_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("CSWM_CHECKPOINTS", str(tmp_path / "ckpt"))
    return tmp_path


@pytest.mark.slow
def test_tiny_run_rows_reuse_and_invariants(tmp_dirs, monkeypatch):
    spec = tiny_spec()
    folders = train_all(spec)
    assert sorted(folders) == [("baseline", 0), ("baseline", 1), ("mixed", 0), ("mixed", 1)]
    for (label, seed), folder in folders.items():
        assert folder == tmp_dirs / "ckpt" / spec.folder_name() / f"{label}_s{seed}"
        assert (folder / "model.pt").is_file()
    records = evaluate_all(spec, folders)
    rows = aggregate(spec, records)
    assert all(tuple(sorted(r)) == tuple(sorted(ROW_KEYS)) for r in rows)
    # 2 strategies x 3 modes x 2 steps x 2 metrics, plus argmin=o_0 for the 2 local modes
    assert len(rows) == 2 * 2 * (3 * 2 + 2)
    for r in rows:
        assert r["n_seeds"] == 2 and r["scale"] == "small" and r["paper"] is None
        assert "not known to us" in r["paper_note"]
        vals = [
            x["value"]
            for x in records
            if all(x[k] == r[k] for k in ("strategy", "setting", "num_steps", "metric"))
        ]
        assert r["mean"] == pytest.approx(np.mean(vals)) and r["std"] == pytest.approx(np.std(vals, ddof=1))
        assert 0.0 <= r["mean"] <= 1.0
    # the no-transition predictor sits exactly on o_0: its local arg-min is always the start state
    control = ex.select(rows, setting="local_dedup_no_transition", metric=NEAREST_START)
    assert [r["mean"] for r in control] == [1.0] * 4
    # eval files: 10000 // 500 = 20 episodes, so the global (dedup) ranking has 20 candidates
    assert {r["metric"] for r in ex.select(rows, setting="global_dedup")} == {"Hits@1", "MRR"}

    # a second run reuses every checkpoint: training must not be called
    def no_training(*a, **k):
        raise AssertionError("finished runs must be reused")

    monkeypatch.setattr(ex, "train", no_training)
    assert ex.run(spec) == rows  # same checkpoints, same eval set -> identical rows


def test_interrupted_run_is_resumed(tmp_dirs):
    spec = tiny_spec(strategies={"baseline": {}}, seeds=[0], epochs=2)
    path, _ = ex.datasets(spec)
    cfg = spec.train_config("baseline", 0, path)
    cfg.epochs = 1  # as if stopped after the first of two epochs
    ex.train(cfg)
    assert len(ex.read_log(cfg.folder())) == 1
    (folder,) = train_all(spec).values()
    assert folder == cfg.folder() and len(ex.read_log(folder)) == 2


def test_aggregate_by_hand():
    spec = tiny_spec(paper={"baseline|global_dedup|1|Hits@1": 0.5})
    recs = [
        dict(strategy="baseline", seed=s, setting="global_dedup", num_steps=1, metric="Hits@1", value=v)
        for s, v in enumerate([0.2, 0.4, 0.9])
    ]
    recs.append(dict(strategy="mixed", seed=0, setting="global_dedup", num_steps=1, metric="Hits@1",
                     value=0.7))
    rows = aggregate(spec, recs)
    b, n = rows
    assert b["mean"] == pytest.approx(0.5) and b["std"] == pytest.approx(
        np.sqrt(((0.3**2) + 0.1**2 + 0.4**2) / 2)
    )
    assert b["n_seeds"] == 3 and b["paper"] == 0.5
    assert n["std"] == 0.0 and n["n_seeds"] == 1 and n["paper"] is None
    g = gap(rows, "Shapes immovable", "mixed")
    assert g["diff"] == pytest.approx(0.2) and g["pooled_std"] == pytest.approx(b["std"])
    table = markdown_table(rows)
    assert "| 50.0 ± 36.1 | 3 | 50.0 |" in table and "| 70.0 | 1 | -- |" in table
    assert "paper --: not known to us" in table
    with pytest.raises(CswmError, match="expected one row"):
        gap(rows, "Shapes immovable", "time-aligned")


def test_nearest_start_by_hand():
    states = torch.tensor([[[[0.0]], [[1.0]], [[2.0]]], [[[0.0]], [[1.0]], [[2.0]]]])  # [N=2, S=3, K=1, D=1]
    preds = torch.tensor([[[0.4]], [[1.6]]])  # nearest: o_0, o_2
    assert nearest_start(preds, states) == 0.5
    assert nearest_start(torch.tensor([[[0.5]], [[0.5]]]), states) == 1.0  # tie -> earliest


def test_folder_name_changes_with_training_setting():
    a = tiny_spec()
    assert (
        a.folder_name() == tiny_spec(seeds=[5], settings=["global"]).folder_name()
    )  # eval settings do not matter
    assert a.folder_name() != tiny_spec(epochs=3).folder_name()
    assert a.folder_name() != tiny_spec(train_divisor=100).folder_name()
    assert a.folder_name() != tiny_spec(model={"encoder": "small", "hidden_dim": 32}).folder_name()


@pytest.mark.parametrize(
    "kw, msg",
    [
        (dict(settings=["dedupp"]), "unknown evaluation setting 'dedupp'"),
        (dict(metrics=["Hits@3"]), r"unknown metric\(s\) \['Hits@3'\]"),
        (dict(train_data="shapes_imm"), "unknown dataset 'shapes_imm'"),
        (dict(seeds=[]), "must be non-empty"),
    ],
)
def test_bad_specs_are_one_line_errors(kw, msg):
    with pytest.raises(CswmError, match=msg) as err:
        tiny_spec(**kw)
    assert "\n" not in str(err.value)


def test_data_given_as_files_and_eval_batch_size(tmp_dirs):
    """Pre-collected files (e.g. the A3C splits of Sec. 4.3) as train/eval data; ``batched`` mode
    ranks within batches of ``eval_batch_size``."""
    from tiny_worlds import tiny_episodes

    from cswm_lib.data.hdf5 import save_episodes

    train_path = save_episodes(tiny_episodes(E=4, T=4, seed=0), tmp_dirs / "a_train_4ep.h5")
    eval_path = save_episodes(tiny_episodes(E=7, T=4, seed=1), tmp_dirs / "a_test_7ep.h5")
    spec = tiny_spec(
        experiment="4.3",
        train_data=str(train_path),
        eval_data=str(eval_path),
        model={"encoder": "small", "hidden_dim": 16, "num_objects": 2, "action_dim": 4},
        strategies={"baseline": {}},
        seeds=[0],
        epochs=1,
        batch_size=8,
        eval_batch_size=3,
        settings=["batched_dedup", "local_dedup"],
        num_steps=[1],
    )
    assert ex.datasets(spec) == (train_path, eval_path)
    assert spec.folder_name().startswith("4.3_a_train_4ep_e1_")
    rows = ex.run(spec)
    assert {r["setting"] for r in rows} == {"batched_dedup", "local_dedup"}
    assert all(0 <= r["mean"] <= 1 for r in rows)
    model = load_model(tmp_dirs / "ckpt" / spec.folder_name() / "baseline_s0", "cpu")
    direct = evaluate(
        model,
        load_episodes(eval_path),
        1,
        batch_size=3,
        ks=[1],
        progress=False,
        setting="batched_dedup",
    )
    assert direct["N"] == 6  # two full batches of 3; the 7th episode is dropped as in eval_ids_b.py
    (hits,) = ex.select(rows, setting="batched_dedup", metric="Hits@1")
    assert hits["mean"] == pytest.approx({vocabulary.name(k): v for k, v in direct.items()}["Hits@1"])
    with pytest.raises(CswmError, match="dataset file not found: .*missing.h5$") as err:
        ex.datasets(tiny_spec(train_data=str(train_path), eval_data=str(tmp_dirs / "missing.h5")))
    assert "\n" not in str(err.value)


def test_local_global_view_matches_direct_distances():
    from tiny_worlds import tiny_episodes

    from cswm_lib.data.episodes import to_float
    from cswm_lib.model import CSWM, ModelConfig

    torch.manual_seed(0)
    model = CSWM(ModelConfig(embedding_dim=2, hidden_dim=32, num_objects=2)).eval()
    eps = tiny_episodes(E=6, T=5, K=2, seed=3)
    e, L, B = 4, 2, 4
    view = local_global_view(model, eps, episode=e, num_steps=L, batch_size=B)
    with torch.no_grad():
        z = model.encode(to_float(eps.frames.reshape(-1, *eps.obs_shape))).reshape(6, 6, 2, 2)
        pred = z[:, 0]
        for t in range(L):
            pred = model.predict(pred, torch.from_numpy(eps.actions[:, t]))
    local = (z[e] - pred[e]).pow(2).sum((-1, -2)).numpy()
    glob = (pred[B:] - z[e, L]).pow(2).sum((-1, -2)).numpy()  # batch 1 = the last (incomplete) batch: 4, 5
    np.testing.assert_allclose(view["local_distances"], local, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(view["global_distances"], glob, rtol=1e-5, atol=1e-6)
    assert view["nearest_t"] == int(local.argmin())
    assert view["global_index"] == e - B
    assert view["global_rank"] == 1 + int((glob < glob[e - B]).sum())
    same = [t for t in range(6) if t != L and (eps.state_ids[e, t] == eps.state_ids[e, L]).all()]
    assert view["same_state"] == same


def test_a_larger_eval_set_is_scored_whole_and_on_the_published_first_episodes(tmp_dirs):
    """eval_size draws more episodes from the README's generator; published_eval_episodes scores
    its first episodes too, and those scores equal the ones on the README-size set itself."""
    spec = tiny_spec(strategies={"baseline": {}}, seeds=[0], epochs=1, eval_size=30,
                     published_eval_episodes=20, num_steps=[1])
    folders = train_all(spec)
    records = evaluate_all(spec, folders)
    assert {r["eval_episodes"] for r in records} == {30, 20}
    rows = aggregate(spec, records)
    assert {r["eval_episodes"] for r in rows} == {30, 20} and len(rows) == 2 * len(aggregate(spec, [
        r for r in records if r["eval_episodes"] == 30]))
    alone = evaluate_all(tiny_spec(strategies={"baseline": {}}, seeds=[0], epochs=1, num_steps=[1]), folders)
    assert {r["eval_episodes"] for r in alone} == {20}  # 10000 // 500 episodes: the same 20
    key = ("setting", "num_steps", "metric")
    on_20 = {tuple(r[k] for k in key): r["value"] for r in records if r["eval_episodes"] == 20}
    assert on_20 == {tuple(r[k] for k in key): r["value"] for r in alone}
    from cswm_lib.experiments import verdict_set

    assert {r["eval_episodes"] for r in verdict_set(records)} == {30}
    with pytest.raises(CswmError, match="eval_size must be a whole number"):
        tiny_spec(eval_size="many")


def test_every_model_is_scored_on_the_whole_set_the_published_subset_and_the_curve_subset():
    from cswm_lib.data.episodes import Episodes

    episodes = Episodes(np.zeros((30, 3, 3, 5, 5), np.uint8), np.zeros((30, 2), np.int64), None, {})
    sizes = lambda **kw: [s.num_episodes for s in ex.eval_sets(tiny_spec(**kw), episodes)]  # noqa: E731
    assert sizes() == [30]
    assert sizes(published_eval_episodes=20, eval_every=5, eval_episodes=10) == [30, 20, 10]
    assert sizes(published_eval_episodes=10, eval_every=5, eval_episodes=10) == [30, 10]  # once
    assert sizes(eval_every=0, eval_episodes=10) == [30]  # no curve, no curve subset
    assert sizes(published_eval_episodes=100, eval_every=5, eval_episodes=1000) == [30]


def test_folder_name_is_the_same_from_any_copy_of_the_project(tmp_path, monkeypatch):
    """A run folder's name must not depend on where the project lies: an eval file inside the project
    counts by its project-relative path (4.3's split files named the worktree, so a second worktree
    retrained finished runs); README names and the files' own names are unchanged."""
    names = []
    for copy in ("a", "b"):
        root = tmp_path / copy
        monkeypatch.setenv("CSWM_ROOT", str(root))
        names.append(tiny_spec(eval_data=str(root / "data" / "pong_test.h5"), eval_every=5,
                               eval_episodes=10).folder_name())
    assert names[0] == names[1]
    outside = tiny_spec(eval_data=str(tmp_path / "elsewhere" / "pong_test.h5"), eval_every=5,
                        eval_episodes=10).folder_name()
    assert outside != names[0]  # another file, outside the project: its whole path counts
    assert tiny_spec(eval_every=5, eval_episodes=10).folder_name() != names[0]
