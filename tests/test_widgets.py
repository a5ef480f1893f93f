"""The embedding explorer: precomputation, driving it by its ipywidgets, side by side, errors, latency."""

from __future__ import annotations

import json
import time

import matplotlib

# This process only (not os.environ: that would leak into the kernels that nbval and the book
# build start, where Agg makes inline figures vanish).
matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from tiny_worlds import tiny_episodes  # noqa: E402

from cswm_lib.analysis import NearestStates, pca_2d, slot_object_r2  # noqa: E402
from cswm_lib.data.episodes import to_float  # noqa: E402
from cswm_lib.data.hdf5 import save_episodes  # noqa: E402
from cswm_lib.errors import CswmError  # noqa: E402
from cswm_lib.model import CSWM, ModelConfig  # noqa: E402
from cswm_lib.widgets import EmbeddingExplorer, frame_rgb, slot_colour  # noqa: E402

T = 6


def small_model(D: int = 2, seed: int = 0, K: int = 3, hidden: int = 32, channels: int = 3) -> CSWM:
    torch.manual_seed(seed)
    cfg = ModelConfig(embedding_dim=D, hidden_dim=hidden, num_objects=K, input_shape=(channels, 50, 50))
    return CSWM(cfg)


@pytest.fixture(scope="module")
def episodes():
    return tiny_episodes(E=12, T=T, K=3, seed=1)


@pytest.fixture(scope="module")
def explorer(episodes):
    return EmbeddingExplorer(small_model(D=4), episodes, num_neighbours=3, progress=False)


def test_precompute_matches_the_model(episodes, explorer):
    v, model = explorer.views[0], explorer.views[0].model
    frames = to_float(episodes.frames.reshape(-1, 3, 50, 50))
    assert model.training  # the explorer computes in eval mode and leaves the mode as it was
    with torch.no_grad():
        model.eval()
        z, m = model.encode(frames), model.masks(frames)
        model.train()
    assert v.z.shape == (12, T + 1, 3, 4) and v.xy.shape == (12, T + 1, 3, 2)
    np.testing.assert_allclose(v.z.reshape(-1, 3, 4), z.numpy(), atol=1e-5)
    assert v.masks.dtype == np.uint8 and v.masks.shape == (12, T + 1, 3, 5, 5)
    assert np.abs(v.masks.reshape(-1, 3, 5, 5) / 255 - m.numpy()).max() <= 0.5 / 255 + 1e-6
    # PCA: orthonormal basis, variance shares descending, projection = (z - mean) @ basis
    np.testing.assert_allclose(v.basis.T @ v.basis, np.eye(2), atol=1e-5)
    assert 1 >= v.explained[0] >= v.explained[1] >= 0
    np.testing.assert_allclose(v.xy, v.project(v.z), atol=1e-5)


def test_pca_is_identity_for_two_dims_and_finds_the_main_axis():
    z = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    mean, basis, share = pca_2d(z)
    assert share is None and np.allclose((z - mean) @ basis, z)
    x = np.zeros((100, 3), np.float32)
    x[:, 2] = np.linspace(-5, 5, 100)  # all variance along the third axis
    x[:, 0] = np.tile([-0.1, 0.1], 50)
    _, basis, share = pca_2d(x)
    assert abs(basis[2, 0]) == pytest.approx(1, abs=1e-5) and share[0] > 0.99


def test_nearest_states_agree_with_the_model_energy():
    model = small_model(D=3)
    z = torch.randn(40, 3, 3)
    index = NearestStates(z.numpy(), model.config.sigma)
    idx, energy = index.query(z[7].numpy(), 5, exclude=7)
    brute = model.energy(z[7][None], z)
    brute[7] = float("inf")
    want = torch.argsort(brute)[:5]
    assert idx.tolist() == want.tolist() and 7 not in idx
    np.testing.assert_allclose(energy, brute[want].numpy(), rtol=1e-4, atol=1e-5)
    assert np.all(np.diff(energy) >= 0)


def test_nearest_other_state_of_many_queries_matches_single_queries():
    z = np.random.default_rng(3).normal(size=(300, 2, 3)).astype(np.float32)
    z[5] = z[17]  # a duplicate: distance 0, and never the query itself
    index = NearestStates(z, sigma=0.5)
    rows = np.array([0, 5, 17, 299])
    idx, energy = index.nearest(rows, chunk=3)
    assert idx[1] == 17 and idx[2] == 5 and energy[1] == pytest.approx(0, abs=1e-5)
    for r, i, e in zip(rows, idx, energy, strict=True):
        j, ej = index.query(z[r], 1, exclude=int(r))
        assert i == j[0] and e == pytest.approx(ej[0], rel=1e-4, abs=1e-6)
    groups = np.arange(300) // 10  # "episodes" of 10 states: 5 and 17 are in different ones
    idx, _ = index.nearest(rows, groups)
    assert idx[1] == 17 and all(groups[i] != groups[r] for r, i in zip(rows, idx, strict=True))
    groups[17] = groups[5]  # now the duplicate is in the query's own episode: skipped
    idx, energy = index.nearest(rows[1:2], groups)
    assert groups[idx[0]] != groups[5] and energy[0] > 0


