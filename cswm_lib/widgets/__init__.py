"""Embedding explorer: look at what a C-SWM learned, one state at a time (ipywidgets + matplotlib)::

    explorer = EmbeddingExplorer("checkpoints/baseline", "data/shapes_imm_eval.h5",
                                 other="checkpoints/mixed")   # other: optional, side by side
    explorer                          # in a notebook: sliders over episode and step + the figure
    explorer.set(episode=3, step=5)   # programmatic control; explorer.shown() reads the figure back
    explorer.plot(episode=3, step=5)  # the same panels as a pyplot figure, for static pages

Per model, one row of panels: the extractor's object masks (slot colours), every slot's embedding
trajectory over the episode in 2D (PCA when D > 2) with the current state highlighted, the
predicted next state ``z + T(z, a)`` for every action (arrows; the action actually taken is marked
x, the encoded next observation o), and the nearest states of the whole eval set (thumbnails with
their energy). The observation o_t and o_t+1 sit on the left.

Everything that depends on the eval set is computed once, batched, without gradients: embeddings
``[E, T+1, K, D]`` of every frame, masks (kept while they fit ``mask_budget`` bytes, else computed
per displayed frame), the 2D projection and a brute-force nearest-state index (one matmul over all
``E * (T+1)`` states per query). An interaction only sets data on existing artists and re-renders
them over a cached background (Agg blitting), so it costs a few ms of numpy plus one PNG encode.
"""

from cswm_lib import figstyle
from cswm_lib.widgets.explorer import EmbeddingExplorer
from cswm_lib.widgets.views import SLOT_COLOURS, ModelView, build_view, frame_rgb, slot_colour

figstyle.install()  # the explorer's static figures record their smallest text

__all__ = ["SLOT_COLOURS", "EmbeddingExplorer", "ModelView", "build_view", "frame_rgb", "slot_colour"]
