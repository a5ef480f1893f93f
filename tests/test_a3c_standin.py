"""RAM-reading stand-in policies: the rule, its quality against random play, collection with it, CLI."""

from __future__ import annotations

import numpy as np
import pytest

from cswm_lib.a3c.collect import CollectConfig, collect, collect_splits, main, split_path
from cswm_lib.a3c.standin import TrackBall, make_standin, play_returns, versus_random
from cswm_lib.data.hdf5 import load_episodes
from cswm_lib.errors import CswmError

PONG = "PongDeterministic-v4"
SI = "SpaceInvadersDeterministic-v4"


def _ram(ball_y: int, paddle_y: int) -> np.ndarray:
    ram = np.zeros(128, dtype=np.uint8)
    ram[TrackBall.BALL_Y], ram[TrackBall.PLAYER_Y] = ball_y, paddle_y
    return ram


def test_track_ball_moves_the_paddle_toward_the_ball():
    policy = TrackBall()
    assert policy.act(_ram(100, 150)) == TrackBall.UP  # ball above the paddle (smaller y)
    assert policy.act(_ram(180, 150)) == TrackBall.DOWN
    assert policy.act(_ram(151, 150)) == TrackBall.NOOP  # within the dead zone
    assert policy.act(_ram(0, 150)) == TrackBall.NOOP  # no ball in play


def test_track_ball_loses_fewer_points_than_random_play():
    # 600 steps of Pong, epsilon-greedy as the burn-in plays it: random play loses ~12 points there
    got = versus_random(PONG, "track_ball", episodes=2, eps=0.5, seed=0, max_steps=600)
    assert len(got["random"]["returns"]) == 2 and got["max_steps"] == 600
    assert got["track_ball"]["mean"] >= got["random"]["mean"] + 4
    lo, hi = got["random"]["interval"]
    assert lo <= got["random"]["mean"] <= hi


def test_play_returns_is_a_function_of_the_seed():
    a = play_returns(PONG, None, 2, eps=1.0, seed=4, max_steps=150)
    np.testing.assert_array_equal(a, play_returns(PONG, None, 2, eps=1.0, seed=4, max_steps=150))


def test_make_standin_refuses_unknown_names_and_other_games():
    with pytest.raises(CswmError, match="unknown stand-in policy 'chase': expected one of track_ball"):
        make_standin("chase", PONG)
    with pytest.raises(CswmError, match="plays PongDeterministic-v4, not SpaceInvaders"):
        make_standin("track_ball", SI)


def _cfg(tmp_path, name="a.h5", **kw):
    base = dict(env_id=PONG, save_path=str(tmp_path / name), min_burnin=30, max_burnin=40, max_episodes=3,
                num_steps=3, eps=0.5, seed=3, policy="track_ball", progress=False)
    return CollectConfig(**{**base, **kw})


def test_collect_with_the_standin_is_reproducible_and_labelled(tmp_path):
    a = load_episodes(collect(_cfg(tmp_path, "a.h5")))
    b = load_episodes(collect(_cfg(tmp_path, "b.h5")))
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.state_ids, b.state_ids)
    np.testing.assert_array_equal(a.actions, b.actions)
    assert a.attrs["policy"] == a.attrs["agent"] == "track_ball"
    assert a.attrs["agent_frames"] == -1 and a.attrs["burnin_gru"] == "none"
    rnd = load_episodes(collect(_cfg(tmp_path, "r.h5", policy="random")))
    assert rnd.attrs["policy"] == "random" and not np.array_equal(a.state_ids, rnd.state_ids)


def test_a_file_of_another_policy_is_collected_again(tmp_path):
    collect(_cfg(tmp_path, "a.h5", policy="random"))
    again = load_episodes(collect(_cfg(tmp_path, "a.h5")))
    assert again.attrs["policy"] == "track_ball"


def test_collect_splits_with_the_standin_keep_their_own_files(tmp_path, monkeypatch):
    monkeypatch.setenv("CSWM_DATA", str(tmp_path))
    paths = collect_splits(PONG, "unused", {"train": 2, "test": 1}, {"train": 1, "test": 3}, (30, 33),
                           eps=0.5, num_steps=2, policy="track_ball")
    assert paths["train"] == split_path(PONG, "train", 2, 0.5, "track_ball")
    assert paths["train"].name == "pong_track_ball_train_2ep_eps_0_5.h5"
    assert load_episodes(paths["test"]).attrs["policy"] == "track_ball"


@pytest.mark.parametrize("argv, message", [
    ([PONG, "--save-path", "x.h5", "--policy", "chase"], "unknown --policy 'chase': expected one of a3c,"),
    ([SI, "--save-path", "x.h5", "--policy", "track_ball"], "plays PongDeterministic-v4, not SpaceInvaders"),
    ([PONG, "--save-path", "x.h5", "--policy", "track_ball", "--agent", "a3c/pong"], "drop --agent"),
])
def test_cli_policy_errors_are_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and message in err and "\n" not in err
