"""Tests of cswm_lib.evaluate: hand-computed ranks, equality with a brute-force sort of the full
matrix (the published scripts' logic) in every setting, embedding paths, and one-line errors."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from cswm_lib.data.episodes import Episodes
from cswm_lib.errors import CswmError
from cswm_lib.evaluate import NEAREST_START, SETTINGS, embed_paths, evaluate, evaluate_settings, main
from cswm_lib.ranking import rank_global, rank_local, scores, scores_by_batch_size
from cswm_lib.utils import cli_errors, eval_mode, torch_threads

# ----------------------------------------------------------------------------- brute force


def _dist(a: np.ndarray, b: np.ndarray) -> float:
    acc = (a[0] - b[0]) ** 2
    for f in range(1, len(a)):
        acc += (a[f] - b[f]) ** 2
    return float(acc)


def ref_global(pred, targ, ids, dedup, batch, ks, averaging):
    """Straight from the description: per batch, full target x prediction matrix, the diagonal
    prepended as column 0, every row stable-sorted by (distance, column)."""
    n = len(pred)
    b = batch or n
    hits = {k: [] for k in ks}
    rr = []
    for g in range(n // b):
        sl = range(g * b, (g + 1) * b)
        for i in sl:
            row = [_dist(targ[i], pred[i])] + [_dist(targ[i], pred[j]) for j in sl]
            col_id = [i] + list(sl)  # query whose target id each column carries
            same = [ids is not None and bool(np.all(ids[c] == ids[i])) for c in col_id]
            if dedup == "correct":
                order = sorted(range(len(row)), key=lambda c: (row[c], not same[c], c))
                rank = next(pos for pos, c in enumerate(order) if same[c])
            else:
                order = sorted(range(len(row)), key=lambda c: (row[c], c))
                if dedup == "published" and order[0] != 0 and same[order[0]]:
                    order[0] = 0
                rank = order.index(0)
            for k in ks:
                hits[k].append(float(0 in order[:k]) if dedup != "correct" else float(rank < k))
            rr.append(1.0 / (rank + 1))
    out = {}
    for key, v in [*((f"Hits@{k}", hits[k]) for k in ks), ("MRR", rr)]:
        v = np.array(v)
        if averaging == "published" and batch:
            sums = v.reshape(-1, b).sum(1).cumsum()
            out[key] = float(np.mean(sums / (b * np.arange(1, len(sums) + 1))))
        else:
            out[key] = float(v.mean())
    return out


def ref_local(pred, states, L, ids, dedup):
    ranks = []
    for e in range(len(pred)):
        d = [_dist(states[e, s], pred[e]) for s in range(states.shape[1])]
        same = [ids is not None and bool(np.all(ids[e, s] == ids[e, L])) for s in range(len(d))]
        if dedup == "correct":
            order = sorted(range(len(d)), key=lambda s: (d[s], not same[s], s))
            ranks.append(next(pos for pos, s in enumerate(order) if same[s]))
        else:
            order = sorted(range(len(d)), key=lambda s: (d[s], s))
            ranks.append(0 if dedup == "published" and same[order[0]] else order.index(L))
    return np.array(ranks)


def tied_embeddings(n, f=4, seed=0, offset=0.0):
    """Coordinates on a coarse grid (many exact ties), duplicated rows, coarse ids (duplicates)."""
    rng = np.random.default_rng(seed)
    targ = rng.integers(0, 3, (n, f)) / 2.0 + offset
    pred = targ + rng.integers(-1, 2, (n, f)) / 2.0
    pred[rng.random(n) < 0.3] = pred[0]  # collapsed predictions
    ids = rng.integers(0, 3, (n, 2))
    return pred, targ, ids


# ----------------------------------------------------------------------------- hand-computed


def test_hand_computed_global_ranks():
    targ = np.array([[0.0], [1.0], [2.0]])
    pred = np.array([[1.0], [1.0], [0.0]])
    r = rank_global(pred, targ)
    # row 0: d = [1, 1, 0], true 1 -> p2 closer; row 1: d = [0, 0, 1], tie with p0 goes to the true
    # match; row 2: d = [4, 1, 1], true 4 -> two closer
    assert r.rank.tolist() == [1, 0, 2]
    s = scores(r, ks=(1, 2, 3))
    assert s["Hits@1"] == pytest.approx(1 / 3) and s["Hits@2"] == pytest.approx(2 / 3) and s["Hits@3"] == 1
    assert s["MRR"] == pytest.approx((1 / 2 + 1 + 1 / 3) / 3)
    ids = np.array([[7], [8], [7]])  # targets 0 and 2 are the same state
    pub = rank_global(pred, targ, ids, dedup="published")
    # row 0: top candidate p2 has target id 7 = own id -> repaired; row 2: top is p0 (lowest index
    # among the tied p0, p1), id 7 -> repaired
    assert pub.top1_dup.tolist() == [True, False, True]
    assert scores(pub, ks=(1,))["Hits@1"] == 1 and scores(pub, ks=(1,))["MRR"] == 1
    cor = rank_global(pred, targ, ids, dedup="correct")
    assert cor.rank.tolist() == [0, 0, 0]
    assert pub.num_dup.tolist() == [1, 0, 1]


def test_published_dedup_repairs_only_the_top_slot():
    # true match behind a non-duplicate, then a duplicate: published gives rank 1 (no repair),
    # correct variant also rank 1; behind a duplicate then a non-duplicate: published repairs it.
    targ = np.array([[0.0], [10.0], [20.0]])
    pred = np.array([[3.0], [0.5], [1.0]])  # for row 0: p1 (0.25) < p2 (1) < p0 (9)
    for ids, pub_rank, cor_rank in [([[1], [2], [1]], 2, 1), ([[1], [1], [2]], 0, 0)]:
        pub = rank_global(pred, targ, np.array(ids), dedup="published")
        cor = rank_global(pred, targ, np.array(ids), dedup="correct")
        assert pub.effective_rank[0] == pub_rank and cor.rank[0] == cor_rank


def test_hand_computed_local():
    states = np.array([[[0.0], [1.0], [1.0], [3.0]]])  # one episode, 4 states
    pred = np.array([[1.0]])
    # target L = 2: d = [1, 0, 0, 4]; arg-min is index 1 (lowest on ties) -> miss, rank 1
    assert rank_local(pred, states, 2).rank.tolist() == [1]
    assert rank_local(pred, states, 1).rank.tolist() == [0]
    ids = np.array([[[0], [5], [5], [6]]])
    assert rank_local(pred, states, 2, ids, dedup="published").effective_rank.tolist() == [0]
    assert rank_local(pred, states, 2, ids, dedup="correct").rank.tolist() == [0]
    assert rank_local(pred, states, 3, ids, dedup="published").effective_rank.tolist() == [3]


# ----------------------------------------------------------------------------- vs brute force


@pytest.mark.parametrize("dedup", [None, "published", "correct"])
@pytest.mark.parametrize(
    "batch,averaging", [(None, "mean"), (10, "mean"), (10, "published"), (7, "published")],
    ids=["global", "batched", "batched-pub", "batched7-pub"],
)
def test_global_and_batched_match_brute_force(dedup, batch, averaging):
    ks = (1, 3, 5)
    for seed, offset in [(0, 0.0), (1, 1234.567)]:  # the offset stresses rounding in ||a||^2+||b||^2-2ab
        pred, targ, ids = tied_embeddings(70, seed=seed, offset=offset)
        want = ref_global(pred, targ, ids, dedup, batch, ks, averaging)
        for memory in (2**30, 3000):  # one chunk / many chunks
            got = scores(rank_global(pred, targ, ids, dedup, batch, memory_bytes=memory), ks, averaging)
            assert got == pytest.approx(want, abs=1e-12), (seed, memory)


@pytest.mark.parametrize("dedup", [None, "published", "correct"])
def test_local_matches_brute_force(dedup):
    rng = np.random.default_rng(3)
    states = rng.integers(0, 2, (60, 11, 3)) / 2.0
    pred = states[:, 0] + rng.integers(0, 2, (60, 3)) / 2.0
    ids = rng.integers(0, 2, (60, 11, 1))
    for L in (1, 5, 10):
        got = rank_local(pred, states, L, ids, dedup, chunk=7).effective_rank.numpy()
        np.testing.assert_array_equal(got, ref_local(pred, states, L, ids, dedup))


def test_collapsed_embeddings_score_perfectly_as_in_the_original():
    z = np.zeros((50, 5, 2))
    r = rank_global(z, z)
    assert scores(r)["Hits@1"] == 1.0 and scores(r)["MRR"] == 1.0


def test_float32_and_3d_inputs_and_cuda_free():
    pred, targ, ids = tied_embeddings(40, f=10, seed=5)
    a = rank_global(torch.tensor(pred, dtype=torch.float32).view(40, 5, 2), torch.tensor(targ).view(40, 5, 2))
    b = rank_global(pred.astype(np.float32), targ)
    assert torch.equal(a.rank, b.rank)


# ----------------------------------------------------------------------------- model level


class Toy(nn.Module):
    """Stand-in with the CSWM interface: linear encoder, action-embedding transition, BatchNorm."""

    def __init__(self, c=3, hw=4, k=2, d=2, n_act=4):
        super().__init__()
        self.config = SimpleNamespace(input_shape=(c, hw, hw), action_dim=n_act // k, num_objects=k,
                                      copy_action=False, ignore_action=False)
        self.k, self.d = k, d
        self.bn = nn.BatchNorm1d(c * hw * hw)
        self.lin = nn.Linear(c * hw * hw, k * d)
        self.act = nn.Embedding(n_act, k * d)

    def encode(self, obs):
        return self.lin(self.bn(obs.flatten(1))).view(-1, self.k, self.d)

    def predict(self, z, action):
        return z + self.act(action).view(-1, self.k, self.d)


def toy_episodes(e=23, t=10, c=3, hw=4, ids=True, seed=0):
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (e, t + 1, c, hw, hw), dtype=np.uint8)
    frames[1] = frames[0]  # an exact duplicate episode
    actions = rng.integers(0, 4, (e, t))
    actions[1] = actions[0]
    state_ids = rng.integers(0, 3, (e, t + 1, 2)) if ids else None
    return Episodes(frames, actions, state_ids, {"path": "toy.h5"})


def test_embed_paths_matches_manual_rollout_and_restores_mode():
    torch.manual_seed(0)
    model, ep = Toy(), toy_episodes()
    model.train()
    out = embed_paths(model, ep, num_steps=3, batch_size=5, all_states=True, progress=False)
    assert model.training
    model.eval()
    with torch.no_grad():
        z = model.encode(torch.from_numpy(ep.frames[:, 0]).float() / 255)
        for i in range(3):
            z = model.predict(z, torch.from_numpy(ep.actions[:, i]))
        tgt = model.encode(torch.from_numpy(ep.frames[:, 3]).float() / 255)
    assert out["predictions"].shape == (23, 2, 2) and out["states"].shape == (23, 11, 2, 2)
    torch.testing.assert_close(out["predictions"], z)
    torch.testing.assert_close(out["targets"], tgt)
    torch.testing.assert_close(out["states"][:, 3], tgt)
    assert torch.equal(out["target_ids"], torch.from_numpy(ep.state_ids[:, 3]))


def test_evaluate_every_setting_and_drop_last():
    torch.manual_seed(0)
    model, ep = Toy(), toy_episodes()
    res = {}
    for setting in ("global", "global_dedup", "global_dedup_correct", "batched", "local", "local_later"):
        r = evaluate(model, ep, 2, setting=setting, batch_size=10, ks=(1, 5, 10), progress=False)
        assert 0 <= r["Hits@1"] <= r["Hits@5"] <= r["Hits@10"] <= 1 and 0 < r["MRR"] <= 1
        res[setting] = r
    assert res["global"]["N"] == 23 and res["global"]["num_candidates"] == 23  # default keeps all
    assert res["batched"]["N"] == 20 and res["batched"]["num_candidates"] == 10
    assert res["local"]["num_candidates"] == 11 and res["local_later"]["num_candidates"] == 10
    assert res["global_dedup"]["Hits@1"] >= res["global"]["Hits@1"]
    assert res["global_dedup_correct"]["MRR"] >= res["global"]["MRR"]
    pub = evaluate(model, ep, 2, setting="global", averaging="published", batch_size=10, ks=(1,),
                   progress=False)
    assert pub["N"] == 20 and pub["drop_last"]  # the scripts skip the incomplete last batch
    again = evaluate(model, ep, 2, setting="batched", batch_size=10, progress=False)
    assert again == res["batched"]  # deterministic


def test_settings_say_what_they_include():
    """A setting is its candidates plus fixed evaluate() arguments; its name says whether it
    de-duplicates: the same scores as the plain setting of those candidates with the arguments."""
    torch.manual_seed(2)
    model, ep = Toy(), toy_episodes(e=30)
    for setting, explicit in [
        ("batched_dedup",
         dict(candidates="batched", dedup="published", averaging="published", order="original")),
        ("local_dedup", dict(candidates="local", dedup="published", order="original")),
        ("local_dedup_correct", dict(candidates="local", dedup="correct")),
        ("global_dedup", dict(candidates="global", dedup="published")),
        ("local_later_dedup", dict(candidates="local_later", dedup="published")),
    ]:
        assert SETTINGS[setting] == explicit
        a = evaluate(model, ep, 2, setting=setting, batch_size=10, ks=(1,), progress=False)
        args = {k: v for k, v in explicit.items() if k != "candidates"}
        b = evaluate(model, ep, 2, setting=explicit["candidates"], batch_size=10, ks=(1,), progress=False,
                     **args)
        a.pop("setting"), b.pop("setting")
        assert a == b
    for plain in ("global", "batched", "local", "local_later"):  # no suffix: nothing de-duplicated
        assert "dedup" not in SETTINGS[plain] and "averaging" not in SETTINGS[plain]
    with pytest.raises(CswmError, match="implies averaging='published', but averaging='mean'"):
        evaluate(model, ep, 1, setting="batched_dedup", averaging="mean", batch_size=10, progress=False)


def test_embed_paths_list_of_steps_equals_one_call_per_step():
    torch.manual_seed(3)
    model, ep = Toy(), toy_episodes()
    both = embed_paths(model, ep, [3, 1], batch_size=7, all_states=True, progress=False)
    assert sorted(both) == [1, 3]
    for L in (1, 3):
        one = embed_paths(model, ep, L, batch_size=7, all_states=True, progress=False)
        for key in ("predictions", "targets", "states", "target_ids"):
            assert torch.equal(both[L][key], one[key]), key
    still = embed_paths(model, ep, [2], batch_size=7, all_states=True, no_transition=True, progress=False)[2]
    assert torch.equal(still["predictions"], both[1]["states"][:, 0])  # exactly z_0
    alone = embed_paths(model, ep, [2], batch_size=7, no_transition=True, progress=False)[2]
    torch.testing.assert_close(alone["predictions"], still["predictions"])  # o_0 encoded without the rest


def test_evaluate_settings_equals_one_evaluate_call_per_setting():
    """One encoding for every (setting, L); the same scores as separate evaluate() calls; the
    no-transition control predicts z_0, so its prediction is nearest the start state every time."""
    torch.manual_seed(4)
    model, ep = Toy(), toy_episodes(e=30)
    settings = ["global_dedup", "batched", "local_dedup", "local_dedup_no_transition", "global_no_transition"]
    got = evaluate_settings(model, ep, settings, num_steps=[3, 1], batch_size=10)
    assert list(got) == [(m, L) for L in (1, 3) for m in settings]  # L increasing, then settings in order
    for L in (1, 3):
        alone = evaluate(model, ep, L, setting="batched", batch_size=10, progress=False)
        assert got["batched", L]["Hits@1"] == alone["Hits@1"] and got["batched", L]["MRR"] == alone["MRR"]
        still = evaluate(model, ep, L, setting="global", no_transition=True, progress=False)
        assert got["global_no_transition", L]["Hits@10"] == still["Hits@10"]
        assert got["local_dedup_no_transition", L][NEAREST_START] == 1.0
        assert NEAREST_START in got["local_dedup", L] and NEAREST_START not in got["global_dedup", L]
    assert "Hits@10" not in evaluate_settings(model, ep, ["batched"], batch_size=5)["batched", 1]  # k <= 5
    with pytest.raises(CswmError, match="unknown evaluation setting 'sideways'"):
        evaluate_settings(model, ep, ["sideways"])


def test_local_later_control_is_the_nearest_other_state_not_zero_by_construction():
    """In ``local`` ranking the no-transition prediction z_0 is itself a candidate at distance 0, so
    its Hits@1 is 0 unless o_L repeats o_0. ``local_later`` drops o_0 from the candidates (for model
    and control alike): the control then hits exactly when o_L is the state nearest o_0 among
    o_1..o_T -- what temporal smoothness alone gives."""
    torch.manual_seed(5)
    model, ep = Toy(), toy_episodes(e=30)
    got = evaluate_settings(model, ep, ["local_no_transition", "local_later_no_transition"], num_steps=[1, 2])
    emb = embed_paths(model, ep, [1, 2], all_states=True, progress=False)
    for L in (1, 2):
        s = emb[L]["states"].flatten(2).double()
        d = (s[:, 1:] - s[:, :1]).pow(2).sum(-1)  # distance of o_1..o_T to o_0
        by_hand = (d.argmin(1) == L - 1).double().mean().item()
        assert got["local_later_no_transition", L]["Hits@1"] == pytest.approx(by_hand)
        assert got["local_no_transition", L]["Hits@1"] == 0.0  # z_0 always finds o_0 first
    assert 0 < got["local_later_no_transition", 1]["Hits@1"]


def test_scores_by_batch_size_depends_on_the_candidates_not_the_model():
    rng = np.random.default_rng(0)
    t = rng.normal(size=(40, 2, 2))
    p = t + rng.normal(size=t.shape)
    got = scores_by_batch_size(p, t, [1, 4, 40, 41])
    assert list(got) == [1, 4, 40]  # a batch larger than N is skipped
    assert got[1] == {"Hits@1": 1.0, "MRR": 1.0}  # alone in its batch: always the top candidate
    assert got[40] == scores(rank_global(p, t), ks=(1,))
    assert got[4] == scores(rank_global(p, t, batch_size=4), ks=(1,))
    assert scores_by_batch_size(p[:30], t[:30], [7])[7] == scores(rank_global(p[:28], t[:28], batch_size=7),
                                                                 ks=(1,))  # the first 7 * 4 queries


def test_eval_mode_and_torch_threads_restore_on_error():
    model, n = Toy().train(), torch.get_num_threads()
    with pytest.raises(RuntimeError), eval_mode(model), torch_threads(1):
        assert not model.training and torch.get_num_threads() == 1
        raise RuntimeError("boom")
    assert model.training and torch.get_num_threads() == n


def test_evaluate_agrees_with_rank_functions():
    torch.manual_seed(1)
    model, ep = Toy(), toy_episodes(e=30)
    emb = embed_paths(model, ep, 1, progress=False)
    want = scores(rank_global(emb["predictions"], emb["targets"], emb["target_ids"], "published", 10),
                  (1,), "published")
    got = evaluate(model, ep, 1, setting="batched", dedup="published", batch_size=10, averaging="published",
                   ks=(1,), progress=False)
    assert got["Hits@1"] == want["Hits@1"] and got["MRR"] == want["MRR"]


@pytest.mark.parametrize(
    "kwargs,ep_kwargs,match",
    [
        ({"setting": "global_dedup"}, {"ids": False},
         r"dedup='published' needs ground-truth state ids but toy.h5 has"),
        ({"setting": "batched", "dedup": "correct"}, {"ids": False}, "needs ground-truth state ids"),
        ({"ks": (1, 50)}, {}, r"Hits@50 asked for, but global ranking has only 23 candidates"),
        ({"setting": "local", "ks": (12,)}, {}, "only 11 candidates"),
        ({"num_steps": 11}, {}, r"num_steps must be in 1..10"),
        ({"setting": "batched", "batch_size": 50}, {}, "fewer than one batch of 50"),
        ({"setting": "nope"}, {}, "setting must be one of"),
        ({}, {"c": 6}, r"checkpoint/dataset mismatch: the model expects observations \[3, 4, 4\]"),
    ],
)
def test_bad_input_gives_one_line_errors(kwargs, ep_kwargs, match):
    with pytest.raises(CswmError, match=match) as err:
        evaluate(Toy(), toy_episodes(**ep_kwargs), progress=False, **kwargs)
    assert "\n" not in str(err.value)


def test_action_range_mismatch():
    ep = toy_episodes()
    ep.actions[3, 0] = 9
    with pytest.raises(CswmError, match=r"takes actions 0..3 but toy.h5 has actions 0..9"):
        evaluate(Toy(), ep, progress=False)


def test_nan_embeddings_and_cli_missing_folder(tmp_path, capsys):
    with pytest.raises(CswmError, match="NaN"):
        rank_global(np.full((3, 2), math.nan), np.zeros((3, 2)))
    with pytest.raises(SystemExit) as ex:
        cli_errors(main)(["--save-folder", str(tmp_path / "nope"), "--dataset", "x.h5"])
    assert ex.value.code == 2
    assert capsys.readouterr().err.strip().startswith("error: checkpoint folder")


def test_cli_end_to_end_with_real_model_and_files(tmp_path, capsys):
    import json

    from tiny_worlds import tiny_episodes

    from cswm_lib.data.hdf5 import save_episodes
    from cswm_lib.model import CSWM, ModelConfig

    ep = tiny_episodes(E=30, T=10, K=2, seed=1)
    data = save_episodes(ep, tmp_path / "eval.h5")
    cfg = ModelConfig(hidden_dim=32, num_objects=2, action_dim=4, input_shape=ep.obs_shape)
    folder = tmp_path / "ckpt"
    folder.mkdir()
    torch.manual_seed(0)
    torch.save(CSWM(cfg).state_dict(), folder / "model.pt")
    (folder / "config.json").write_text(json.dumps({"model": cfg.to_dict()}))
    out = tmp_path / "res.json"
    rows = main(["--save-folder", str(folder), "--dataset", str(data), "--num-steps", "1", "3", "--dedup",
                 "--setting", "batched", "--batch-size", "10", "--json", str(out)])
    table = capsys.readouterr().out
    assert "Hits@1" in table and "batched" in table and len(rows) == 2
    saved = json.loads(out.read_text())["results"]
    assert [r["num_steps"] for r in saved] == [1, 3]
    assert saved[0]["N"] == 30 and saved[0]["dedup"] == "published"
    with pytest.raises(SystemExit) as ex:  # 6-channel data vs a 3-channel model
        data6 = save_episodes(tiny_episodes(E=30, T=10, K=2, channels=6), tmp_path / "eval6.h5")
        cli_errors(main)(["--save-folder", str(folder), "--dataset", str(data6)])
    assert ex.value.code == 2 and "checkpoint/dataset mismatch" in capsys.readouterr().err


# ----------------------------------------------------------------------------- original-layout files


def test_published_batches_follow_the_original_files_h5py_order():
    """eval_ids_b.py batches a file's episodes in the order h5py lists its groups ("0", "1", "10",
    "11", ..., "19", "2", ...). On the original code's own 20-episode file and checkpoint, the
    batched presets put exactly those episodes together, drop the same incomplete last batch, and
    score what a direct computation over the groups in h5py's order gives."""
    import h5py

    from cswm_lib.checkpoint import load_model
    from cswm_lib.data.hdf5 import load_episodes

    data = Path(__file__).parent / "data" / "original"
    model = load_model(data / "checkpoint_small", "cpu")
    ep = load_episodes(data / "sample_original_layout.h5")
    with h5py.File(data / "sample_original_layout.h5") as f:
        keys = list(f.keys())  # what the original scripts iterate over
        groups = [(f[k]["obs"][()], f[k]["next_obs"][()], f[k]["action"][()], f[k]["next_state_ids"][()])
                  for k in keys]
    assert keys[:4] == ["0", "1", "10", "11"] and len(keys) == 20 and keys != sorted(keys, key=int)
    assert ep.original_order.tolist() == [int(k) for k in keys]
    differ = []
    for batch, L in ((4, 1), (4, 5), (3, 2), (6, 1)):  # 3 and 6: 18 of 20 episodes, the last batch dropped
        n = 20 - 20 % batch
        with torch.no_grad():  # direct: the original's float frames, in h5py's order, first n
            obs = torch.tensor(np.stack([g[0][0] for g in groups[:n]]))
            tgt = torch.tensor(np.stack([g[1][L - 1] for g in groups[:n]]))
            pred = model.encode(obs)
            for t in range(L):
                pred = model.predict(pred, torch.tensor([int(g[2][t]) for g in groups[:n]]))
            targ = model.encode(tgt)
        ids = np.stack([g[3][L - 1] for g in groups[:n]])
        p64, t64 = pred.flatten(1).double().numpy(), targ.flatten(1).double().numpy()
        want = ref_global(p64, t64, ids, "published", batch, (1, 2), "published")
        got = evaluate(model, ep, L, setting="batched_dedup", batch_size=batch, ks=(1, 2), return_ranks=True,
                       progress=False)
        assert got["order"] == "original" and got["N"] == n
        assert got["episode_index"].tolist() == [int(k) for k in keys[:n]]  # batch composition
        for key, v in want.items():
            assert got[key] == pytest.approx(v, abs=1e-12), (batch, L, key)
        numeric = evaluate(model, ep, L, setting="batched_dedup", batch_size=batch, ks=(1, 2),
                           order="numeric",
                           return_ranks=True, progress=False)
        assert numeric["episode_index"].tolist() == list(range(n)) and numeric["order"] == "numeric"
        differ.append(numeric["MRR"] != got["MRR"])
    assert any(differ)  # on this file the two orders give other published numbers
    # order-free scores are the same in both orders; our format has one order only
    a = evaluate(model, ep, 1, setting="global_dedup", ks=(1,), progress=False)
    b = evaluate(model, ep, 1, setting="global_dedup", ks=(1,), order="original", progress=False)
    assert a["Hits@1"] == b["Hits@1"] and a["MRR"] == pytest.approx(b["MRR"], abs=1e-12)
    plain = Episodes(ep.frames, ep.actions, ep.state_ids)
    c = evaluate(model, plain, 1, setting="batched_dedup", batch_size=3, ks=(1,), return_ranks=True,
                 progress=False)
    assert c["episode_index"].tolist() == list(range(18))
    with pytest.raises(CswmError, match="order must be one of"):
        evaluate(model, ep, 1, setting="batched", order="lexicographic", progress=False)


