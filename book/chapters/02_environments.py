# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# (chap-environments)=
# # Environments
#
# C-SWM {cite}`kipf2020contrastive` and the negative-sampling study {cite}`biza2021impact` learn
# world models from pictures of five kinds of worlds: **2D Shapes** and **3D Cubes** (both "block
# pushing" grid worlds), their **immovable** variants, and the Atari games **Pong** and **Space
# Invaders** {cite}`bellemare2013ale`. This chapter builds each of them, looks at what an action does,
# and measures how fast we can render them -- rendering was the slowest part of the original data
# pipeline. The next chapter, {ref}`chap-datasets`, turns these worlds into datasets.

# %% tags=["parameters"]
scale = "small"  # small | cpu | full
seed = 0
num_random_steps = 2000  # random actions used for the no-op count and the speed probe
num_matplotlib_frames = 5  # frames drawn the original way (a matplotlib 3D figure each)

# %%
import time

import gymnasium as gym
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

import cswm_lib.envs as envs
from cswm_lib import report
from cswm_lib.book import save_results
from cswm_lib.envs import atari
from cswm_lib.envs import block_pushing as bp

print("registered ids:", *envs.ENV_IDS, sep="\n  ")

# %% [markdown]
# Importing `cswm_lib.envs` registers all ten ids with gymnasium, so `gym.make` works as in the
# original code. (Current ale-py no longer registers the `*Deterministic-v4` Atari ids; we register
# them ourselves with the old settings -- see {ref}`sec-env-atari`.)
#
# ## Block pushing
#
# A block-pushing world is a $5 \times 5$ grid holding $K = 5$ objects, each on its own cell. The
# **state** is the list of positions $s = (r_0, c_0, \dots, r_4, c_4)$; it doubles as the
# ground-truth *state id* that the paper's de-duplicated evaluation needs. There are $4K = 20$
# actions: action $a$ moves object $\lfloor a/4 \rfloor$ one cell in direction $a \bmod 4$
# (0 up, 1 right, 2 down, 3 left). The observation is a $3 \times 50 \times 50$ image.

# %%
env = gym.make("ShapesTrain-v0")
obs, info = env.reset(seed=seed)
print("observation:", obs.shape, obs.dtype, "| actions:", env.action_space)
print("state id:", info["state_id"])

cubes = gym.make("CubesTrain-v0")
cubes.reset(seed=seed)
# same state, other rendering
cubes.unwrapped.positions = env.unwrapped.positions.copy()
fig, axes = plt.subplots(1, 2, figsize=(6, 3))
for ax, img, title in zip(axes, [obs, cubes.unwrapped.render()],
                          ["2D Shapes", "3D Cubes"], strict=True):
    ax.imshow(img.transpose(1, 2, 0))
    ax.set_title(title)
    ax.axis("off")
plt.show()

# %% [markdown]
# Both pictures show the same state. In Shapes each object is drawn in its $10 \times 10$ cell: by
# object index $k \bmod 3$ a circle, a triangle or a square, in the colours of matplotlib's `Set1`
# palette (red, blue, green, purple, orange).
#
# ### Which pixels a shape covers
#
# The original drew the shapes with scikit-image: `draw.circle(r + 5, c + 5, 5)` for circles and
# `draw.polygon` for a triangle with corners (row, col) $(r, c + 5), (r + 10, c), (r + 10, c + 10)$
# and a square with corners $(r, c)$ and $(r + 10, c + 10)$ (`envs/block_pushing.py` in
# github.com/tkipf/c-swm). Which pixels that gives depends on the scikit-image version. The
# repositories pin **scikit-image 0.15.0**, whose point-in-polygon test was half-open,
# $\min \le p < \max$: a pixel on the bottom or right edge of a polygon, or on a vertex, is
# *outside*. scikit-image issue #3892 (2019) reported exactly this; PR #5029 replaced the test in
# 0.18 (2020) by one that counts edges and vertices as inside, and `draw.polygon`'s own docstring
# example printed a different array from then on. Re-implementing both tests from scikit-image's
# source reproduces both docstring arrays exactly (a unit test). The circle test,
# $((y - y_0)^2 + (x - x_0)^2) / 25 < 1$, did not change.
#
# So the paper's data had the **0.15 pixels**: square $10 \times 10$, triangle from row 1 to row 9,
# nothing outside the object's cell. Files written by the original code under a current
# scikit-image (such as the sample in `tests/data/original/`) have the other pixels: square
# $11 \times 11$, triangle rows 0 to 10, one pixel row spilling into the cell below (the square also
# a column to the right), which is what the small encoder's $10 \times 10$ stride-10 filter of the
# *neighbouring* cell then sees. `cswm_lib` draws the published pixels by default
# (`shape_rule="skimage-0.15"`) and the other ones on request (`shape_rule="skimage-current"`, for
# `gym.make`, `generate` and the `--shape-rule` flag); unit tests compare both, frame by frame, with
# the re-implemented scikit-image drawing and with every frame of the original code's sample file.

