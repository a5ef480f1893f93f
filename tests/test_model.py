"""C-SWM model: shapes, equivalence with the straightforward GNN, equivariance, energies, errors."""

import copy
import re

import pytest
import torch
import torch.nn.functional as F

from cswm_lib.errors import CswmError
from cswm_lib.model import CSWM, ModelConfig


def small_cfg(**kw) -> ModelConfig:
    base = dict(hidden_dim=64, embedding_dim=3, num_objects=4, action_dim=4)
    return ModelConfig(**{**base, **kw})


@pytest.mark.parametrize("encoder,mask", [("small", (5, 5)), ("medium", (10, 10)), ("large", (50, 50))])
@pytest.mark.parametrize("channels", [3, 6])
def test_encoder_shapes(encoder, mask, channels):
    torch.manual_seed(0)
    m = CSWM(small_cfg(encoder=encoder, input_shape=(channels, 50, 50)))
    obs = torch.rand(2, channels, 50, 50)
    masks = m.masks(obs)
    assert masks.shape == (2, 4, *mask) and 0 < masks.min() and masks.max() < 1
    z = m.encode(obs)
    assert z.shape == (2, 4, 3)
    assert m.transition(z, torch.tensor([0, 15])).shape == (2, 4, 3)
    assert m.energy(z, z).shape == (2,) and torch.all(m.energy(z, z) == 0)


