"""C-SWM: Contrastive Structured World Model (Kipf, van der Pol & Welling, ICLR 2020), in one file.

    obs [B,C,H,W] --ObjectExtractor--> masks [B,K,h,w] --ObjectEncoder--> z [B,K,D]
    z, action     --TransitionGNN---> delta [B,K,D];   prediction = z + delta

Energy (exactly as the original *code*, which differs from the paper's equations):

    E(z, z') = 1/(2 sigma^2) * mean_k sum_d (z_kd - z'_kd)^2        (the paper sums over k)
    loss     = mean_b E(z_t + T(z_t, a_t), z_{t+1}) + gamma * mean_{b,n} max(0, hinge - E(z_t, z_neg))

The negative term compares the *current* state z_t with the negative (the paper writes z_{t+1};
see tkipf/c-swm issue #3), with no transition applied.

Parameter names are the original's, so state dicts of ``tkipf/c-swm`` (and the negative-sampling
fork) load unchanged; ``load_state_dict`` is the whole "mapping":

    original ContrastiveSWM               here (same name)   layers
    obj_extractor.cnn{i}, .ln{i}          ObjectExtractor    conv i and its BatchNorm2d ("ln" is a BN)
    obj_encoder.fc1, .fc2, .ln, .fc3      ObjectEncoder      Linear, Linear, LayerNorm, Linear
    transition_model.edge_mlp.{0,2,3,5}   TransitionGNN      Linear(2D,H) Linear(H,H) LN(H) Linear(H,H)
    transition_model.node_mlp.{0,2,3,5}   TransitionGNN      Linear(D+A+H,H) Linear(H,H) LN(H) Linear(H,D)

The GNN is evaluated in an algebraically equal but cheaper form (see :class:`TransitionGNN`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cswm_lib import checks
from cswm_lib.errors import CswmError

if TYPE_CHECKING:
    from cswm_lib.data.episodes import Episodes

ENCODERS = ("small", "medium", "large")
#: spatial down-sampling of each object extractor: masks are [H // f, W // f]
_DOWNSAMPLE = {"small": 10, "medium": 5, "large": 1}


#: upper bounds of the model's sizes (far above the paper's; a guard against crafted configs)
MODEL_BOUNDS = {"embedding_dim": 4096, "hidden_dim": 65536, "action_dim": 4096, "num_objects": 256,
                "input_shape": 4096}


@dataclass
class ModelConfig:
    """Everything needed to rebuild a :class:`CSWM` (defaults: the original ``train.py``)."""

    encoder: str = "small"
    embedding_dim: int = 2
    hidden_dim: int = 512
    action_dim: int = 4
    num_objects: int = 5
    input_shape: tuple[int, int, int] = (3, 50, 50)
    sigma: float = 0.5
    hinge: float = 1.0
    copy_action: bool = False
    ignore_action: bool = False

    def __post_init__(self) -> None:
        checks.choice(self.encoder, "encoder", ENCODERS)
        self.input_shape = tuple(  # type: ignore[assignment]
            checks.integer(s, "input_shape", 1, MODEL_BOUNDS["input_shape"]) for s in self.input_shape)
        if len(self.input_shape) != 3:
            raise CswmError(f"input_shape must be (C, H, W), got {self.input_shape}")
        f = _DOWNSAMPLE[self.encoder]
        if min(self.input_shape[1:]) < f:
            raise CswmError(
                f"input {self.input_shape} is too small for the {self.encoder} encoder (needs >= {f}px)"
            )
        for k in ("embedding_dim", "hidden_dim", "action_dim", "num_objects"):
            lo = {"hidden_dim": 16, "action_dim": 0 if self.ignore_action else 1}.get(k, 1)
            why = {"hidden_dim": "the object extractor gets hidden_dim // 16 channels",
                   "action_dim": "actions per object"}.get(k, "")
            setattr(self, k, checks.integer(getattr(self, k), checks.flag(k), lo, MODEL_BOUNDS[k], why=why))
        self.sigma = checks.real(self.sigma, "--sigma", 0, lo_open=True, why="the energy divides by sigma^2")
        self.hinge = checks.real(self.hinge, "--hinge", 0, why="a negative margin penalises no negative")
        self.copy_action = checks.boolean(self.copy_action, "--copy-action")
        self.ignore_action = checks.boolean(self.ignore_action, "--ignore-action")
        if self.copy_action and self.ignore_action:
            raise CswmError("--copy-action and --ignore-action exclude each other")

    @property
    def mask_shape(self) -> tuple[int, int]:
        f = _DOWNSAMPLE[self.encoder]
        return self.input_shape[1] // f, self.input_shape[2] // f

    @property
    def num_actions(self) -> int:
        """Size of the integer action space the model accepts (0 when actions are ignored)."""
        if self.ignore_action:
            return 0
        return self.action_dim if self.copy_action else self.action_dim * self.num_objects

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        return d


#: The fields of :class:`ModelConfig` a training run sets (all but the input shape, which the data gives).
MODEL_KEYS = tuple(f.name for f in fields(ModelConfig) if f.name != "input_shape")


def check_compatible(cfg: ModelConfig | Any, episodes: Episodes, where: str = "the dataset") -> None:
    """Raise a one-line :class:`CswmError` when a model with config ``cfg`` cannot read ``episodes``
    (observation shape, Atari data without ``copy_action``, action range). Training checks its data
    with it, evaluation its checkpoint and eval set."""
    shape, obs = list(cfg.input_shape), list(episodes.obs_shape)
    if shape != obs:
        raise CswmError(
            f"checkpoint/dataset mismatch: the model expects observations {shape} (channels, height, "
            f"width) but {where} has {obs} (channels: 3 = block pushing, 6 = two stacked Atari frames)"
        )
    copy_action = getattr(cfg, "copy_action", False)
    if getattr(cfg, "ignore_action", False) or episodes.actions.size == 0:
        return
    if episodes.attrs.get("atari") and not copy_action:
        raise CswmError(f"checkpoint/dataset mismatch: {where} is Atari data: its actions address no "
                        "object, so pass --copy-action (the original README: --action-dim 6 --copy-action)")
    n_act = cfg.action_dim if copy_action else cfg.action_dim * cfg.num_objects
    lo = int(episodes.actions.min())
    need = max(int(episodes.attrs.get("num_actions", 0) or 0), int(episodes.actions.max()) + 1)
    if lo < 0:
        raise CswmError(f"{where} has negative actions (smallest {lo}): actions must be 0..{n_act - 1}")
    if need > n_act:
        flag = "--action-dim" if copy_action else "--action-dim x --num-objects"
        raise CswmError(
            f"checkpoint/dataset mismatch: the model takes actions 0..{n_act - 1} but {where} has actions "
            f"{lo}..{need - 1} (it has {need} actions but {flag} = {n_act})"
        )


class _NormalizeWithStats(torch.autograd.Function):
    """Training-mode BatchNorm given its batch statistics: PyTorch's own elementwise transform forward
    and its training-mode backward (which accounts for ``mean`` and ``var`` depending on ``x``)."""

    @staticmethod
    def forward(ctx, x, weight, bias, mean, var, eps):
        ctx.save_for_backward(x, weight, mean, (var + eps).rsqrt())
        ctx.eps = eps
        return F.batch_norm(x, mean, var, weight, bias, False, 0.0, eps)

    @staticmethod
    def backward(ctx, grad):
        x, weight, mean, invstd = ctx.saved_tensors
        dx, dw, db = torch.ops.aten.native_batch_norm_backward(
            grad, x, weight, None, None, mean, invstd, True, ctx.eps, [True, True, True]
        )
        return dx, dw, db, None, None, None


def batch_norm(bn: nn.BatchNorm2d, x: Tensor) -> Tensor:
    """``bn(x)``, with exact batch statistics for channels-last ``x``.

    PyTorch's channels-last training BatchNorm computes its statistics less accurately than its NCHW
    kernel: at 32 x 32 x 50 x 50 its outputs are up to ~1e-5 off (NCHW: ~5e-7), which flips a few
    ReLUs per layer and moves conv-weight gradients by up to ~1 %. Here mean and variance come from
    torch's cascaded sums (the variance of centred values); the elementwise transform and the backward
    stay PyTorch's own channels-last kernels. Costs 2-4 % of a Cubes or Atari training step.
    """
    if not (bn.training and x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)):
        return bn(x)  # NCHW (exact), or eval mode (running statistics: elementwise only)
    n = x.numel() // x.shape[1]
    with torch.no_grad():
        mean = x.mean((0, 2, 3))
        var = (x - mean[:, None, None]).square_().mean((0, 2, 3))
        bn.running_mean.lerp_(mean, bn.momentum)  # as nn.BatchNorm2d: the running variance is unbiased
        bn.running_var.lerp_(var * (n / (n - 1)), bn.momentum)
        bn.num_batches_tracked.add_(1)
    return _NormalizeWithStats.apply(x, bn.weight, bn.bias, mean, var, bn.eps)


class ObjectExtractor(nn.Module):
    """CNN: obs ``[B, C, H, W]`` -> one sigmoid mask per object slot ``[B, K, h, w]``.

    Hidden blocks are conv -> BatchNorm2d -> activation; the last conv has K channels + sigmoid.
    small  (2D shapes): 10x10 stride 10, 1x1            -> 5x5 masks for 50x50 input
    medium (Atari):     9x9 pad 4, LeakyReLU, 5x5 str 5 -> 10x10
    large  (3D cubes):  three 3x3 pad 1 + a 3x3 to K    -> 50x50

    Layout: medium and large run channels-last (NHWC) throughout: oneDNN's convolutions are 1.3x
    (3x3) to 2.6x (the 9x9 backward) faster than NCHW on a 1-thread CPU. BatchNorm and the activation
    stay in that layout (no slower there; converting around them would copy 10 MB twice each way per
    layer), with :func:`batch_norm` keeping BatchNorm exact.
    """

    def __init__(self, kind: str, in_channels: int, hidden: int, num_objects: int):
        super().__init__()
        C, c, K = in_channels, hidden, num_objects
        if kind == "small":
            convs = [nn.Conv2d(C, c, 10, stride=10), nn.Conv2d(c, K, 1)]
        elif kind == "medium":
            convs = [nn.Conv2d(C, c, 9, padding=4), nn.Conv2d(c, K, 5, stride=5)]
        else:
            convs = [nn.Conv2d(C, c, 3, padding=1)] + [nn.Conv2d(c, c, 3, padding=1) for _ in range(2)]
            convs.append(nn.Conv2d(c, K, 3, padding=1))
        self.num_hidden = len(convs) - 1
        for i, conv in enumerate(convs, 1):
            setattr(self, f"cnn{i}", conv)
            if i <= self.num_hidden:
                setattr(self, f"ln{i}", nn.BatchNorm2d(c))
        self.act = nn.LeakyReLU() if kind == "medium" else nn.ReLU()
        self.patchify = kind == "small"

    def _patch_conv(self, x: Tensor) -> Tensor:
        """The small encoder's first conv (kernel = stride = 10, no padding) as one matmul over the
        non-overlapping 10x10 patches: the same sums as the conv. Output channels-last ``[B, c, h, w]``."""
        conv, (B, C, H, W) = self.cnn1, x.shape
        k = conv.kernel_size[0]
        h, w = H // k, W // k
        p = x[:, :, : h * k, : w * k].reshape(B, C, h, k, w, k).permute(0, 2, 4, 1, 3, 5).reshape(B, h, w, -1)
        return F.linear(p, conv.weight.flatten(1), conv.bias).permute(0, 3, 1, 2)  # [B, c, h, w]

    def forward(self, x: Tensor) -> Tensor:
        if not self.patchify:
            x = x.contiguous(memory_format=torch.channels_last)
        for i in range(1, self.num_hidden + 1):
            x = self._patch_conv(x) if i == 1 and self.patchify else getattr(self, f"cnn{i}")(x)
            x = self.act(batch_norm(getattr(self, f"ln{i}"), x))
        return torch.sigmoid(getattr(self, f"cnn{self.num_hidden + 1}")(x))


class ObjectEncoder(nn.Module):
    """Shared per-slot MLP: masks ``[B, K, h, w]`` -> embeddings ``[B, K, D]``."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = (
            nn.Linear(in_dim, hidden),
            nn.Linear(hidden, hidden),
            nn.Linear(hidden, out_dim),
        )
        self.ln = nn.LayerNorm(hidden)

    def forward(self, masks: Tensor) -> Tensor:
        h = self.fc1(masks.flatten(2)).relu_()  # in-place ReLUs: the layers before them do not need
        return self.fc3(self.ln(self.fc2(h)).relu_())  # their outputs for backward; saves memory traffic