# %%
rules = bp.SHAPE_RULES
names = ["circle", "triangle", "square"]  # object index mod 3
pixel_counts = {rule: {n: int(bp.shape_mask(k, rule).sum())
                       for k, n in enumerate(names)}
                for rule in rules}
for rule in rules:
    tri = bp.shape_mask(1, rule).sum(1)
    print(f"{rule}: pixels {pixel_counts[rule]}\n"
          f"    triangle pixels per row 0..10: {tri.tolist()}")
fig, axes = plt.subplots(1, 2, figsize=(6, 3))
# circle, triangle below it, square
two_cells = np.array([[0, 0], [1, 0], [0, 1], [3, 3], [4, 4]])
for ax, rule in zip(axes, rules, strict=True):
    # two cells + a row/col of the next
    ax.imshow(bp.render_shapes(two_cells, rule)[:, :21, :21].transpose(1, 2, 0))
    ax.set_xticks(np.arange(-0.5, 21, 10), [])
    ax.set_yticks(np.arange(-0.5, 21, 10), [])
    ax.grid(color="white", lw=0.5)
    ax.set_title(f'shape_rule="{rule}"', fontsize=9)
plt.show()

# %% [markdown]
# The white lines are the cell borders: under the current rule the triangle reaches into the cell
# below it and the square into the cells below and to the right; under 0.15 every object stays in
# its cell.
#
# ## What an action does
#
# A move succeeds only if the target cell is on the grid and free; otherwise nothing happens
# (objects are not pushed). Let us move every object once in every direction from the state above.

