"""Environments: bad actions and ids are one line."""

from __future__ import annotations

import pytest

from .common import (
    _atari_step,
    _shapes_step,
    api_cases,
    api_refused,
    case,
    run_api_case,
    snapshot,
    unchanged,
)

API = [  # (what the user does, class it guards against, call(tmp_path, trained), message)
    ("Atari step(-1)", "silent_wrong", lambda t, m: _atari_step(-1), r"invalid action -1 .* 0\.\.5"),
    ("Atari step(6)", "traceback", lambda t, m: _atari_step(6), "invalid action 6"),
    ("Atari step(2.5)", "traceback", lambda t, m: _atari_step(2.5), "invalid action 2.5"),
    ("Atari step(None)", "traceback", lambda t, m: _atari_step(None), "invalid action None"),
    ("block pushing step(99)", "traceback", lambda t, m: _shapes_step(99), "invalid action 99"),
    (
        "unknown Atari game",
        "traceback",
        lambda t, m: __import__("cswm_lib.envs.atari", fromlist=["x"]).game_info("tetris"),
        "unknown Atari game",
    ),
]


@pytest.mark.parametrize(("name", "call", "pattern"), api_cases(API))
def test_a_bad_env_call_is_one_line(name, call, pattern, tmp_path, trained):
    run_api_case(name, call, pattern, tmp_path, trained)


def _make(**kw):
    import gymnasium as gym

    import cswm_lib.envs  # noqa: F401  (registers the ids)

    return gym.make("ShapesTrain-v0", **kw)


KWARGS = {
    "make a world with immovable='no'": (
        "silent_wrong",
        dict(immovable="no"),
        "immovable must be True or False",
    ),
    "make a world with render_mode='human'": ("traceback", dict(render_mode="human"), "render_mode 'human'"),
    "make a world with render_mode='rgb'": ("traceback", dict(render_mode="rgb"), "render_mode 'rgb'"),
    "make a world with width='5'": ("traceback", dict(width="5"), "width must be a whole number"),
    "make a world with num_objects=5.0": (
        "traceback",
        dict(num_objects=5.0),
        "num_objects must be a whole number",
    ),
    "make a world with render_type=3": ("traceback", dict(render_type=3), "unknown render_type 3"),
    "make a world with shape_rule=['x']": ("traceback", dict(shape_rule=["x"]), "unknown shape_rule"),
}
KWARG_CASES = [pytest.param(case(n, k), kw, want, id=n) for n, (k, kw, want) in KWARGS.items()]


@pytest.mark.parametrize(("name", "kw", "want"), KWARG_CASES)
def test_a_world_made_with_a_kwarg_of_the_wrong_type_is_one_line(name, kw, want, tmp_path):
    before = snapshot(tmp_path)
    api_refused(lambda: _make(**kw), want)
    unchanged(before, tmp_path)
