"""Block pushing and Atari environments: registration, dynamics, state ids, rendering, seeding."""

from pathlib import Path

import gymnasium as gym
import h5py
import numpy as np
import pytest

import cswm_lib.envs as envs
from cswm_lib.envs import atari
from cswm_lib.envs import block_pushing as bp
from cswm_lib.errors import CswmError

SAMPLE = Path(__file__).parent / "data" / "original" / "sample_original_layout.h5"  # see its README.md


@pytest.mark.parametrize("env_id", envs.BLOCK_PUSHING_IDS)
def test_block_pushing_ids_make_reset_step_and_time_limit(env_id):
    env = gym.make(env_id)
    obs, info = env.reset(seed=0)
    assert obs.shape == (3, 50, 50) and obs.dtype == np.uint8
    assert info["state_id"].shape == (10,)
    limit = 100 if "Train" in env_id else 10
    for t in range(limit):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert reward == 0.0 and not terminated
        assert truncated == (t == limit - 1)
    assert env.unwrapped.render_type == ("cubes" if env_id.startswith("Cubes") else "shapes")
    assert env.unwrapped.immovable == ("Immovable" in env_id)


@pytest.mark.parametrize("env_id", envs.ATARI_IDS)
def test_atari_ids_make_reset_step(env_id):
    env = gym.make(env_id)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (210, 160, 3) and env.action_space.n == 6
    assert env.unwrapped._frameskip == (4 if "Pong" in env_id else 3)
    env.step(0)
    assert atari.get_ram(env).shape == (128,)


def test_unknown_env_id_is_a_one_line_error_listing_known_ids():
    with pytest.raises(CswmError) as err:
        envs.make("ShapesTrain-v9")
    msg = str(err.value)
    assert "\n" not in msg and "ShapesTrain-v9" in msg and "PongDeterministic-v4" in msg


def _env(immovable=False, positions=((0, 0), (0, 1), (2, 2), (4, 4), (3, 0))):
    env = bp.BlockPushing("shapes", immovable=immovable)
    env.reset(seed=0)
    env.positions = np.array(positions, dtype=np.int64)
    return env


def test_movement_in_each_direction():
    for direction, delta in enumerate([(-1, 0), (0, 1), (1, 0), (0, -1)]):
        env = _env()
        _, _, _, _, info = env.step(2 * 4 + direction)  # object 2 sits at (2, 2), free around
        assert info["moved"]
        assert tuple(env.positions[2]) == (2 + delta[0], 2 + delta[1])
        assert info["state_id"].tolist() == env.positions.reshape(-1).tolist()


def test_walls_and_other_objects_block_moves():
    env = _env()
    before = env.positions.copy()
    env.step(0 * 4 + 0)  # object 0 at (0, 0) up: wall
    env.step(0 * 4 + 3)  # left: wall
    env.step(0 * 4 + 1)  # right: object 1 at (0, 1) blocks (no pushing)
    env.step(3 * 4 + 2)  # object 3 at (4, 4) down: wall
    assert (env.positions == before).all()
    env.step(0 * 4 + 2)  # object 0 down: free
    assert tuple(env.positions[0]) == (1, 0)


def test_immovable_objects_never_move_but_block():
    env = _env(immovable=True, positions=((2, 1), (1, 2), (2, 2), (4, 4), (3, 0)))
    for a in range(8):  # actions addressed to objects 0 and 1
        _, _, _, _, info = env.step(a)
        assert not info["moved"]
    assert tuple(env.positions[0]) == (2, 1) and tuple(env.positions[1]) == (1, 2)
    env.step(2 * 4 + 0)  # object 2 up into immovable object 1: blocked
    assert tuple(env.positions[2]) == (2, 2)
    env.step(2 * 4 + 1)  # object 2 right: free
    assert tuple(env.positions[2]) == (2, 3)
    movable = _env(immovable=False, positions=((2, 1), (1, 2), (2, 2), (4, 4), (3, 0)))
    assert movable.step(0)[4]["moved"]  # object 0 moves in the normal world


