"""Block pushing and Atari environments: registration, dynamics, state ids, rendering, seeding."""

from pathlib import Path

import gymnasium as gym
import h5py
import numpy as np
import pytest

import cswm_lib.envs as envs
from cswm_lib import CswmError
from cswm_lib.envs import atari
from cswm_lib.envs import block_pushing as bp

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
        cell = frame[:, r * 10 + 2 : r * 10 + 9, c * 10 + 4 : c * 10 + 7]  # interior of every shape
        assert (cell == bp.SET1[k][:, None, None]).all(), k
    empty = frame[:, 0:10, 40:50]
    assert empty.max() == 0
    # shapes by index: circle has black corners, square is full, triangle's apex row is one pixel
    assert frame[:, 0, 0].max() == 0 and (frame[:, 40, 40] > 0).any()
    assert (frame[:, 10:12, 30:40].max(0) > 0).sum() == 2


def test_shapes_render_is_pixel_identical_to_the_original_code():
    with h5py.File(SAMPLE) as f:
        for key in list(f)[:5]:
            g = f[key]
            obs = np.rint(g["obs"][()] * 255).astype(np.uint8)
            ours = bp.render_shapes(g["state_ids"][()].reshape(-1, 5, 2))
            assert (ours == obs).all()


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