def test_slot_object_r2_finds_the_tracking_slot():
    rng = np.random.default_rng(0)
    pos = rng.integers(0, 5, size=(200, 3, 2)).astype(float)  # 3 objects on a 5x5 grid
    z = rng.normal(size=(200, 2, 2))
    z[:, 1] = pos[:, 2] @ np.array([[0.3, -1.0], [2.0, 0.5]]) + 4  # slot 1 = affine map of object 2
    r2 = slot_object_r2(z, pos)
    assert r2.shape == (2, 3)
    assert r2[1, 2] == pytest.approx(1, abs=1e-9)
    assert r2[0].max() < 0.1 and r2[1, :2].max() < 0.1


def test_sliders_drive_the_figure(episodes, explorer):
    sliders = explorer.sliders
    v = explorer.views[0]
    sliders["episode"].value = 3
    first = explorer.shown()
    png = explorer._png
    assert first["title"] == f"episode 3, step 0 of {T}" and first["episode"] == 3 and first["step"] == 0
    np.testing.assert_allclose(first["rows"][0]["current"], v.xy[3, 0], atol=1e-6)
    np.testing.assert_allclose(first["rows"][0]["trajectory"], v.xy[3], atol=1e-6)

    sliders["step"].value = 4
    now = explorer.shown()
    assert now["title"] == f"episode 3, step 4 of {T}" and explorer.step == 4
    row = now["rows"][0]
    assert not np.allclose(row["current"], first["rows"][0]["current"])  # the figure's data changed
    assert explorer._png != png  # and what the widget displays
    np.testing.assert_allclose(row["current"], v.xy[3, 4], atol=1e-6)
    np.testing.assert_allclose(row["next"], v.xy[3, 5], atol=1e-6)
    # the predictions shown: z + T(z, a) for all A = 4 * K actions, projected
    with torch.no_grad():
        z = torch.from_numpy(v.z[3, 4])
        v.model.eval()
        pred = v.model.predict(z[None].expand(12, 3, 4), torch.arange(12)).numpy()
    assert row["predictions"].shape == (12, 3, 2)
    np.testing.assert_allclose(row["predictions"], v.project(pred), atol=1e-4)
    # observation panel shows o_t on top; neighbours exclude the state itself, nearest first
    np.testing.assert_allclose(now["observation"][:50], frame_rgb(episodes.frames[3, 4]) / 255)
    assert len(row["neighbours"]) == 3 and (3, 4) not in [(e, t) for e, t, _ in row["neighbours"]]
    assert [e for *_, e in row["neighbours"]] == sorted(e for *_, e in row["neighbours"])
    m = v.masks[3, 4, 0].astype(np.float32) / 255
    np.testing.assert_allclose(row["masks"][:, :5], m[:, :, None] * slot_colour(0), atol=1e-6)