def test_reset_is_seeded_by_the_env_rng_and_objects_are_distinct():
    env = bp.BlockPushing("shapes")
    a = env.reset(seed=11)[1]["state_id"]
    np.random.seed(0)  # the global RNG must not matter
    b = env.reset(seed=11)[1]["state_id"]
    assert (a == b).all()
    ids = {tuple(env.reset(seed=s)[1]["state_id"]) for s in range(20)}
    assert len(ids) > 15
    for s in range(50):
        pos = env.reset(seed=s)[1]["state_id"].reshape(5, 2)
        assert len({tuple(p) for p in pos}) == 5 and pos.min() >= 0 and pos.max() < 5


def test_invalid_action_is_a_one_line_error():
    with pytest.raises(CswmError, match="invalid action"):
        _env().step(20)


def test_shapes_frame_shows_each_object_in_its_cell():
    pos = np.array([[0, 0], [1, 3], [4, 4], [2, 1], [3, 2]])
    frame = bp.render_shapes(pos)
    assert frame.shape == (3, 50, 50) and frame.dtype == np.uint8
    for k, (r, c) in enumerate(pos):
        cell = frame[:, r * 10 + 3 : r * 10 + 9, c * 10 + 4 : c * 10 + 7]  # interior of every shape
        assert (cell == bp.SET1[k][:, None, None]).all(), k
    empty = frame[:, 0:10, 40:50]
    assert empty.max() == 0
    # shapes by index: circle has black corners, square is full, the triangle's apex row is empty
    # and the next row one pixel (published rule); under the current rule the apex row has 1 pixel
    assert frame[:, 0, 0].max() == 0 and (frame[:, 40, 40] > 0).any()
    assert (frame[:, 10:12, 30:40].max(0) > 0).sum(1).tolist() == [0, 1]
    current = bp.render_shapes(pos, "skimage-current")
    assert (current[:, 10:12, 30:40].max(0) > 0).sum(1).tolist() == [1, 1]


def test_shapes_render_is_pixel_identical_to_the_original_code_under_current_skimage():
    """The sample file was written by the original code with a CURRENT scikit-image: every frame
    equals our "skimage-current" rule, and differs from the published default."""
    with h5py.File(SAMPLE) as f:
        for key in f:
            g = f[key]
            for obs_key, ids_key in (("obs", "state_ids"), ("next_obs", "next_state_ids")):
                obs = np.rint(g[obs_key][()] * 255).astype(np.uint8)
                pos = g[ids_key][()].reshape(-1, 5, 2)
                assert (bp.render_shapes(pos, "skimage-current") == obs).all(), key
                assert (bp.render_shapes(pos) != obs).any(), key


# What scikit-image drew, re-implemented from its source for the test. 0.15.0 (pinned by the
# original): skimage/_shared/geometry.pxd point_in_polygon, the PNPOLY crossing test, half-open
# (yp[i] <= y < yp[j], x < crossing). Since 0.18 (PR #5029, issue #3892): O'Rourke's test that
# reports vertices and edges, which draw.polygon counts as inside. draw.polygon scans rows
# int(max(0, r.min())) .. min(shape[0] - 1, ceil(r.max())) (columns alike) and tests (x=col, y=row).
# circle/disk = ellipse: ((r - r0) / R)^2 + ((c - c0) / R)^2 < 1 over the rows/cols
# ceil(r0 - R) .. floor(r0 + R), clipped to the image -- the same in both versions.
def _pnpoly_015(xp, yp, x, y):
    c, j = False, len(xp) - 1
    for i in range(len(xp)):
        if ((yp[i] <= y < yp[j]) or (yp[j] <= y < yp[i])) and x < (xp[j] - xp[i]) * (y - yp[i]) / (
            yp[j] - yp[i]
        ) + xp[i]:
            c = not c
        j = i
    return c