def reference_transition(m: CSWM, z: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """The original's per-edge form: edge list with batch offsets, full edge MLP, scatter-add by source."""
    gnn, (B, K, D) = m.transition_model, z.shape
    adj = torch.ones(K, K) - torch.eye(K)
    row, col = adj.nonzero().t()
    offs = (torch.arange(B) * K)[:, None]
    row, col = (row[None] + offs).reshape(-1), (col[None] + offs).reshape(-1)
    nodes = z.reshape(B * K, D)
    msg = gnn.edge_mlp(torch.cat([nodes[row], nodes[col]], -1))
    agg = msg.new_zeros(B * K, msg.shape[1]).index_add_(0, row, msg)
    cfg = m.config
    if cfg.ignore_action:
        parts = [nodes]
    elif cfg.copy_action:
        a = F.one_hot(action, cfg.action_dim).to(z.dtype).repeat_interleave(K, 0)
        parts = [nodes, a]
    else:
        parts = [nodes, F.one_hot(action, cfg.action_dim * K).to(z.dtype).view(B * K, cfg.action_dim)]
    return gnn.node_mlp(torch.cat(parts + [agg], -1)).view(B, K, D)


@pytest.mark.parametrize("mode", [{}, {"copy_action": True}, {"ignore_action": True}])
def test_fast_gnn_equals_per_edge_reference(mode):
    torch.manual_seed(1)
    m = CSWM(small_cfg(**mode))
    z, a = torch.randn(7, 4, 3), torch.randint(0, 4, (7,))
    if not mode:
        a = torch.randint(0, 16, (7,))
    torch.testing.assert_close(m.transition(z, a), reference_transition(m, z, a), rtol=1e-5, atol=1e-5)


def test_gnn_is_permutation_equivariant_over_slots():
    torch.manual_seed(2)
    m = CSWM(small_cfg())
    z, a = torch.randn(5, 4, 3), torch.randint(0, 16, (5,))
    perm = torch.tensor([2, 0, 3, 1])  # new slot i holds old slot perm[i]
    inv = torch.argsort(perm)
    a_perm = inv[a // 4] * 4 + a % 4  # the action addressed to old slot s now addresses its new place
    torch.testing.assert_close(
        m.transition(z[:, perm], a_perm), m.transition(z, a)[:, perm], rtol=1e-5, atol=1e-6
    )
    mc = CSWM(small_cfg(copy_action=True))
    b = torch.randint(0, 4, (5,))
    torch.testing.assert_close(
        mc.transition(z[:, perm], b), mc.transition(z, b)[:, perm], rtol=1e-5, atol=1e-6
    )


def test_action_reaches_only_its_slot():
    m = CSWM(small_cfg())
    vec = m.transition_model.action_vectors(torch.tensor([9]), 4, torch.float32)  # object 2, direction 1
    assert vec.shape == (1, 4, 4) and vec.sum() == 1 and vec[0, 2, 1] == 1
    vc = CSWM(small_cfg(copy_action=True)).transition_model.action_vectors(
        torch.tensor([3]), 4, torch.float32
    )
    assert torch.all(vc[0, :, 3] == 1) and vc.sum() == 4


def test_energy_hand_computed_mean_over_objects():
    m = CSWM(small_cfg(embedding_dim=2, num_objects=2, sigma=0.5))
    z = torch.tensor([[[0.0, 0.0], [1.0, 1.0]]])
    z2 = torch.tensor([[[1.0, 0.0], [1.0, 3.0]]])
    # 0.5 / 0.25 = 2; per slot sums 1 and 4; mean over K = 2.5 -> 5.0
    assert m.energy(z, z2).item() == pytest.approx(5.0)
    negs = torch.stack([z2, z], 1)  # [1, 2, K, D]
    assert m.energy(z[:, None], negs).tolist() == [[5.0, 0.0]]


def test_contrastive_loss_terms():
    torch.manual_seed(3)
    m = CSWM(small_cfg(num_objects=2, hinge=1.0))
    obs, nxt = torch.rand(4, 3, 50, 50), torch.rand(4, 3, 50, 50)
    a = torch.randint(0, 8, (4,))
    idx = torch.arange(4)[:, None]  # every sample its own negative: energy 0 -> neg term = hinge
    loss, pos, neg = m.contrastive_loss(obs, a, nxt, neg_batch_index=idx)
    assert neg.item() == pytest.approx(1.0) and loss.item() == pytest.approx(pos.item() + 1.0)
    loss2, _, neg2 = m.contrastive_loss(obs, a, nxt, neg_obs=torch.rand(4, 3, 3, 50, 50))
    assert 0 <= neg2.item() <= 1.0


def test_config_errors_are_one_line():
    with pytest.raises(CswmError, match="unknown encoder 'huge'") as err:
        ModelConfig(encoder="huge")
    assert "\n" not in str(err.value)
    with pytest.raises(CswmError, match="too small"):
        ModelConfig(encoder="small", input_shape=(3, 8, 8))


def plain_extractor(ex, x: torch.Tensor) -> torch.Tensor:
    """The original's extractor: plain NCHW convs (the stride-10 one too), BatchNorm2d, activation."""
    act = F.leaky_relu if isinstance(ex.act, torch.nn.LeakyReLU) else F.relu
    for i in range(1, ex.num_hidden + 1):
        x = act(getattr(ex, f"ln{i}")(getattr(ex, f"cnn{i}")(x)))
    return torch.sigmoid(getattr(ex, f"cnn{ex.num_hidden + 1}")(x))


def close_grads(a: torch.nn.Module, b: torch.nn.Module, tol: float = 1e-5) -> None:
    """Every parameter gradient of ``a`` equals ``b``'s to ``tol`` x its largest entry (float32 sums of
    terms that cancel cannot match entry by entry). Skipped: biases of convs followed by a BatchNorm,
    whose true gradient is 0 (the BN removes them), so both hold float32 noise."""
    names = dict(a.named_parameters())
    for (name, p), q in zip(names.items(), b.parameters(), strict=True):
        if re.sub(r"cnn(\d)\.bias$", r"ln\1.bias", name) in names.keys() - {name}:
            continue
        tol_abs = tol * q.grad.abs().max().item()
        torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=tol_abs, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("encoder", ["small", "medium", "large"])
def test_extractor_fast_paths_equal_plain_convolutions(encoder):
    """Patch-matmul (small) and channels-last (medium, large) give the plain NCHW convs' outputs, parameter
    gradients and BatchNorm running statistics (train mode), and the same outputs in eval mode."""
    torch.manual_seed(4)
    ex = CSWM(small_cfg(encoder=encoder, input_shape=(6, 50, 50))).obj_extractor.train()
    ref = copy.deepcopy(ex)
    x, w = torch.rand(3, 6, 50, 50), torch.randn(3, 4, *ModelConfig(encoder=encoder).mask_shape)
    out, want = ex(x), plain_extractor(ref, x)
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)
    (out * w).sum().backward()
    (want * w).sum().backward()
    close_grads(ex, ref, tol=1e-4)  # float32 sums that cancel: see the float64 test below for 1e-5
    for a, b in zip(ex.buffers(), ref.buffers(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(ex.eval()(x), plain_extractor(ref.eval(), x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("encoder,channels", [("medium", 6), ("large", 3)])
def test_channels_last_batch_norm_is_exact_at_training_size(encoder, channels):
    """At the training size (batch 32, 32 channels, 50x50) PyTorch's own channels-last BatchNorm is
    4e-6..1.2e-5 off the NCHW result (float32 statistics); ``batch_norm`` keeps it to float rounding."""
    torch.manual_seed(2)
    ex = CSWM(ModelConfig(encoder=encoder, input_shape=(channels, 50, 50))).obj_extractor.train()
    ref = copy.deepcopy(ex)
    x = torch.rand(32, channels, 50, 50)
    torch.testing.assert_close(ex(x), plain_extractor(ref, x), rtol=0, atol=2e-6)
    for a, b in zip(ex.buffers(), ref.buffers(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("encoder,channels,mode", [
    ("small", 3, {}), ("medium", 6, {"copy_action": True}), ("large", 3, {})])
def test_loss_and_gradients_equal_the_original_form(encoder, channels, mode):
    """One training step's loss and every parameter gradient equal those of the original's form (plain
    extractor, per-edge GNN, the original's energy expressions), in float64 so that float32 rounding
    (and the ReLUs it flips) cannot hide a wrong formula: the same code paths, to 1e-5 x the largest."""
    torch.manual_seed(5)
    m = CSWM(small_cfg(encoder=encoder, input_shape=(channels, 50, 50), **mode)).double()
    ref = copy.deepcopy(m)
    obs, nxt = torch.rand(2, 6, channels, 50, 50, dtype=torch.float64).unbind(0)
    a, perm = torch.randint(0, m.config.num_actions, (6,)), torch.randperm(6)
    loss = m.contrastive_loss(obs, a, nxt, neg_batch_index=perm[:, None])[0]
    en = ref.obj_encoder
    z, zn = (en.fc3(F.relu(en.ln(en.fc2(F.relu(en.fc1(plain_extractor(ref.obj_extractor, o).flatten(2)))))))
             for o in (obs, nxt))
    pos = (2.0 * (z + reference_transition(ref, z, a) - zn).pow(2).sum(2)).mean(1).mean()  # 0.5 / sigma^2 = 2
    want = pos + F.relu(1.0 - (2.0 * (z - z[perm]).pow(2).sum(2)).mean(1)).mean()
    torch.testing.assert_close(loss, want, rtol=1e-5, atol=1e-5)
    loss.backward()
    want.backward()
    close_grads(m, ref)
    for x, y in zip(m.buffers(), ref.buffers(), strict=True):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5)
