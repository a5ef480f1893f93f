"""What the embedding explorer draws, built once per model and eval set: the precomputed
:class:`ModelView` (embeddings, masks, 2D projection, nearest-state index), slot colours and frame
helpers, and the artists of one model's row of panels (``_Row``). The user interface is
:mod:`cswm_lib.widgets.explorer`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from cswm_lib.analysis import NearestStates, pca_2d
from cswm_lib.data.episodes import Episodes
from cswm_lib.evaluate import embed_paths
from cswm_lib.figstyle import FONT
from cswm_lib.model import CSWM
from cswm_lib.utils import torch_threads

SLOT_COLOURS = np.array(
    [[0.12, 0.47, 0.71], [1.0, 0.5, 0.05], [0.17, 0.63, 0.17], [0.84, 0.15, 0.16], [0.58, 0.4, 0.74],
     [0.55, 0.34, 0.29], [0.89, 0.47, 0.76], [0.5, 0.5, 0.5], [0.74, 0.74, 0.13], [0.09, 0.75, 0.81]]
)  # tab10, one colour per object slot (cycled for K > 10)
DIRECTIONS = "↑→↓←"  # block pushing: action a = 4 k + d moves object k in direction d


def slot_colour(k: int) -> np.ndarray:
    return SLOT_COLOURS[k % len(SLOT_COLOURS)]


# ------------------------------------------------------------------------------------------
# precomputation


@dataclass(eq=False)
class ModelView:
    """One model's precomputed view of an eval set."""

    name: str
    model: CSWM
    z: np.ndarray  # [E, T+1, K, D] float32
    xy: np.ndarray  # [E, T+1, K, 2] the 2D projection shown
    mean: np.ndarray  # [D]
    basis: np.ndarray  # [D, 2]
    explained: np.ndarray | None  # PCA variance share of the two axes (None: D <= 2)
    masks: np.ndarray | None  # uint8 [E, T+1, K, h, w], None: computed per displayed frame
    index: NearestStates
    limits: tuple[float, float, float, float]  # x0, x1, y0, y1 of the embedding axes

    def project(self, z: np.ndarray) -> np.ndarray:
        """``[..., D]`` -> ``[..., 2]``."""
        return (z - self.mean) @ self.basis

    @property
    def num_actions(self) -> int:
        return self.model.config.num_actions