def _pnpoly_current(xp, yp, x, y):
    l_cross = r_cross = 0
    x1, y1 = xp[-1] - x, yp[-1] - y
    for i in range(len(xp)):
        x0, y0 = xp[i] - x, yp[i] - y
        if abs(x0) < 1e-12 and abs(y0) < 1e-12:
            return True  # vertex
        if (y0 > 0) != (y1 > 0) and (x0 * y1 - x1 * y0) / (y1 - y0) > 0:
            r_cross += 1
        if (y0 < 0) != (y1 < 0) and (x0 * y1 - x1 * y0) / (y1 - y0) < 0:
            l_cross += 1
        x1, y1 = x0, y0
    return (r_cross & 1) != (l_cross & 1) or bool(r_cross & 1)  # edge, or inside


def _sk_polygon(r, c, shape, test):
    import math

    r, c = np.asarray(r, float), np.asarray(c, float)
    maxr, maxc = int(math.ceil(r.max())), int(math.ceil(c.max()))
    if shape is not None:
        maxr, maxc = min(shape[0] - 1, maxr), min(shape[1] - 1, maxc)
    px = [(ri, ci) for ri in range(int(max(0, r.min())), maxr + 1)
          for ci in range(int(max(0, c.min())), maxc + 1) if test(c, r, ci, ri)]
    return tuple(np.array([p[i] for p in px], dtype=np.intp) for i in (0, 1))


def _sk_circle(r0, c0, radius, shape):
    top = np.maximum(np.ceil(np.array([r0, c0]) - radius).astype(int), 0)
    bottom = np.minimum(np.floor(np.array([r0, c0]) + radius).astype(int), np.array(shape[:2]) - 1)
    r, c = np.ogrid[0 : float(bottom[0] - top[0] + 1), 0 : float(bottom[1] - top[1] + 1)]
    d = ((r - (r0 - top[0])) / radius) ** 2 + ((c - (c0 - top[1])) / radius) ** 2
    rr, cc = np.nonzero(d < 1)
    return rr + top[0], cc + top[1]


def _original_render_shapes(positions, test):
    """The original envs/block_pushing.py 'shapes' branch with the drawing above."""
    im = np.zeros((50, 50, 3), dtype=np.float32)
    for idx, (r, c) in enumerate(positions):
        r0, c0 = r * 10, c * 10
        if idx % 3 == 0:
            rr, cc = _sk_circle(r0 + 5, c0 + 5, 5, im.shape)
        elif idx % 3 == 1:
            rr, cc = _sk_polygon([r0, r0 + 10, r0 + 10], [c0 + 5, c0, c0 + 10], im.shape, test)
        else:
            rr, cc = _sk_polygon([r0, r0 + 10, r0 + 10, r0], [c0, c0, c0 + 10, c0 + 10], im.shape, test)
        im[rr, cc, :] = bp.SET1[idx] / 255.0
    return np.rint(im.transpose(2, 0, 1) * 255).astype(np.uint8)


def test_reference_drawing_reproduces_both_scikit_image_docstrings():
    """draw.polygon's docstring example (r = [1, 2, 8], c = [1, 7, 4]) printed different arrays
    before and after PR #5029; the two re-implementations give exactly those arrays."""
    old_doc = [(2, 2, 7), (3, 2, 7), (4, 3, 6), (5, 3, 6), (6, 4, 5), (7, 4, 5)]  # row, first col, end col
    new_doc = [(1, 1, 2), (2, 2, 8), (3, 2, 7), (4, 3, 7), (5, 3, 6), (6, 4, 6), (7, 4, 5), (8, 4, 5)]
    for test, doc in ((_pnpoly_015, old_doc), (_pnpoly_current, new_doc)):
        want = np.zeros((10, 10), dtype=bool)
        for row, c0, c1 in doc:
            want[row, c0:c1] = True
        got = np.zeros((10, 10), dtype=bool)
        got[_sk_polygon([1, 2, 8], [1, 7, 4], None, test)] = True
        assert (got == want).all()


