"""C-SWM model: shapes, equivalence with the straightforward GNN, equivariance, energies, errors."""

import pytest
import torch
import torch.nn.functional as F

from cswm_lib import CswmError
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
    agg = torch.zeros(B * K, msg.shape[1]).index_add_(0, row, msg)
    cfg = m.config
    if cfg.ignore_action:
        parts = [nodes]
    elif cfg.copy_action:
        a = F.one_hot(action, cfg.action_dim).float().repeat_interleave(K, 0)
        parts = [nodes, a]
    else:
        parts = [nodes, F.one_hot(action, cfg.action_dim * K).float().view(B * K, cfg.action_dim)]
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


@pytest.mark.parametrize("encoder", ["small", "medium", "large"])
def test_extractor_fast_paths_equal_plain_convolutions(encoder):
    """Patch-matmul (small) and channels-last (medium, large) give the plain NCHW convs' result."""
    torch.manual_seed(4)
    ex = CSWM(small_cfg(encoder=encoder, input_shape=(6, 50, 50))).obj_extractor.train()
    x = torch.rand(3, 6, 50, 50)
    act = F.leaky_relu if encoder == "medium" else F.relu
    h = x
    for i in range(1, ex.num_hidden + 1):
        h = act(getattr(ex, f"ln{i}")(getattr(ex, f"cnn{i}")(h)))
    ref = torch.sigmoid(getattr(ex, f"cnn{ex.num_hidden + 1}")(h))
    torch.testing.assert_close(ex(x), ref, rtol=1e-5, atol=1e-5)