def build_view(
    name: str, model: CSWM, episodes: Episodes, batch_size: int = 512, mask_budget: int = 2**28,
    progress: bool = True,
) -> ModelView:
    """Precompute embeddings, masks, 2D projection and nearest-state index of ``model`` on ``episodes``
    (``batch_size``: frames encoded at a time)."""
    E, T1 = episodes.frames.shape[:2]
    cfg = model.config
    h, w = cfg.mask_shape
    keep = E * T1 * cfg.num_objects * h * w <= mask_budget
    dev = next(model.parameters()).device
    with torch_threads(1 if dev.type == "cpu" else None):  # small forward passes: one thread is faster
        emb = embed_paths(model, episodes, batch_size=max(1, batch_size // T1), all_states=True, masks=keep,
                          progress=progress)
    z = emb["states"].float().numpy().reshape(E * T1, *emb["states"].shape[2:])
    masks = emb["masks"].numpy() if keep else None
    K, D = z.shape[1:]
    mean, basis, explained = pca_2d(z.reshape(-1, D))
    xy = ((z - mean) @ basis).reshape(E, T1, K, 2)
    lo, hi = xy.reshape(-1, 2).min(0), xy.reshape(-1, 2).max(0)
    pad = np.maximum(0.12 * (hi - lo), 0.05)
    limits = (lo[0] - pad[0], hi[0] + pad[0], lo[1] - pad[1], hi[1] + pad[1])
    return ModelView(
        name, model, z.reshape(E, T1, K, D), xy, mean, basis, explained,
        None if masks is None else masks.reshape(E, T1, K, h, w), NearestStates(z, cfg.sigma),
        tuple(float(v) for v in limits),
    )


# ------------------------------------------------------------------------------------------
# drawing


def frame_rgb(frame: np.ndarray) -> np.ndarray:
    """uint8 ``[C, H, W]`` -> ``[H, W, 3]`` for display: RGB as is, stacked Atari frames (C = 6,
    previous then current) show the current frame, grey-scale is repeated."""
    C = frame.shape[0]
    if C >= 3:
        frame = frame[C - 3 :] if C % 3 == 0 else frame[:3]
    else:
        frame = np.repeat(frame[:1], 3, 0)
    return frame.transpose(1, 2, 0)


def _strip(images: Sequence[np.ndarray], gap: int, fill: float = 1.0, vertical: bool = False) -> np.ndarray:
    """Images ``[h, w, 3]`` side by side (or stacked) with ``gap`` pixels of ``fill`` between them."""
    h, w = images[0].shape[:2]
    n = len(images)
    shape = ((h + gap) * n - gap, w, 3) if vertical else (h, (w + gap) * n - gap, 3)
    out = np.full(shape, fill, dtype=np.float32)
    for i, im in enumerate(images):
        if vertical:
            out[i * (h + gap) : i * (h + gap) + h] = im
        else:
            out[:, i * (w + gap) : i * (w + gap) + w] = im
    return out


class _Row:
    """The artists of one model's row of panels."""

    def __init__(self, fig: Figure, cells: tuple[Any, Any, Any], view: ModelView, T: int,
                 num_neighbours: int, frame_shape: tuple[int, int], animated: bool):
        """``cells``: the gridspec cells of the masks, the embeddings and the nearest states."""
        self.view = view
        K = view.z.shape[2]
        h, w = view.model.config.mask_shape
        self.mask_gap = max(1, w // 8)
        dyn: list[Any] = []

        def add(artist: Any) -> Any:
            artist.set_animated(animated)
            dyn.append(artist)
            return artist

        ax = self.ax_masks = fig.add_subplot(cells[0])
        self.masks = add(ax.imshow(np.zeros((h, K * (w + self.mask_gap) - self.mask_gap, 3)),
                                   interpolation="nearest", vmin=0, vmax=1))
        ax.set_xticks([k * (w + self.mask_gap) + (w - 1) / 2 for k in range(K)], [str(k) for k in range(K)])
        for k, lab in enumerate(ax.get_xticklabels()):
            lab.set_color(slot_colour(k))
        ax.set_yticks([])
        ax.set_xlabel("object slot", fontsize=FONT)
        ax.set_title(f"{view.name}: object masks", fontsize=FONT)

        ax = self.ax_emb = fig.add_subplot(cells[1])
        x0, x1, y0, y1 = view.limits
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        if view.explained is None:
            ax.set_xlabel("$z_1$", fontsize=FONT)
            ax.set_ylabel("$z_2$" if view.z.shape[-1] > 1 else "", fontsize=FONT)
        else:
            ax.set_xlabel(f"PC1 ({view.explained[0]:.0%})", fontsize=FONT)
            ax.set_ylabel(f"PC2 ({view.explained[1]:.0%})", fontsize=FONT)
        ax.tick_params(labelsize=FONT)
        ax.set_title(f"{view.name}: embeddings, trajectory\nand $z_t + T(z_t, a)$ for every action",
                     fontsize=FONT)
        colours = np.array([slot_colour(k) for k in range(K)])
        self.traj = [add(ax.plot([], [], "-", color=colours[k], lw=1, alpha=0.45)[0]) for k in range(K)]
        A = max(view.num_actions, 1)
        self.arrows = add(LineCollection(np.zeros((A * K, 2, 2)), colors=np.tile(colours, (A, 1)), lw=0.8,
                                         alpha=0.7))
        ax.add_collection(self.arrows)
        self.preds = add(ax.scatter(np.zeros(A * K), np.zeros(A * K), s=9, c=np.tile(colours, (A, 1)),
                                    alpha=0.8, lw=0))
        self.current = add(ax.scatter(np.zeros(K), np.zeros(K), s=70, c=colours, edgecolors="k", lw=1,
                                      zorder=4))
        self.taken = add(ax.scatter(np.zeros(K), np.zeros(K), s=45, c="k", marker="x", lw=1.2, zorder=5))
        self.next = add(ax.scatter(np.zeros(K), np.zeros(K), s=70, facecolors="none", edgecolors="k",
                                   lw=1, zorder=5))
        self.info = add(ax.text(0.01, 0.01, "", transform=ax.transAxes, fontsize=FONT, va="bottom"))

        ax = self.ax_nn = fig.add_subplot(cells[2])
        H, W = frame_shape
        self.nn_gap = max(1, W // 5)  # room between the labels of neighbouring thumbnails
        n = max(num_neighbours, 1)
        strip = np.ones((H, n * (W + self.nn_gap) - self.nn_gap, 3))
        self.nn = add(ax.imshow(strip, interpolation="nearest"))
        ax.set_xticks([])
        ax.set_yticks([])
        self.nn_title = ax.set_title("", fontsize=FONT)  # static text: part of the cached background
        self.nn_labels = [
            add(ax.text(i * (W + self.nn_gap) + W / 2, H + 1, "", ha="center", va="top", fontsize=FONT))
            for i in range(num_neighbours)
        ]
        ax.set_ylim(H * 1.75, -0.5)  # room for the labels below the thumbnails (3 lines)
        self.dynamic = dyn
        self.neighbours: list[tuple[int, int, float]] = []
        self.pred_xy = np.zeros((0, K, 2))