def test_shape_pixel_counts_under_both_rules():
    counts = {"skimage-0.15": (69, 45, 100), "skimage-current": (69, 61, 121)}
    rows = {"skimage-0.15": list(range(10)) + [0], "skimage-current": [1, 1, 3, 3, 5, 5, 7, 7, 9, 9, 11]}
    for rule, (circle, triangle, square) in counts.items():
        masks = [bp.shape_mask(k, rule) for k in range(3)]
        assert [int(m.sum()) for m in masks] == [circle, triangle, square], rule
        assert masks[1].sum(1).tolist() == rows[rule], rule
    old = bp.shape_mask(2, "skimage-0.15")
    assert old[:10, :10].all() and not old[10].any() and not old[:, 10].any()  # 10x10, no spill
    assert not bp.shape_mask(1, "skimage-0.15")[10].any() and bp.shape_mask(1, "skimage-current")[10].all()
    assert (bp.shape_mask(0, "skimage-0.15") == bp.shape_mask(0, "skimage-current")).all()
    assert bp.DEFAULT_SHAPE_RULE == "skimage-0.15"
    with pytest.raises(CswmError, match="unknown shape_rule"):
        bp.render_shapes(np.zeros((5, 2), int), "skimage-0.14")


def test_shapes_render_equals_the_original_drawing_under_both_rules():
    rng = np.random.default_rng(3)
    states = [np.stack(np.divmod(rng.choice(25, 5, replace=False), 5), 1) for _ in range(40)]
    states.append(np.array([[4, 4], [4, 3], [3, 4], [0, 4], [4, 0]]))  # image borders, touching objects
    for rule, test in (("skimage-0.15", _pnpoly_015), ("skimage-current", _pnpoly_current)):
        ours = bp.render_shapes(np.stack(states), rule)
        for pos, frame in zip(states, ours, strict=True):
            assert (frame == _original_render_shapes(pos, test)).all(), (rule, pos.tolist())
            assert (bp.render_shapes(pos, rule) == frame).all()  # one-frame path = batch path


def test_env_and_generator_take_the_rule():
    default = envs.make("ShapesEval-v0").unwrapped
    current = envs.make("ShapesEval-v0", shape_rule="skimage-current").unwrapped
    default.reset(seed=4)
    current.reset(seed=4)
    assert default.shape_rule == "skimage-0.15" and current.shape_rule == "skimage-current"
    assert (default.render() == bp.render_shapes(default.positions)).all()
    assert (current.render() == bp.render_shapes(current.positions, "skimage-current")).all()
    with pytest.raises(CswmError, match="unknown shape_rule"):
        bp.BlockPushing(shape_rule="nope")


def test_cubes_sprite_render_matches_per_frame_matplotlib():
    rng = np.random.default_rng(0)
    packed = [(1, 1), (1, 2), (2, 1), (2, 2), (0, 1)]
    for positions in (packed, np.stack(np.divmod(rng.choice(25, 5, False), 5), 1)):
        positions = np.array(positions)
        ours = bp.render_cubes(positions).astype(int)
        ref = bp.render_cubes_matplotlib(positions).astype(int)
        assert np.abs(ours - ref).mean() < 2.0
        assert (np.abs(ours - ref) > 30).mean() < 0.01  # only anti-aliased cube edges differ


def test_cubes_frame_changes_where_a_cube_moves():
    env = bp.BlockPushing("cubes")
    env.reset(seed=0)
    env.positions = np.array([[0, 0], [0, 4], [4, 0], [4, 4], [2, 2]])
    before = env.render().astype(int)
    env.step(4 * 4 + 1)  # object 4 right
    after = env.render().astype(int)
    changed = np.abs(after - before).max(0) > 0
    assert 0 < changed.mean() < 0.25


