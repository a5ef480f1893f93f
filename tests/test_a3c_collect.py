"""A3C collection: format, stacking, determinism, resume, start-state blacklist, per-game rules, CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import cswm_lib.a3c.collect as col
from cswm_lib.a3c.agent import make_env
from cswm_lib.a3c.collect import (
    CollectConfig,
    attempt_rng,
    collect,
    collect_episode,
    collect_splits,
    main,
    shared_states,
    split_path,
    split_stats,
)
from cswm_lib.data.hdf5 import load_episodes
from cswm_lib.errors import CswmError

SI = "SpaceInvadersDeterministic-v4"
PONG = "PongDeterministic-v4"


def _cfg(tmp_path, name="a.h5", **kw):
    base = dict(env_id=SI, save_path=str(tmp_path / name), min_burnin=50, max_burnin=70, max_episodes=4,
                num_steps=5, eps=0.5, seed=3, agent="random", progress=False)
    return CollectConfig(**{**base, **kw})


def test_collect_writes_the_book_format(tmp_path):
    path = collect(_cfg(tmp_path))
    ep = load_episodes(path)
    assert ep.frames.shape == (4, 6, 6, 50, 50) and ep.actions.shape == (4, 5)
    assert ep.state_ids.shape == (4, 6, 128)
    assert ep.state_ids.min() >= 0 and ep.state_ids.max() <= 255
    assert ep.attrs["env_id"] == SI and ep.attrs["eps"] == 0.5
    assert ep.attrs["frame_stack"] == "previous,current"
    assert ep.attrs["attempts"] >= 4 and 50 <= ep.attrs["mean_burnin"] < 70
    # (previous, current): the current frame of step t is the previous frame of step t+1
    np.testing.assert_array_equal(ep.frames[:, 1:, :3], ep.frames[:, :-1, 3:])
    assert ep.actions.max() < make_env(SI).action_space.n


def test_collect_is_reproducible_and_reused(tmp_path):
    a = load_episodes(collect(_cfg(tmp_path, "a.h5")))
    b = load_episodes(collect(_cfg(tmp_path, "b.h5")))
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.state_ids, b.state_ids)
    c = load_episodes(collect(_cfg(tmp_path, "c.h5", seed=4)))
    assert not np.array_equal(a.state_ids, c.state_ids)
    mtime = (tmp_path / "a.h5").stat().st_mtime_ns
    collect(_cfg(tmp_path, "a.h5"))  # same parameters: the file is reused
    assert (tmp_path / "a.h5").stat().st_mtime_ns == mtime


def test_collect_resumes_after_interruption(tmp_path, monkeypatch):
    want = load_episodes(collect(_cfg(tmp_path, "full.h5", max_episodes=6)))
    real, calls = col.collect_episode, {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(col, "collect_episode", flaky)
    cfg = _cfg(tmp_path, "resumed.h5", max_episodes=6, checkpoint_every=2)
    with pytest.raises(KeyboardInterrupt):
        collect(cfg)
    assert not (tmp_path / "resumed.h5").exists() and (tmp_path / "resumed.h5.partial.npz").exists()
    monkeypatch.setattr(col, "collect_episode", real)
    got = load_episodes(collect(cfg))
    np.testing.assert_array_equal(got.frames, want.frames)
    np.testing.assert_array_equal(got.state_ids, want.state_ids)
    assert got.attrs["attempts"] == want.attrs["attempts"]
    assert not (tmp_path / "resumed.h5.partial.npz").exists()


def test_blacklisted_start_state_is_dropped():
    env = make_env(SI)
    ep, reason = collect_episode(env, None, SI, attempt_rng(0, 0), 55, 3, 0.5, reset_seed=0)
    assert reason == "kept"
    black = {ep[2][0].astype(np.uint8).tobytes()}
    again, reason = collect_episode(env, None, SI, attempt_rng(0, 0), 55, 3, 0.5, black, reset_seed=0)
    assert again is None and reason == "duplicate"


def test_check_dup_paths_leaves_no_shared_start_state(tmp_path):
    train = collect(_cfg(tmp_path, "train.h5", max_episodes=8, min_burnin=50, max_burnin=53, eps=1.0))
    valid = collect(_cfg(tmp_path, "valid.h5", max_episodes=8, min_burnin=50, max_burnin=53, eps=1.0, seed=4,
                         check_dup_paths=[str(train)]))
    starts = [{r.tobytes() for r in load_episodes(p).state_ids[:, 0]} for p in (train, valid)]
    assert not starts[0] & starts[1]
    assert load_episodes(valid).attrs["check_dup_paths"] == str(train)


def test_pong_point_during_burnin_ends_the_attempt():
    env = make_env(PONG)
    ep, reason = collect_episode(env, None, PONG, attempt_rng(0, 0), 2000, 3, 1.0, reset_seed=0)
    assert ep is None and reason == "point"


class _CountingPolicy(torch.nn.Module):
    """Stands in for the GRU policy: its state counts the steps, its logits always favour action 1."""

    def __init__(self):
        super().__init__()
        self.seen: list[float] = []

    def initial_state(self, batch: int = 1):
        return torch.zeros(batch, 1)

    def forward(self, obs, hx):
        assert obs.shape == (1, 1, 80, 80)
        self.seen.append(float(hx[0, 0]))
        return torch.zeros(1, 1), torch.tensor([[0.0, 5.0, 0.0, 0.0, 0.0, 0.0]]), hx + 1


def test_gru_state_during_burnin_published_reset_or_carried_and_greedy_action_is_argmax():
    env, policy = make_env(SI), _CountingPolicy()
    collect_episode(env, policy, SI, attempt_rng(0, 0), 20, 2, eps=0.0, reset_seed=0)
    assert policy.seen == [0.0] * 20  # published default: zeros before every action (memoryless)
    carried = _CountingPolicy()
    collect_episode(env, carried, SI, attempt_rng(0, 0), 20, 2, eps=0.0, reset_seed=0, burnin_gru="carry")
    assert carried.seen == [float(i) for i in range(20)]  # the fix: carried over, never reset
    with pytest.raises(CswmError, match="burnin_gru must be one of"):
        collect_episode(env, carried, SI, attempt_rng(0, 0), 2, 1, 0.0, burnin_gru="zeros")
    # eps = 0: the burn-in follows the argmax (action 1 = FIRE) -- compare with a FIRE-only replay
    env2 = make_env(SI)
    env2.reset(seed=0)
    for _ in range(20):
        env2.step(1)
    ep, _ = collect_episode(env, _CountingPolicy(), SI, attempt_rng(0, 0), 20, 1, 0.0, reset_seed=0)
    ram_policy = ep[2][0]
    np.testing.assert_array_equal(ram_policy, env2.unwrapped.ale.getRAM())


@pytest.mark.parametrize("argv, message", [
    (["CartPole-v1", "--save-path", "x.h5"], "collection needs an Atari id"),
    ([SI, "--save-path", "x.h5", "--min-burnin", "9", "--max-burnin", "9"], "--min-burnin < --max-burnin"),
    ([SI, "--save-path", "x.h5", "--agent", "random", "--check-dup-paths", "/no/such.h5"], "not found"),
    ([SI, "--save-path", "x.h5", "--agent", "/no/such/agent"], "no A3C checkpoint"),
    ([PONG, "--save-path", "x.h5", "--agent", "random", "--check-dup-paths", "si.h5"], "holds SpaceInvaders"),
])
def test_cli_errors_are_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if "si.h5" in argv:
        collect(_cfg(tmp_path, "si.h5", max_episodes=1))
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and message in err and "\n" not in err


def test_shared_states_counts_distinct_common_rows():
    a = np.array([[[1, 2], [3, 4]], [[1, 2], [5, 6]]])  # [E=2, T+1=2, S=2]
    b = np.array([[[1, 2], [7, 8]]])
    assert shared_states(a[:, 0], b[:, 0]) == 1  # start states: (1, 2) in both, counted once
    assert shared_states(a, b) == 1
    assert shared_states(a[:, 1], b[:, 1]) == 0


def test_burnin_frames_are_recorded():
    seen: list[np.ndarray] = []
    collect_episode(make_env(SI), None, SI, attempt_rng(0, 0), 7, 1, 0.5, reset_seed=0, burnin_frames=seen)
    assert len(seen) == 7 and seen[0].shape == (210, 160, 3)


class _MemoryPolicy(_CountingPolicy):
    """Acts on its memory: FIRE (1) with a zero state, RIGHT (2) once the state has moved."""

    def forward(self, obs, hx):
        self.seen.append(float(hx[0, 0]))
        fire, right = [[0.0, 5.0, 0, 0, 0, 0]], [[0.0, 0, 5.0, 0, 0, 0]]
        logits = torch.tensor(fire if hx[0, 0] == 0 else right)
        return torch.zeros(1, 1), logits, hx + 1


def test_burnin_summary_compares_reset_and_carried_memory():
    reset = col.burnin_summary(SI, _MemoryPolicy(), 2, 80, 81, eps=0.0, burnin_gru="reset")
    carry = col.burnin_summary(SI, _MemoryPolicy(), 2, 80, 81, eps=0.0, burnin_gru="carry")
    assert reset["lengths"].tolist() == carry["lengths"].tolist() == [80, 80]
    assert reset["reasons"]["kept"] == carry["reasons"]["kept"] == 2 and reset["distinct_starts"] == 1
    assert shared_states(reset["start_rams"], carry["start_rams"]) == 0  # memory changes the start state


def test_collect_splits_keeps_start_states_apart_and_split_stats_counts(tmp_path, monkeypatch):
    monkeypatch.setenv("CSWM_DATA", str(tmp_path))
    sizes, seeds = {"train": 5, "valid": 3, "test": 3}, {"train": 1, "valid": 2, "test": 3}
    paths = collect_splits(SI, "random", sizes, seeds, (50, 53), eps=1.0, num_steps=4)
    assert list(paths) == ["train", "valid", "test"]
    assert all(paths[s] == split_path(SI, s, n, 1.0) for s, n in sizes.items())
    test = load_episodes(paths["test"])
    assert test.attrs["check_dup_paths"] == f"{paths['train']};{paths['valid']}" and test.attrs["seed"] == 3
    assert test.frames.shape[:2] == (3, 5)
    stats = split_stats(paths)
    assert list(stats) == ["train", "valid", "test", "train-valid", "train-test", "valid-test"]
    for s, n in sizes.items():
        kept = stats[s]
        assert kept["episodes"] == n and 50 <= kept["mean_burnin"] < 53
        assert kept["attempts"] == n + sum(kept[f"dropped_{r}"] for r in col.DROP_REASONS)
        assert 1 <= kept["distinct_starts"] <= n
    assert all(stats[p]["shared_start"] == 0 for p in ("train-valid", "train-test", "valid-test"))
    train = load_episodes(paths["train"])
    assert stats["train-test"]["shared_any"] == shared_states(train.state_ids, test.state_ids)
    assert list(split_stats(paths, pairs=[("test", "train")])) == ["train", "valid", "test", "test-train"]
    again = collect_splits(SI, "random", sizes, seeds, (50, 53), eps=1.0, num_steps=4)
    assert again == paths  # finished splits are reused