# %%
base = env.unwrapped.positions.copy()
moved = np.zeros((5, 4), dtype=bool)
for a in range(20):
    env.unwrapped.positions = base.copy()
    moved[a // 4, a % 4] = env.unwrapped.move(a)
env.unwrapped.positions = base.copy()
print("state (row, col) per object:\n", base)
print("move succeeds? rows = objects, columns = up/right/down/left\n",
      moved.astype(int))

# %%
a = int(np.argwhere(moved)[0] @ [4, 1])  # the first action that moves something
before = env.unwrapped.render()
after, _, _, _, info = env.step(a)
fig, axes = plt.subplots(1, 2, figsize=(6, 3))
titles = ["before", f"after action {a} (object {a // 4}, direction {a % 4})"]
for ax, img, title in zip(axes, [before, after], titles, strict=True):
    ax.imshow(img.transpose(1, 2, 0))
    ax.set_title(title, fontsize=9)
    ax.axis("off")
plt.show()

# %% [markdown]
# ## Immovable objects
#
# The negative-sampling paper adds *immovable* variants {cite}`biza2021impact`: objects 0 and 1 (the
# red circle and the blue triangle in Shapes; the purple and green cubes in Cubes) never move, so
# the 8 actions addressed to them do nothing; they still block the others. The random agent keeps
# drawing all 20 actions uniformly, so we expect at least $8/20 = 40\%$ of steps to be no-ops,
# plus the moves blocked by walls and objects. Let us count.

# %%
imm = gym.make("ShapesImmovableTrain-v0").unwrapped
imm.reset(seed=seed)
rng = np.random.default_rng(seed)
actions = rng.integers(20, size=num_random_steps)
noop = np.array([not imm.move(a) for a in actions])
to_immovable = actions < 8
print(f"no-op steps: {noop.mean():.3f}\n"
      f"  (actions to objects 0/1: {to_immovable.mean():.3f}, "
      f"blocked moves of the others: {(noop & ~to_immovable).mean():.3f})")
normal = bp.BlockPushing("shapes")
normal.reset(seed=seed)
noop_normal = np.mean([not normal.move(a) for a in actions])
print(f"no-op steps in the normal world with the same actions: {noop_normal:.3f}")

# %% [markdown]
# Many consecutive observations in an immovable dataset are therefore *identical*. This matters for
# contrastive learning: a negative drawn from the same episode can be the very same picture as the
# positive ({ref}`chap-datasets` measures this on real datasets).
#
# ## Rendering cubes fast
#
# The original drew every Cubes frame as a matplotlib 3D voxel plot, about 25 frames per second
# on our machines (the anchors in `benchmarks/README.md`). The camera never moves, so we
# render each cell's cube *once*, in white, on a black and on a white background. From the two
# renders we recover, per cell, an opacity $\alpha$ and a shading $g$ (matplotlib shades a face by
# multiplying its colour), and compose any state back to front:
#
# $$ I \leftarrow (1 - \alpha_{rc}) \odot I + \mathrm{rgb}_k \, g_{rc}
#    \quad \text{for the objects } k \text{ at cells } (r, c) \text{ sorted far to near.} $$
#
# Depth along the view direction at azimuth $-60°$ is $r\cos(-60°) + c\sin(-60°)$ (larger = nearer).

# %%
sprites = bp.cube_sprites()
fig, axes = plt.subplots(1, 3, figsize=(7.2, 2.7))
axes[0].imshow(sprites["background"].transpose(1, 2, 0).clip(0, 1))
axes[0].set_title("background (once)")
axes[1].imshow(sprites["alpha"][2, 2], cmap="gray")
axes[1].set_title("alpha of cell (2, 2)")
axes[2].imshow(sprites["shade"][2, 2], cmap="gray")
axes[2].set_title("shade g of cell (2, 2)")
for ax in axes:
    ax.axis("off")
plt.show()

# %% [markdown]
# How close is the composite to drawing the whole figure with matplotlib, as the original did? We
# draw a few random states both ways and time them.

# %%
states = [np.stack(np.divmod(rng.choice(25, 5, replace=False), 5), 1)
          for _ in range(num_matplotlib_frames)]
t0 = time.perf_counter()
ref = np.stack([bp.render_cubes_matplotlib(s) for s in states])
t_mpl = (time.perf_counter() - t0) / len(states)
t0 = time.perf_counter()
ours = bp.render_cubes(np.stack(states))
t_ours = (time.perf_counter() - t0) / len(states)
diff = np.abs(ours.astype(int) - ref.astype(int))
print(f"matplotlib per frame: {1 / t_mpl:,.0f} frames/s "
      f"| sprites: {1 / t_ours:,.0f} frames/s | speed-up {t_mpl / t_ours:,.0f}x")
print(f"mean |difference| {diff.mean():.2f} of 255; "
      f"pixels off by > 30: {(diff > 30).mean():.2%}")

# %%
fig, axes = plt.subplots(1, 3, figsize=(7.2, 2.7))
for ax, img, title in zip(
        axes, [ref[0], ours[0], (diff[0] * 4).clip(0, 255).astype(np.uint8)],
        ["matplotlib (original way)", "sprites (ours)", "|difference| x4"],
        strict=True):
    ax.imshow(img.transpose(1, 2, 0))
    ax.set_title(title, fontsize=9)
    ax.axis("off")
plt.show()

# %% [markdown]
# The only differences are in the anti-aliased black edges of the cubes. (Our matplotlib view keeps
# the axes cubic with `set_box_aspect((1, 1, 1))`, close to what matplotlib 3.0 drew for the
# original; newer matplotlib would otherwise squash the scene, and the crop is chosen for that view.)
#
# ### Our crop and the original's
#
# Both crop the same $640 \times 480$ canvas and resize the crop to $50 \times 50$: we keep rows
# 205..470 and columns 110..535 (`CUBE_CROP`), which hold the whole floor and every cube; the
# original kept rows 215..455 and columns 80..570 (`ORIGINAL_CUBE_CROP`), a wider and flatter
# rectangle, so its frames are squeezed more horizontally than vertically. Below: the canvas with
# both rectangles, our frame, and the same scene in the original's framing
# (`render_cubes_matplotlib(..., framing="original")`). We cannot run matplotlib 3.0 here, so the
# scene inside both crops is our re-creation of its view.

# %% tags=["hide-input"]
report.plot_cube_crops(np.array([[0, 0], [1, 3], [4, 4], [2, 1], [3, 2]]))
plt.show()

# %% [markdown]
# How large is one cube in each framing? Its pixels, and the height and width of its bounding box,
# for a cube alone in five cells:

# %%
cube_sizes = {str(cell): {f: bp.cube_size(cell, f) for f in bp.CUBE_FRAMINGS}
              for cell in [(0, 0), (2, 2), (4, 4), (0, 4), (4, 0)]}
display(Markdown(report.format_table([
    {"cube at": cell}
    | {f: f"{r['pixels']} px ({r['height']} x {r['width']})" for f, r in row.items()}
    for cell, row in cube_sizes.items()])))
ratio = np.mean([r["original"]["pixels"] / r["ours"]["pixels"]
                 for r in cube_sizes.values()])
mean_hw = {f: [np.mean([r[f][k] for r in cube_sizes.values()])
               for k in ("height", "width")]
           for f in bp.CUBE_FRAMINGS}
print(f"mean size ratio original / ours: {ratio:.2f}")
for f, (h, w) in mean_hw.items():
    print(f"mean height x width, {f}: {h:.1f} x {w:.1f}")

# %% [markdown]
# A cube covers about the same number of pixels in both framings (the ratio is printed above), and
# in the original's framing it is a little taller and narrower, as the flatter crop implies.
#
# Whole environment steps per second -- `step` includes the move and the render:

# %%
def steps_per_second(env_id: str, n: int) -> float:
    e = gym.make(env_id, disable_env_checker=True)
    e.reset(seed=seed)
    acts = np.random.default_rng(seed).integers(e.action_space.n, size=n)
    t0 = time.perf_counter()
    for a in acts:
        _, _, term, trunc, _ = e.step(int(a))
        if term or trunc:
            e.reset()
    return n / (time.perf_counter() - t0)


speed = {env_id: steps_per_second(env_id, num_random_steps) for env_id in
         ["ShapesTrain-v0", "CubesTrain-v0", "PongDeterministic-v4",
          "SpaceInvadersDeterministic-v4"]}
for k, v in speed.items():
    print(f"{k:32s} {v:10,.0f} steps/s")

# %% [markdown]
# For comparison, the original code ran about 3,300 Shapes and 25 Cubes steps per second on a machine
# like ours (the anchors in `benchmarks/README.md`, not measured in this run);
# `benchmarks/bench_envs.py` measures both approaches side by side.
#
# (sec-env-atari)=
# ## Atari
#
# The Atari worlds are the ALE games through gymnasium and ale-py {cite}`bellemare2013ale`. The
# paper used `PongDeterministic-v4` (4 frames per action) and `SpaceInvadersDeterministic-v4` (3
# frames per action), without sticky actions and with the minimal action set (6 actions each).
# Since the ids are gone from current ale-py, `cswm_lib.envs.atari` registers them with exactly these
# settings. Preprocessing: crop the play area, resize to $50 \times 50$ with Lanczos, channels
# first.

# %%
fig, axes = plt.subplots(2, 2, figsize=(6.4, 6.4))
for row, env_id in enumerate(atari.ATARI_IDS):
    game = atari.game_info(env_id)
    e = gym.make(env_id)
    e.reset(seed=seed)
    for a in np.random.default_rng(seed).integers(e.action_space.n, size=game.warmup):
        rgb = e.step(int(a))[0]
    axes[row, 0].imshow(rgb)
    axes[row, 0].axhline(game.crop[0], color="yellow")
    axes[row, 0].axhline(game.crop[1], color="yellow")
    axes[row, 0].set_title(f"{env_id}\nraw {rgb.shape}, crop rows {game.crop}",
                           fontsize=9)
    small = atari.preprocess_frame(rgb, env_id)
    axes[row, 1].imshow(report.visible(small).transpose(1, 2, 0))
    axes[row, 1].set_title(f"preprocessed {small.shape}\n(contrast-stretched)",
                           fontsize=9)
for ax in axes.flat:
    ax.axis("off")
plt.tight_layout()
plt.show()

# %%
print("RAM (the Atari state id):", atari.get_ram(e).shape)
print("first bytes:", atari.get_ram(e)[:12], "...")

# %% [markdown]
# One picture does not show where the ball is going, so an Atari observation stacks **two**
# consecutive frames into 6 channels. The original random-policy generator stacked them as
# (current, previous) and the original A3C collector as (previous, current); every file of this
# book uses **(previous, current)**: channels 0-2 are the older frame, 3-5 the newer one.

# %%
pong = gym.make("PongDeterministic-v4")
frames, acts, ram = atari.random_episode(pong, "pong", np.random.default_rng(seed),
                                         seed=seed)
print("frames", frames.shape, "actions", acts, "RAM ids", ram.shape)
fig, axes = plt.subplots(2, 2, figsize=(5.6, 6))  # contrast-stretched: see the ball
for t in [0, 1]:
    axes[t, 0].imshow(report.visible(frames[t, :3]).transpose(1, 2, 0))
    axes[t, 0].set_title(f"obs {t}: channels 0-2\n(previous)", fontsize=9)
    axes[t, 1].imshow(report.visible(frames[t, 3:]).transpose(1, 2, 0))
    axes[t, 1].set_title(f"obs {t}: channels 3-5\n(current)", fontsize=9)
for ax in axes.flat:
    ax.axis("off")
plt.show()
print("obs[t+1] previous half == obs[t] current half:",
      bool((frames[1:, :3] == frames[:-1, 3:]).all()))

# %% [markdown]
# ## Summary
#
# - `import cswm_lib.envs` registers the paper's ten gymnasium ids: eight block-pushing worlds
#   (Shapes/Cubes, normal/immovable, 100-step Train / 10-step Eval) and two Atari games.
# - The block-pushing state is 5 object positions, which is also the ground-truth state id; actions
#   address one object and one direction; blocked moves and, in the immovable worlds, every action
#   on objects 0 and 1 are no-ops (the fraction under random actions is printed above).
# - Shapes frames have the pixels scikit-image 0.15 drew for the paper's data (a current
#   scikit-image draws slightly larger triangles and squares: `shape_rule="skimage-current"`);
#   Cubes frames are composed from pre-rendered sprites, orders of magnitude faster than one
#   matplotlib figure per frame, in a crop close to the original's.
# - Atari observations: cropped, resized to $50\times 50$, two frames stacked as (previous, current);
#   the 128-byte RAM is the state id.
#
# ## Exercises
#
# 1. Count the no-op fraction of the immovable world analytically for a state where no object
#    touches a wall or another object. How does it compare with the measured fraction?
# 2. Change `CUBE_VIEW` in `cswm_lib/envs/block_pushing.py` to another azimuth and check that the
#    sprite renderer still matches matplotlib -- which part of the code encodes the depth order?
# 3. Plot the RAM bytes of Pong over one episode. Which bytes change when the ball moves?

# %% tags=["hide-cell"]
save_results(
    "02_environments",
    {
        "noop_fraction_immovable": float(noop.mean()),
        "noop_fraction_normal": float(noop_normal),
        "cubes_render_speedup_vs_matplotlib": float(t_mpl / t_ours),
        "cubes_render_mean_abs_diff": float(diff.mean()),
        "shape_pixel_counts": pixel_counts,
        "cube_sizes": cube_sizes,
        "steps_per_second": speed,
    },
    scale,
)
