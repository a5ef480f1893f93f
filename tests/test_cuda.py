"""The device path: model, negatives, training and evaluation on ``cpu`` and, where present, ``cuda``.

Every test is parametrized on the device; the ``cuda`` cases skip without CUDA. On a GPU machine
``benchmarks/gpu/run.sh`` runs this file (``pytest --noconftest tests/test_cuda.py``).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from cswm_lib.curves import read_curve
from cswm_lib.data.loaders import TransitionBatches
from cswm_lib.evaluate import embed_paths, evaluate
from cswm_lib.model import CSWM, ModelConfig
from cswm_lib.negatives import STRATEGIES, sample_negatives
from cswm_lib.train import TrainConfig, read_log, train
from cswm_lib.utils import project_root

try:
    from tests.tiny_worlds import tiny_episodes
except ImportError:  # run without the rootdir on sys.path (pytest --noconftest from elsewhere)
    import sys

    sys.path.insert(0, str(project_root() / "tests"))
    from tiny_worlds import tiny_episodes

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                 reason="needs CUDA"))]


def _model(encoder: str, channels: int = 3, **kw) -> CSWM:
    torch.manual_seed(0)
    cfg = ModelConfig(encoder=encoder, input_shape=(channels, 50, 50), hidden_dim=32, num_objects=2, **kw)
    return CSWM(cfg)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("encoder", ["small", "medium", "large"])
def test_model_loss_and_backward_on_device(device, encoder):
    eps = tiny_episodes(E=3, T=4)
    model = _model(encoder).to(device)
    tb = TransitionBatches(eps, 8, device)
    b = next(tb.epoch(torch.Generator().manual_seed(0)))
    assert b.obs.device.type == device and b.obs.dtype == torch.float32 and b.obs.shape == (8, 3, 50, 50)
    assert b.episode.device.type == "cpu"  # indices stay on the CPU, where the negatives are drawn
    z = model.encode(b.obs)
    assert z.shape == (8, 2, 2) and z.device.type == device
    for strategy in STRATEGIES:
        neg = sample_negatives(strategy, b.episode, b.step, 3, 4, torch.Generator().manual_seed(1))
        kw = ({"neg_batch_index": neg.batch_index.to(device)} if neg.batch_index is not None
              else {"neg_obs": tb.obs(neg.episode, neg.step)})
        loss, pos, negl = model.contrastive_loss(b.obs, b.action, b.next_obs, **kw)
        assert loss.device.type == device and torch.isfinite(loss)
        model.zero_grad()
        loss.backward()
        assert all(p.grad is not None and p.grad.device.type == device for p in model.parameters()
                   if p.requires_grad)


@pytest.mark.parametrize("device", DEVICES)
def test_negatives_are_the_same_draws_whatever_the_device(device):
    """The RNG is a CPU generator: the indices (and so the frames) do not depend on the device."""
    eps = tiny_episodes(E=5, T=6)
    tb_cpu, tb_dev = TransitionBatches(eps, 16, "cpu"), TransitionBatches(eps, 16, device)
    for strategy in STRATEGIES:
        draws = []
        for tb in (tb_cpu, tb_dev):
            g = torch.Generator().manual_seed(3)
            b = next(tb.epoch(g))
            neg = sample_negatives(strategy, b.episode, b.step, 5, 6, g, num_negatives=2)
            # the frames as bytes again: CUDA divides by a scalar as a multiplication by its
            # reciprocal, so the floats may differ from the CPU's in the last bit
            frames = tb.obs(neg.episode, neg.step).cpu().mul(255).round().to(torch.uint8)
            draws.append((b.episode, neg.episode, neg.step, frames))
        for x, y in zip(*draws, strict=True):
            assert torch.equal(x, y)
        assert torch.equal(draws[0][3], torch.from_numpy(eps.frames)[draws[0][1], draws[0][2]])


@pytest.mark.parametrize("device", DEVICES)
def test_train_resume_and_checkpoint_on_device(device, tmp_path):
    eps, ev = tiny_episodes(E=4, T=5, seed=1), tiny_episodes(E=6, T=5, seed=2)
    cfg = dict(dataset="tiny.h5", name="run", save_folder=str(tmp_path), encoder="small", hidden_dim=32,
               num_objects=2, batch_size=8, eval_every=2, eval_episodes=6, device=device, progress=False,
               strategy="time_aligned")
    folder = train(TrainConfig(**cfg, num_updates=3), eps, ev)
    folder = train(TrainConfig(**cfg, num_updates=5), eps, ev)  # resumed on the same device
    log = read_log(folder)
    assert log[-1]["updates"] == 5 and all(np.isfinite(r["loss"]) for r in log)
    curve = read_curve(folder)  # the points of the weights of their time (not the selected weights')
    assert [p["updates"] for p in curve] == [0, 2, 3, 4, 5]  # 3: the end of the first budget
    state = torch.load(folder / "model.pt", map_location="cpu", weights_only=True)
    assert all(t.device.type == "cpu" for t in state.values())  # saved weights load anywhere


@pytest.fixture
def no_tf32():
    """Full float32 convolutions on CUDA (cuDNN's default is TF32, ~1e-3 relative): a comparison with
    the CPU then tests the device path, not TF32's rounding (the step check prints that)."""
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


@pytest.mark.parametrize("device", DEVICES)
def test_evaluation_on_device_matches_the_cpu(device, no_tf32):
    eps = tiny_episodes(E=12, T=5, seed=4)
    model = _model("small")
    ref = embed_paths(model, eps, [1, 2], device="cpu", all_states=True, progress=False)
    got = embed_paths(_model("small"), eps, [1, 2], device=device, all_states=True, progress=False)
    for L in (1, 2):
        for key in ("predictions", "targets", "states"):
            assert got[L][key].device.type == "cpu"  # returned on the CPU for ranking
            torch.testing.assert_close(got[L][key], ref[L][key], rtol=1e-4, atol=1e-5)
    for setting in ("global", "global_dedup", "local_dedup"):
        a = evaluate(model, eps, 1, setting=setting, device="cpu", progress=False, ks=(1,))
        b = evaluate(_model("small"), eps, 1, setting=setting, device=device, progress=False, ks=(1,))
        assert abs(a["Hits@1"] - b["Hits@1"]) <= 1 / 12 + 1e-9 and abs(a["MRR"] - b["MRR"]) < 0.1


def _driver():
    path = project_root() / "benchmarks" / "gpu" / "device_checks.py"
    spec = importlib.util.spec_from_file_location("device_checks", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_one_training_step_matches_the_cpu(device, dtype):
    """benchmarks/gpu's step check: loss and gradients within the stated tolerance of the CPU's."""
    drv = _driver()
    tol = drv.TOLERANCE[str(dtype).removeprefix("torch.")]
    for world, strategy in (("shapes", "baseline"), ("pong", "time_aligned")):
        e = drv.step_errors(device, dtype, world, strategy, batch=8, hidden_dim=64)
        assert e["loss"] <= tol and e["grad"] <= tol, (world, strategy, e)
        if device == "cpu":
            assert e == {"loss": 0.0, "grad": 0.0, "grad_max": 0.0}  # the same computation twice


@pytest.mark.parametrize("device", DEVICES)
def test_train_adam_equals_torch_adam_on_device(device):
    """train.Adam calls torch's undecorated optimizer methods (``__wrapped__``): on this torch (e.g.
    the GPU machine's 2.11) it must still exist and give torch.optim.Adam's numbers."""
    from cswm_lib.train import Adam

    models = [_model("small").to(device) for _ in range(2)]
    opts = [Adam(models[0].parameters(), lr=1e-2), torch.optim.Adam(models[1].parameters(), lr=1e-2)]
    g = torch.Generator().manual_seed(0)
    for _ in range(3):  # the same gradients for both (cuDNN's backward need not be deterministic)
        grads = [torch.randn(p.shape, generator=g).to(device) for p in models[0].parameters()]
        for m, opt in zip(models, opts, strict=True):
            opt.zero_grad()
            for p, grad in zip(m.parameters(), grads, strict=True):
                p.grad = grad.clone()
            opt.step()
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        assert torch.equal(a, b)
    assert opts[0].state_dict()["state"][0]["step"] == opts[1].state_dict()["state"][0]["step"]