def test_published_local_score_follows_the_original_files_h5py_order():
    """eval_ids_b_inep.py: per batch of 100 (here 3) in h5py's order, the mean of per-batch Hits@1,
    the incomplete last batch dropped -- on the original code's file and checkpoint."""
    import h5py

    from cswm_lib.checkpoint import load_model
    from cswm_lib.data.hdf5 import load_episodes

    data = Path(__file__).parent / "data" / "original"
    model = load_model(data / "checkpoint_small", "cpu")
    ep = load_episodes(data / "sample_original_layout.h5")
    with h5py.File(data / "sample_original_layout.h5") as f:
        keys = list(f.keys())[:18]  # 6 batches of 3; the last 2 groups in h5py order are dropped
        obs = np.stack([np.concatenate([f[k]["obs"][()], f[k]["next_obs"][-1:]]) for k in keys])
        acts = np.stack([f[k]["action"][()] for k in keys])
        ids = np.stack([np.concatenate([f[k]["state_ids"][()], f[k]["next_state_ids"][-1:]]) for k in keys])
    for L in (1, 4):
        with torch.no_grad():
            states = model.encode(torch.tensor(obs.reshape(-1, 3, 50, 50))).view(18, 11, -1)
            pred = states[:, 0].view(18, 5, 2)
            for t in range(L):
                pred = model.predict(pred, torch.tensor(acts[:, t]))
        ranks = ref_local(pred.flatten(1).double().numpy(), states.double().numpy(), L, ids, "published")
        want = float(np.mean((ranks == 0).reshape(6, 3).mean(1)))
        got = evaluate(model, ep, L, setting="local_dedup", averaging="published", batch_size=3, ks=(1,),
                       return_ranks=True, progress=False)
        assert got["N"] == 18 and got["episode_index"].tolist() == [int(k) for k in keys]
        assert got["Hits@1"] == pytest.approx(want, abs=1e-12), L