def _mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_dim, hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, hidden),
        nn.LayerNorm(hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, out_dim),
    )


class TransitionGNN(nn.Module):
    """Message passing over all ordered slot pairs (i, j), i != j: ``z [B,K,D], action [B] -> delta [B,K,D]``.

    Straightforward form (the original): for every edge m_ij = edge_mlp([z_i, z_j]); node i sums its
    outgoing messages, then delta_i = node_mlp([z_i, a_i, sum_j m_ij]). Evaluated here as

    * first edge layer W [z_i; z_j] + b = (W_src z_i + b) + W_tgt z_j: two per-NODE projections,
      added per edge;
    * last edge layer is linear, so sum_j (W h_ij + b) = W (sum_j h_ij) + (K-1) b: applied per node.

    Only the middle 512x512 layer runs per edge. Pairs come from fixed index buffers (no edge list per batch).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        D, H, K, A = cfg.embedding_dim, cfg.hidden_dim, cfg.num_objects, self.action_size(cfg)
        self.cfg = cfg
        self.edge_mlp = _mlp(2 * D, H, H)
        self.node_mlp = _mlp(D + A + (H if K > 1 else 0), H, D)  # K == 1: no messages (as the fork)
        _, j = (~torch.eye(K, dtype=torch.bool)).nonzero(as_tuple=True)  # row-major: K-1 partners per slot
        self.register_buffer("col", j.view(K, K - 1), persistent=False)  # col[i] = the slots j != i

    @staticmethod
    def action_size(cfg: ModelConfig) -> int:
        return 0 if cfg.ignore_action else cfg.action_dim

    def action_vectors(self, action: Tensor, K: int, dtype: torch.dtype) -> Tensor:
        """Integer actions ``[B]`` -> per-slot one-hot ``[B, K, A]``.

        Default: one-hot over ``action_dim * K`` cut into K blocks (action ``k * action_dim + d`` reaches
        slot k only); ``copy_action``: one-hot over ``action_dim`` copied to every slot.
        """
        cfg, B = self.cfg, action.shape[0]
        if cfg.copy_action:
            return F.one_hot(action, cfg.action_dim).to(dtype)[:, None].expand(B, K, cfg.action_dim)
        return F.one_hot(action, cfg.action_dim * K).to(dtype).view(B, K, cfg.action_dim)

    def forward(self, z: Tensor, action: Tensor | None = None) -> Tensor:
        B, K, D = z.shape
        parts = [z]
        if not self.cfg.ignore_action:
            parts.append(self.action_vectors(action, K, z.dtype))
        if K > 1:
            lin1, _, lin2, ln, _, lin3 = self.edge_mlp
            src = F.linear(z, lin1.weight[:, :D], lin1.bias)  # [B, K, H]
            tgt = F.linear(z, lin1.weight[:, D:])  # [B, K, H]
            h = (src[:, :, None] + tgt[:, self.col]).relu_()  # [B, K, K-1, H]: edge (i, col[i, n])
            h = ln(lin2(h)).relu_().sum(2)  # [B, K, H]
            parts.append(F.linear(h, lin3.weight, lin3.bias * (K - 1)))
        return self.node_mlp(torch.cat(parts, -1))


class CSWM(nn.Module):
    """The contrastive structured world model. Build from a :class:`ModelConfig`."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = c = config
        self.obj_extractor = ObjectExtractor(c.encoder, c.input_shape[0], c.hidden_dim // 16, c.num_objects)
        h, w = c.mask_shape
        self.obj_encoder = ObjectEncoder(h * w, c.hidden_dim, c.embedding_dim)
        self.transition_model = TransitionGNN(c)
        for m in self.modules():  # as the original: Xavier for convs only, PyTorch defaults elsewhere
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def masks(self, obs: Tensor) -> Tensor:
        """Object masks ``[B, K, h, w]`` in (0, 1) for float obs ``[B, C, H, W]``."""
        return self.obj_extractor(obs)

    def encode(self, obs: Tensor) -> Tensor:
        """Float obs ``[B, C, H, W]`` in [0, 1] -> object embeddings ``[B, K, D]``."""
        return self.obj_encoder(self.obj_extractor(obs))

    forward = encode

    def transition(self, z: Tensor, action: Tensor | None = None) -> Tensor:
        """Predicted change ``[B, K, D]`` of states ``z [B, K, D]`` under integer actions ``[B]``."""
        return self.transition_model(z, action)

    def predict(self, z: Tensor, action: Tensor | None = None) -> Tensor:
        """Next state ``z + T(z, a)``, ``[B, K, D]``."""
        return z + self.transition(z, action)

    def energy(self, z: Tensor, z_other: Tensor, action: Tensor | None = None) -> Tensor:
        """``0.5/sigma^2 * sum_D (.)^2`` averaged over K: ``[..., K, D]`` x ``[..., K, D]`` -> ``[...]``.

        With ``action`` the energy of ``z + T(z, a)`` vs ``z_other``; without, of ``z`` vs ``z_other``.
        Inputs broadcast, e.g. ``z[:, None]`` ``[B,1,K,D]`` vs negatives ``[B,N,K,D]`` -> ``[B,N]``.
        """
        if action is not None:
            z = self.predict(z, action)
        return (0.5 / self.config.sigma**2) * (z - z_other).pow(2).sum(-1).mean(-1)

    def contrastive_loss(
        self,
        obs: Tensor,
        action: Tensor,
        next_obs: Tensor,
        neg_obs: Tensor | None = None,
        neg_batch_index: Tensor | None = None,
        gamma: float = 1.0,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Hinge loss of one batch -> ``(loss, positive term, negative term)``, scalars.

        Negatives are either observations ``neg_obs [B, N, C, H, W]`` (dataset strategies; encoded
        in their own forward pass, as the fork does) or in-batch positions ``neg_batch_index [B, N]``
        whose current states serve as negatives (the original baseline's permutation).
        """
        z = self.encode(obs)
        z_next = self.encode(next_obs)
        pos = self.energy(z, z_next, action).mean()
        if neg_obs is not None:
            B, N = neg_obs.shape[:2]
            z_neg = self.encode(neg_obs.flatten(0, 1)).view(B, N, *z.shape[1:])
        elif neg_batch_index is not None:
            z_neg = z[neg_batch_index]  # [B, N, K, D]
        else:
            raise CswmError("contrastive_loss needs neg_obs or neg_batch_index")
        neg = F.relu(self.config.hinge - self.energy(z[:, None], z_neg)).mean()
        return pos + gamma * neg, pos, neg