def test_neighbours_from_other_episodes(explorer):
    explorer.neighbours_from = "other episodes"
    try:
        explorer.set(episode=4, step=2)
        nbrs = explorer.shown()["rows"][0]["neighbours"]
        assert explorer.rows[0].nn_title.get_text().endswith("(other episodes)")
        assert len(nbrs) == 3 and all(e != 4 for e, _, _ in nbrs)
        v = explorer.views[0]
        idx, energy = v.index.nearest(np.array([4 * (T + 1) + 2]), groups=np.arange(12 * (T + 1)) // (T + 1))
        assert (nbrs[0][0], nbrs[0][1]) == divmod(int(idx[0]), T + 1)
        assert nbrs[0][2] == pytest.approx(float(energy[0]), rel=1e-4, abs=1e-6)
    finally:
        explorer.neighbours_from = "all"
    assert explorer.rows[0].nn_title.get_text() == "nearest states of the eval set"
    with pytest.raises(CswmError, match="neighbours_from must be"):
        explorer.neighbours_from = "mine"


def test_set_renders_once_and_handles_the_last_step(explorer, monkeypatch):
    calls = []
    render = explorer.render
    monkeypatch.setattr(explorer, "render", lambda: calls.append(1) or render())
    explorer.widget  # noqa: B018
    explorer.set(episode=5, step=T)
    assert len(calls) == 1
    s = explorer.shown()
    assert s["title"] == f"episode 5, step {T} of {T}"
    assert explorer.sliders["episode"].value == 5 and explorer.sliders["step"].value == T
    assert s["rows"][0]["next"].shape == (0, 2)  # no next state after the last frame
    with pytest.raises(CswmError, match=r"^episode must be in 0\.\.11, got 12$"):
        explorer.set(episode=12)
    with pytest.raises(CswmError, match="step must be in"):
        explorer.set(step=-1)


def test_masks_computed_on_demand_equal_the_precomputed_ones(episodes, explorer):
    model = explorer.views[0].model
    lean = EmbeddingExplorer(model, episodes, mask_budget=0, num_neighbours=3, progress=False)
    assert lean.views[0].masks is None
    explorer.set(episode=2, step=3)
    lean.set(episode=2, step=3)
    want = explorer.shown()["rows"][0]["masks"]
    np.testing.assert_allclose(lean.shown()["rows"][0]["masks"], want, atol=3e-3)


def test_side_by_side_two_models_from_folders(tmp_path, episodes):
    folders = []
    for name, seed in [("baseline", 0), ("mixed", 1)]:
        model = small_model(D=2, seed=seed)
        folder = tmp_path / name
        folder.mkdir()
        torch.save(model.state_dict(), folder / "model.pt")
        (folder / "config.json").write_text(json.dumps({"model": model.config.to_dict()}))
        folders.append(folder)
    data = save_episodes(episodes, tmp_path / "eval.h5")
    ex = EmbeddingExplorer(folders[0], data, other=folders[1], progress=False)
    assert [v.name for v in ex.views] == ["baseline", "mixed"]
    sl = ex.sliders
    assert set(sl) == {"episode", "step", "view"}
    sl["episode"].value, sl["step"].value = 4, 2
    rows = ex.shown()["rows"]
    assert [r["name"] for r in rows] == ["baseline", "mixed"]
    for r, v in zip(rows, ex.views, strict=True):
        np.testing.assert_allclose(r["current"], v.z[4, 2], atol=1e-6)  # D = 2: shown as is
    assert not np.allclose(rows[0]["current"], rows[1]["current"])  # two different models
    sl["view"].value = "mixed"
    rows = ex.shown()["rows"]
    assert [r["name"] for r in rows] == ["mixed"] and ex.title == f"episode 4, step 2 of {T}"
    ex.set(view="side by side")
    assert len(ex.shown()["rows"]) == 2 and sl["view"].value == "side by side"
    fig = ex.plot(1, 2)
    assert len(fig.axes) == 1 + 3 * 2 and fig.texts[0].get_text() == f"episode 1, step 2 of {T}"
    plt.close(fig)
    assert ex.title == f"episode 4, step 2 of {T}"  # the static copy leaves the live figure alone
    with pytest.raises(CswmError, match="view must be"):
        ex.set(view="nope")


def test_bad_input_is_one_line(episodes):
    atari_like = tiny_episodes(E=3, T=4, K=3, channels=6)
    with pytest.raises(CswmError) as err:
        EmbeddingExplorer(small_model(), atari_like, progress=False)
    msg = str(err.value)
    assert "\n" not in msg and "[3, 50, 50]" in msg and "[6, 50, 50]" in msg
    with pytest.raises(CswmError) as err:
        EmbeddingExplorer(small_model(), episodes, other=small_model(channels=6), progress=False)
    assert str(err.value).startswith("other: ") and "\n" not in str(err.value)
    with pytest.raises(CswmError, match="names has 1 entries for 2 models"):
        EmbeddingExplorer(small_model(), episodes, other=small_model(), names=["a"], progress=False)
    with pytest.raises(CswmError, match="model names must be distinct"):
        EmbeddingExplorer(small_model(), episodes, other=small_model(), names=["a", "a"], progress=False)
    ex = EmbeddingExplorer(small_model(), episodes, other=small_model(seed=1), progress=False)
    assert [v.name for v in ex.views] == ["model", "other"]
    with pytest.raises(CswmError, match="dataset file not found"):
        EmbeddingExplorer(small_model(), "/nonexistent/eval.h5", progress=False)


@pytest.mark.slow
def test_interaction_latency_on_a_1000_episode_eval_set():
    """An interaction (slider change -> artists updated -> PNG the widget shows) must take < 200 ms
    on CPU. The machine may be shared: we take the median of many updates."""
    eps = tiny_episodes(E=1000, T=10, K=5, seed=2)
    torch.manual_seed(0)
    model = CSWM(ModelConfig(embedding_dim=4, num_objects=5))  # the paper's hidden size 512, PCA on
    ex = EmbeddingExplorer(model, eps, progress=False)
    sl = ex.sliders
    times = []
    rng = np.random.default_rng(0)
    for i in range(16):
        t0 = time.perf_counter()
        if i % 2:
            sl["step"].value = int(rng.integers(0, 11))
        else:
            sl["episode"].value = int(rng.integers(0, 1000))
        times.append(time.perf_counter() - t0)
    median = float(np.median(times))
    print(f"interaction latency: median {median * 1e3:.0f} ms, max {max(times) * 1e3:.0f} ms")
    assert median < 0.2