# ----------------------------------------------------------------------------- lazy reads


def _small_model_and_file(tmp_path, E, seed=1):
    from tiny_worlds import tiny_episodes

    from cswm_lib.data.hdf5 import save_episodes
    from cswm_lib.model import CSWM, ModelConfig

    ep = tiny_episodes(E=E, T=10, K=2, seed=seed)
    path = save_episodes(ep, tmp_path / f"eval{E}.h5")
    torch.manual_seed(0)
    model = CSWM(ModelConfig(hidden_dim=32, num_objects=2, action_dim=4, input_shape=ep.obs_shape))
    return model, path


def test_lazy_reads_give_exactly_the_eager_results(tmp_path):
    from cswm_lib.data.hdf5 import LazyFrames, load_episodes

    model, path = _small_model_and_file(tmp_path, 40)
    eager, lazy = load_episodes(path), load_episodes(path, lazy=True)
    assert isinstance(lazy.frames, LazyFrames) and isinstance(eager.frames, np.ndarray)
    assert lazy.frames.shape == eager.frames.shape and np.array_equal(np.asarray(lazy.frames), eager.frames)
    for setting in ("global", "global_dedup", "batched", "local", "local_dedup", "local_later"):
        for steps in (1, 3):
            kw = dict(setting=setting, batch_size=10, progress=False, return_ranks=True, encode_batch_size=16)
            a, b = evaluate(model, eager, steps, **kw), evaluate(model, lazy, steps, **kw)
            assert a.keys() == b.keys()
            for key in a:
                same = np.array_equal(a[key], b[key]) if isinstance(a[key], np.ndarray) else a[key] == b[key]
                assert same, (setting, steps, key)
    lazy.frames.close()


@pytest.mark.parametrize("E", [20, 80])
def test_lazy_evaluation_reads_only_the_needed_frames_a_chunk_at_a_time(tmp_path, E):
    """Frames read = 2 per query (o_0 and o_L) and the largest read is one encode batch: memory
    follows the chunk, not N."""
    from cswm_lib.data.hdf5 import load_episodes

    model, path = _small_model_and_file(tmp_path, E)
    ep = load_episodes(path, lazy=True)
    evaluate(model, ep, 3, setting="global", dedup="published", progress=False, encode_batch_size=8)
    assert ep.frames.frames_read == 2 * E
    assert ep.frames.largest_read == 2 * 8
    ep.frames.frames_read = ep.frames.largest_read = 0
    evaluate(model, ep, 3, setting="local", progress=False, encode_batch_size=8)  # needs every frame
    assert ep.frames.frames_read == 11 * E and ep.frames.largest_read == 11 * 8
    ep.frames.close()
