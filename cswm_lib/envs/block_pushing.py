"""Block pushing: 5 objects on a 5x5 grid, 20 actions, rendered as 2D shapes or 3D cubes.

State: integer positions ``[K, 2]`` (row, col) of ``K = 5`` objects. Action ``a`` moves object
``a // 4`` one cell in direction ``a % 4`` (0 up, 1 right, 2 down, 3 left). A move into a wall or
into another object is a no-op (nothing is pushed). In the *immovable* variant objects 0 and 1 never
move, so every action addressed to them (actions 0..7) is a no-op.

Rendering is the part the original code spent its time in (scikit-image drawing per Shapes frame,
a full matplotlib 3D figure per Cubes frame). Here every object's image is computed once -- a
10x10 sprite per shape, an (alpha, premultiplied colour) pair per cube and grid cell rendered once
with matplotlib -- and frames are composed with array operations.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from cswm_lib.errors import CswmError

GRID = 5
NUM_OBJECTS = 5
CELL = 10  # pixels per grid cell in the 50x50 Shapes image
IMG = 50
DIRECTIONS = np.array([[-1, 0], [0, 1], [1, 0], [0, -1]])  # up, right, down, left (row, col)

# matplotlib 'Set1' sampled at i / 9 (the original's palette), as exact uint8 values.
SET1 = np.array(
    [[228, 26, 28], [55, 126, 184], [77, 175, 74], [152, 78, 163], [255, 127, 0]], dtype=np.uint8
)
# Cubes face colours of the original (matplotlib named colours), object order.
CUBE_COLORS = ("purple", "green", "orange", "blue", "brown")


# ------------------------------------------------------------------------------------ shapes
#: How scikit-image decided which pixels a Shapes polygon covers. The original drew each shape with
#: ``skimage.draw`` and pinned scikit-image 0.15.0, whose point-in-polygon test was half-open
#: (``min <= p < max``: the bottom and right edges and their vertices are outside). scikit-image
#: 0.18 (PR #5029, fixing issue #3892) counts edges and vertices as inside. The paper's data had
#: the 0.15 pixels; files written by the original code under a current scikit-image have the other.
SHAPE_RULES = ("skimage-0.15", "skimage-current")
#: The published pixels (what the paper's datasets contain).
DEFAULT_SHAPE_RULE = "skimage-0.15"


def check_shape_rule(shape_rule: str) -> str:
    if not isinstance(shape_rule, str) or shape_rule not in SHAPE_RULES:
        raise CswmError(f"unknown shape_rule {shape_rule!r}: expected one of {', '.join(SHAPE_RULES)}")
    return shape_rule


def shape_mask(index: int, shape_rule: str = DEFAULT_SHAPE_RULE) -> np.ndarray:
    """Bool ``[11, 11]`` footprint of object ``index``'s shape, anchored at its cell's top-left pixel.

    By index mod 3: 0 circle of radius 5 centred at (5, 5), 1 triangle with vertices (row, col)
    (0, 5), (10, 0), (10, 10), 2 square with corners (0, 0) and (10, 10) -- the original's
    ``skimage.draw.circle`` / ``polygon`` calls. The circle is ``d^2 < 25`` under both rules
    (69 pixels, inside its cell). ``"skimage-0.15"``: a pixel is in a polygon when
    ``min <= p < max`` along each crossing, so the square is 10x10 (100 pixels) and the triangle
    covers rows 1..9 with ``r`` pixels in row ``r`` (45); nothing leaves the 10x10 cell.
    ``"skimage-current"``: edges count, so the square is 11x11 (121) and the triangle spans rows
    0..10 (61): both spill one pixel row (the square also a column) into the next cell.
    """
    y, x = np.mgrid[: CELL + 1, : CELL + 1]
    kind = index % 3
    if check_shape_rule(shape_rule) == "skimage-0.15":
        if kind == 0:
            return (y - 5) ** 2 + (x - 5) ** 2 < 25
        if kind == 1:  # 5 - y/2 <= x < 5 + y/2 for rows 0 <= y < 10
            return (y < CELL) & (2 * x >= 2 * 5 - y) & (2 * x < 2 * 5 + y)
        return (y < CELL) & (x < CELL)
    if kind == 0:
        return (y - 5) ** 2 + (x - 5) ** 2 < 25
    if kind == 1:
        return np.abs(x - 5) <= y // 2
    return np.ones((CELL + 1, CELL + 1), dtype=bool)


@functools.cache
def _shape_layers(num_objects: int, shape_rule: str) -> tuple[np.ndarray, np.ndarray]:
    """Per object: bool footprint ``[K, 11, 11]`` and uint8 sprite ``[K, 3, 11, 11]`` (computed once)."""
    masks = np.stack([shape_mask(k, shape_rule) for k in range(num_objects)])
    sprites = np.zeros((num_objects, 3, CELL + 1, CELL + 1), dtype=np.uint8)
    for k in range(num_objects):
        sprites[k][:, masks[k]] = SET1[k % len(SET1)][:, None]
    return masks, sprites


def render_shapes(positions: np.ndarray, shape_rule: str = DEFAULT_SHAPE_RULE) -> np.ndarray:
    """Object positions ``[..., K, 2]`` -> uint8 frames ``[..., 3, 50, 50]`` (pixels per ``shape_rule``).

    Objects are painted in index order (a later object covers an earlier one's spill-over) onto a
    padded 51x51 canvas, cropped to 50x50. One frame: a masked copy per object; many frames: one
    fancy-indexed assignment per object for the whole batch."""
    positions = np.asarray(positions)
    lead = positions.shape[:-2]
    pos = positions.reshape(-1, positions.shape[-2], 2)
    n, k = pos.shape[:2]
    masks, sprites = _shape_layers(k, check_shape_rule(shape_rule))
    canvas = np.zeros((n, 3, IMG + 1, IMG + 1), dtype=np.uint8)
    if n == 1:
        for obj, (r, c) in enumerate(pos[0] * CELL):
            np.copyto(canvas[0, :, r : r + CELL + 1, c : c + CELL + 1], sprites[obj], where=masks[obj])
    else:
        idx = np.arange(n)[:, None, None]
        chan = np.arange(3)[None, :, None]
        for obj in range(k):
            my, mx = np.nonzero(masks[obj])
            ys = (pos[:, obj, 0:1] * CELL + my)[:, None, :]  # [n, 1, P]
            xs = (pos[:, obj, 1:2] * CELL + mx)[:, None, :]
            canvas[idx, chan, ys, xs] = SET1[obj % len(SET1)][None, :, None]
    return np.ascontiguousarray(canvas[:, :, :IMG, :IMG]).reshape(*lead, 3, IMG, IMG)


# ------------------------------------------------------------------------------------ cubes
# Crop of the 640x480 matplotlib canvas that holds the floor and a cube in every cell.
CUBE_CROP = (slice(205, 470), slice(110, 535))
CUBE_VIEW = dict(elev=30.0, azim=-60.0)  # matplotlib's default 3D view, as in the original
#: The original code's crop of the same 640x480 canvas (rows 215..455, columns 80..570), which it
#: resized to 50x50 with PIL's ANTIALIAS (= Lanczos) filter.
ORIGINAL_CUBE_CROP = (slice(215, 455), slice(80, 570))
#: The two crops of the same scene -- ``"ours"`` (``CUBE_CROP``, floor and every cube) or ``"original"``
#: (:data:`ORIGINAL_CUBE_CROP`, the original code's rectangle, its 8-bit canvas resized).
CUBE_FRAMINGS = ("ours", "original")


def _cube_canvas(cells: list[tuple[int, int]], colors: list[str], background: str | None) -> np.ndarray:
    """Render cubes at ``cells`` with matplotlib; float64 ``[480, 640, 3]`` in [0, 1].

    ``background=None`` draws the original scene (grey floor, white walls, axis lines); "black" or
    "white" draws only the cubes on a uniform background (used to recover each cube's alpha).
    The axes span the whole 5x5x5 grid in a cubic box, as matplotlib 3.0 drew the original's scene
    (current matplotlib would squash it, and autoscale to the filled voxels only)."""
    import matplotlib.figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = matplotlib.figure.Figure(figsize=(6.4, 4.8), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1), projection="3d")
    ax.view_init(**CUBE_VIEW)
    voxels = np.zeros((GRID, GRID, GRID), dtype=bool)
    facecolors = np.empty(voxels.shape, dtype=object)
    for (r, c), color in zip(cells, colors, strict=True):
        voxels[r, c, 0] = True
        facecolors[r, c, 0] = color
    ax.voxels(voxels, facecolors=facecolors, edgecolor="k")
    ax.set_xlim(0, GRID)
    ax.set_ylim(0, GRID)
    ax.set_zlim(0, GRID)
    ax.set_box_aspect((1, 1, 1))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_zticks([])
    if background is None:
        ax.zaxis.set_pane_color((0.5, 0.5, 0.5, 1.0))
        ax.xaxis.set_pane_color((1.0, 1.0, 1.0, 1.0))
        ax.yaxis.set_pane_color((1.0, 1.0, 1.0, 1.0))
        ax.zaxis.line.set_lw(0.0)
    else:
        ax.set_axis_off()
        fig.set_facecolor(background)
        ax.set_facecolor(background)
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(np.float64) / 255.0


def _downsample(img: np.ndarray) -> np.ndarray:
    """Crop a canvas ``[480, 640, C]``; Lanczos-resize to float32 ``[C, 50, 50]`` (linear, unclipped)."""
    from PIL import Image

    crop = img[CUBE_CROP]
    return np.stack(
        [
            np.asarray(Image.fromarray(crop[..., ch].astype(np.float32)).resize((IMG, IMG), Image.LANCZOS))
            for ch in range(crop.shape[-1])
        ]
    )


def render_cubes_matplotlib(positions: np.ndarray, framing: str = "ours") -> np.ndarray:
    """The original's approach: one matplotlib 3D figure per frame. ``[K, 2]`` -> uint8 ``[3, 50, 50]``.

    Slow (tens of frames per second); kept as the reference our sprite renderer is tested against.
    ``framing="original"``: the original code's crop of the same scene (its 8-bit canvas cropped,
    then Lanczos-resized), see :data:`CUBE_FRAMINGS`."""
    if framing not in CUBE_FRAMINGS:
        raise CswmError(f"unknown framing {framing!r}: expected one of {', '.join(CUBE_FRAMINGS)}")
    cells = [tuple(int(v) for v in p) for p in positions]
    canvas = _cube_canvas(cells, list(CUBE_COLORS[: len(cells)]), None)
    if framing == "original":
        from PIL import Image

        crop = np.rint(canvas[ORIGINAL_CUBE_CROP] * 255.0).astype(np.uint8)
        return np.asarray(Image.fromarray(crop).resize((IMG, IMG), Image.LANCZOS)).transpose(2, 0, 1).copy()
    img = _downsample(canvas)
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


def render_cube_canvas(positions: np.ndarray) -> np.ndarray:
    """The whole matplotlib canvas of a Cubes state, float64 ``[480, 640, 3]`` in [0, 1], before
    either crop (``CUBE_CROP``, :data:`ORIGINAL_CUBE_CROP`)."""
    cells = [tuple(int(v) for v in p) for p in positions]
    return _cube_canvas(cells, list(CUBE_COLORS[: len(cells)]), None)


def cube_footprint(cell: tuple[int, int], framing: str = "ours", threshold: int = 25) -> np.ndarray:
    """Bool ``[50, 50]``: the pixels a single cube at ``cell`` changes (by more than ``threshold``
    of 255 in some channel) in a matplotlib-drawn frame of the given framing. Its sum is the cube's
    size in pixels; two matplotlib draws."""
    empty = render_cubes_matplotlib(np.zeros((0, 2), dtype=np.int64), framing).astype(int)
    one = render_cubes_matplotlib(np.array([cell]), framing).astype(int)
    return (np.abs(one - empty) > threshold).any(0)



def cube_size(cell: tuple[int, int], framing: str = "ours") -> dict[str, int]:
    """The size of a single cube at ``cell`` in a frame of the given framing (its
    :func:`cube_footprint`): ``{"pixels", "height", "width"}``, the last two of its bounding box."""
    m = cube_footprint(cell, framing)
    ys, xs = np.nonzero(m)
    return dict(pixels=int(m.sum()), height=int(np.ptp(ys) + 1), width=int(np.ptp(xs) + 1))

@functools.cache
def cube_sprites() -> dict[str, Any]:
    """Pre-rendered cube layers, computed once per process (~50 matplotlib draws, ~2 s).

    Returns ``background`` float32 ``[3, 50, 50]``, and per cell ``(r, c)``: ``alpha`` float32
    ``[5, 5, 50, 50]`` and ``shade`` float32 ``[5, 5, 50, 50]`` = premultiplied grey of a WHITE cube.
    matplotlib shades a face by multiplying its colour, so a cube of colour ``rgb`` in cell (r, c)
    contributes ``rgb[:, None, None] * shade[r, c]`` over ``(1 - alpha[r, c])`` of what lies behind.
    """
    from matplotlib.colors import to_rgb

    background = _downsample(_cube_canvas([], [], None))
    alpha = np.zeros((GRID, GRID, IMG, IMG), dtype=np.float32)
    shade = np.zeros((GRID, GRID, IMG, IMG), dtype=np.float32)
    for r in range(GRID):
        for c in range(GRID):
            on_black = _downsample(_cube_canvas([(r, c)], ["white"], "black"))[0]
            on_white = _downsample(_cube_canvas([(r, c)], ["white"], "white"))[0]
            alpha[r, c] = np.clip(1.0 - (on_white - on_black), 0.0, 1.0)
            shade[r, c] = np.clip(on_black, 0.0, 1.0)
    # bounding box of each cell's cube (where alpha is visible), to compose only that window
    boxes = np.zeros((GRID, GRID, 4), dtype=np.int64)
    for r in range(GRID):
        for c in range(GRID):
            ys, xs = np.nonzero(alpha[r, c] > 1e-4)
            boxes[r, c] = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    colors = np.array([to_rgb(name) for name in CUBE_COLORS], dtype=np.float32)
    return dict(background=background, alpha=alpha, shade=shade, boxes=boxes, colors=colors)


def cube_depth(positions: np.ndarray) -> np.ndarray:
    """Distance-like key along the viewing direction (larger = nearer the camera) for ``[..., 2]`` cells.

    The camera looks from azimuth -60 deg: nearer means larger row (x) and smaller column (y)."""
    az = np.deg2rad(CUBE_VIEW["azim"])
    return positions[..., 0] * np.cos(az) + positions[..., 1] * np.sin(az)


def render_cubes(positions: np.ndarray) -> np.ndarray:
    """Object positions ``[..., K, 2]`` -> uint8 frames ``[..., 3, 50, 50]``: sprites pasted back to front."""
    positions = np.asarray(positions)
    lead = positions.shape[:-2]
    pos = positions.reshape(-1, positions.shape[-2], 2)
    s = cube_sprites()
    out = np.empty((len(pos), 3, IMG, IMG), dtype=np.uint8)
    order = np.argsort(cube_depth(pos), axis=1, kind="stable")
    for i, (p, o) in enumerate(zip(pos, order, strict=True)):
        img = s["background"].copy()
        for obj in o:
            r, c = p[obj]
            y0, y1, x0, x1 = s["boxes"][r, c]
            a = s["alpha"][r, c, y0:y1, x0:x1]
            win = img[:, y0:y1, x0:x1]
            win *= 1.0 - a
            win += s["colors"][obj][:, None, None] * s["shade"][r, c, y0:y1, x0:x1]
        out[i] = np.clip(np.rint(img * 255.0), 0, 255)
    return out.reshape(*lead, 3, IMG, IMG)


RENDERERS = {"shapes": render_shapes, "cubes": render_cubes}


# ------------------------------------------------------------------------------------ env
class BlockPushing(gym.Env):
    """The block pushing world as a gymnasium env.

    Observation: uint8 ``[3, 50, 50]`` image. ``info["state_id"]``: int64 ``[2K]`` =
    ``[r0, c0, ..., r4, c4]``, the ground-truth identity of the state. Reward is always 0 and the
    env never terminates; episodes end by the TimeLimit of the registered id (100 or 10 steps).
    Resets draw the object cells uniformly without replacement from the env's own seeded RNG.
    ``shape_rule`` (Shapes only): which pixels a shape covers, :data:`SHAPE_RULES`; the default is
    the published ``"skimage-0.15"`` (``gym.make("ShapesTrain-v0", shape_rule="skimage-current")``
    gives the other).
    """

    # "human" is listed only so that gymnasium hands it to __init__, which refuses it in one line
    # (otherwise gymnasium wraps the env in a window renderer that fails with an unrelated message)
    metadata = {"render_modes": ["rgb_array", "human"]}

    def __init__(
        self,
        render_type: str = "shapes",
        immovable: bool = False,
        width: int = GRID,
        height: int = GRID,
        num_objects: int = NUM_OBJECTS,
        render_mode: str | None = None,
        shape_rule: str = DEFAULT_SHAPE_RULE,
    ) -> None:
        if not isinstance(render_type, str) or render_type not in RENDERERS:
            raise CswmError(f"unknown render_type {render_type!r}: expected one of {sorted(RENDERERS)}")
        if not isinstance(immovable, bool | np.bool_):  # "no" is a truthy string: refuse, never guess
            raise CswmError(f"immovable must be True or False, got {immovable!r} "
                            f"({type(immovable).__name__})")
        if render_mode not in (None, "rgb_array"):
            raise CswmError(f"render_mode {render_mode!r} is not supported: expected None or 'rgb_array' "
                            "(frames are arrays; there is no window)")
        for k, v in (("width", width), ("height", height), ("num_objects", num_objects)):
            if isinstance(v, bool) or not isinstance(v, int | np.integer):
                raise CswmError(f"{k} must be a whole number, got {v!r} ({type(v).__name__})")
        self.shape_rule = check_shape_rule(shape_rule)
        if (width, height, num_objects) != (GRID, GRID, NUM_OBJECTS):
            raise CswmError(f"only a {GRID}x{GRID} grid with {NUM_OBJECTS} objects is supported")
        self.render_type = render_type
        self.render_mode = render_mode
        self.immovable = bool(immovable)
        self.num_objects = num_objects
        self.immovable_objects = (0, 1) if immovable else ()
        self.action_space = spaces.Discrete(4 * num_objects)
        self.observation_space = spaces.Box(0, 255, (3, IMG, IMG), dtype=np.uint8)
        self.positions = np.zeros((num_objects, 2), dtype=np.int64)

    # the dynamics, without rendering (the data generator renders whole episodes at once)
    def move(self, action: int) -> bool:
        """Apply ``action`` to ``self.positions``; return whether anything moved."""
        obj, direction = divmod(int(action), 4)
        if obj in self.immovable_objects:
            return False
        target = self.positions[obj] + DIRECTIONS[direction]
        if not ((0 <= target).all() and (target < GRID).all()):
            return False
        if (self.positions == target).all(axis=1).any():
            return False
        self.positions[obj] = target
        return True

    def state_id(self) -> np.ndarray:
        """int64 ``[2K]``: ``[r0, c0, r1, c1, ...]``."""
        return self.positions.reshape(-1).copy()

    def render_positions(self, positions: np.ndarray) -> np.ndarray:
        """uint8 frames ``[..., 3, 50, 50]`` of object positions ``[..., K, 2]``, as this env draws them."""
        if self.render_type == "shapes":
            return render_shapes(positions, self.shape_rule)
        return RENDERERS[self.render_type](positions)

    def render(self) -> np.ndarray:
        """uint8 ``[3, 50, 50]`` image of the current state."""
        return self.render_positions(self.positions)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        cells = self.np_random.choice(GRID * GRID, size=self.num_objects, replace=False)
        self.positions = np.stack(np.divmod(cells, GRID), axis=1).astype(np.int64)
        return self.render(), {"state_id": self.state_id()}

    def step(self, action: int):
        if not self.action_space.contains(action):
            raise CswmError(f"invalid action {action!r}: expected an int in [0, {self.action_space.n})")
        moved = self.move(action)
        return self.render(), 0.0, False, False, {"state_id": self.state_id(), "moved": moved}
