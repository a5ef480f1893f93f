"""Environments: bad actions and ids are one line."""

from __future__ import annotations

import pytest

from .common import (
    _atari_step,
    _shapes_step,
    api_cases,
    run_api_case,
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