def test_atari_preprocess_crops_resizes_and_stacks():
    rgb = np.zeros((210, 160, 3), dtype=np.uint8)
    rgb[:35] = 255  # outside Pong's crop (rows 35..190)
    rgb[190:] = 255
    rgb[60:160, 40:120] = (10, 200, 30)
    x = atari.preprocess_frame(rgb, "pong")
    assert x.shape == (3, 50, 50) and x.dtype == np.uint8
    assert x[:, 0].max() < 50 and x[:, -1].max() < 50  # the white bands were cropped away
    assert tuple(x[:, 24, 25]) == (10, 200, 30)
    assert (atari.preprocess_frame(rgb, "SpaceInvadersDeterministic-v4")[:, 0] > 200).all()  # crop 30..200
    prev, cur = np.zeros((3, 50, 50), np.uint8), np.ones((3, 50, 50), np.uint8)
    stack = atari.stack_frames(prev, cur)
    assert stack.shape == (6, 50, 50) and stack[:3].max() == 0 and stack[3:].min() == 1
    with pytest.raises(CswmError, match="unknown Atari game"):
        atari.preprocess_frame(rgb, "breakout")


def test_atari_random_episode_is_consecutive_and_deterministic():
    env = gym.make("PongDeterministic-v4")
    frames, actions, ram = atari.random_episode(env, "pong", np.random.default_rng(3), seed=0)
    assert frames.shape == (11, 6, 50, 50) and actions.shape == (10,) and ram.shape == (11, 128)
    assert (frames[1:, :3] == frames[:-1, 3:]).all()  # (previous, current) stacking
    again = atari.random_episode(env, "pong", np.random.default_rng(3))
    assert all((a == b).all() for a, b in zip((frames, actions, ram), again, strict=True))
    other = atari.random_episode(env, "pong", np.random.default_rng(4))
    assert not (other[2] == ram).all()


def test_import_cswm_lib_registers_the_environments():
    """Gymnasium convention: ``import cswm_lib`` alone is enough for ``gymnasium.make``, in a fresh
    interpreter (here every id is already registered by the imports above)."""
    import subprocess
    import sys

    code = (
        "import gymnasium, cswm_lib\n"
        "obs, _ = gymnasium.make('ShapesTrain-v0').reset(seed=0)\n"
        "assert obs.shape == (3, 50, 50), obs.shape\n"
        "assert all(i in gymnasium.registry for i in cswm_lib.envs.ENV_IDS)\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_cubes_original_framing_crops_the_same_scene():
    pos = np.array([[0, 0], [1, 3], [4, 4], [2, 1], [3, 2]])
    ours, orig = bp.render_cubes_matplotlib(pos), bp.render_cubes_matplotlib(pos, "original")
    assert orig.shape == ours.shape == (3, 50, 50) and orig.dtype == np.uint8
    assert np.abs(orig.astype(int) - ours.astype(int)).mean() > 5  # another crop: other pixels
    a, b = bp.cube_footprint((2, 2)), bp.cube_footprint((2, 2), "original")
    assert 80 < a.sum() < 250 and 80 < b.sum() < 250  # one cube: about a 10 x 15 pixel block in both
    with pytest.raises(CswmError, match="unknown framing"):
        bp.render_cubes_matplotlib(pos, "wide")


def test_cube_size_is_its_footprint_and_bounding_box():
    size = bp.cube_size((2, 2))
    m = bp.cube_footprint((2, 2))
    rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
    assert size == {"pixels": int(m.sum()), "height": int(rows[-1] - rows[0] + 1),
                    "width": int(cols[-1] - cols[0] + 1)}
    assert size["pixels"] <= size["height"] * size["width"] and 8 <= size["height"] <= 25
    # the original's crop is wider and flatter, so its frame squeezes a cube more horizontally
    for cell in [(0, 0), (4, 4), (0, 4)]:
        ours, original = bp.cube_size(cell), bp.cube_size(cell, "original")
        assert original["height"] / original["width"] > ours["height"] / ours["width"]
