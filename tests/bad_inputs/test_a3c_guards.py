"""A3C training and collection: seeds out of range, environments A3C cannot learn, outputs that would
replace an input, and torn training curves. Each bad input is one line before any work; a curve cut
mid-line by a kill is resumed from."""

from __future__ import annotations

import importlib
import json

import pytest

from .common import _h5, api_refused, case, refused, snapshot, unchanged


def _a3c_argv(tmp_path, *more):
    return [
        "CartPole-v1",
        "--folder",
        tmp_path / "a3c",
        "--num-workers",
        1,
        "--max-frames",
        100,
        "--no-progress",
        *more,
    ]


def _collect_argv(tmp_path, *more):
    return [
        "PongDeterministic-v4",
        "--save-path",
        tmp_path / "c.h5",
        "--agent",
        "random",
        "--max-episodes",
        1,
        *more,
    ]


SEEDS = {
    "A3C train with --seed -1": ("traceback", "train", ["--seed", -1], "--seed must be in [0, "),
    "A3C train with --seed 2^63": ("traceback", "train", ["--seed", 2**63], "--seed must be in [0, "),
    "collect with --seed -1": ("traceback", "collect", ["--seed", -1], "--seed must be in [0, "),
    "collect with --seed 2^64": ("traceback", "collect", ["--seed", 2**64], "--seed must be in [0, "),
    "A3C train on a world with image observations (ShapesTrain-v0)": (
        "traceback",
        "train",
        ["--env-id-override", "ShapesTrain-v0"],
        "flat vector observations",
    ),
}
SEED_CASES = [pytest.param(case(n, k), cmd, more, want, id=n) for n, (k, cmd, more, want) in SEEDS.items()]


@pytest.mark.parametrize(("name", "cmd", "more", "want"), SEED_CASES)
def test_a3c_refuses_a_bad_number_or_env_before_any_work(name, cmd, more, want, tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    before = snapshot(tmp_path)
    if cmd == "train":
        main = importlib.import_module("cswm_lib.a3c.train").main
        argv = _a3c_argv(tmp_path, *more)
        if more[0] == "--env-id-override":
            argv = [more[1], *_a3c_argv(tmp_path)[1:]]
    else:
        main = importlib.import_module("cswm_lib.a3c.collect").main
        argv = _collect_argv(tmp_path, *more)
    refused(main, argv, capsys, want)
    unchanged(before, tmp_path)


def _dup_file(tmp_path):
    from cswm_lib.data.hdf5 import load_episodes, save_episodes

    e = load_episodes(_h5(tmp_path, "other.h5"))
    e.attrs.update(env_id="PongDeterministic-v4", format="cswm-book")
    return save_episodes(e, tmp_path / "pong_train.h5")


OUTPUTS = [
    case("collect with --save-path inside the --agent folder", "lost_or_overwritten"),
    case("collect with --save-path equal to a --check-dup-paths file", "lost_or_overwritten"),
]


@pytest.mark.parametrize("name", OUTPUTS)
def test_collect_never_writes_over_or_into_one_of_its_inputs(name, tmp_path, capsys):
    col = importlib.import_module("cswm_lib.a3c.collect")
    if "agent" in name:
        agent = tmp_path / "agent"
        agent.mkdir()
        (agent / "checkpoint.pt").write_bytes(b"an agent")
        argv = _collect_argv(tmp_path, "--save-path", agent / "c.h5")
        argv[argv.index("--agent") + 1] = agent
        want = "lies inside the input"
    else:
        dup = _dup_file(tmp_path)
        argv = _collect_argv(tmp_path, "--save-path", dup, "--check-dup-paths", dup)
        want = "is the input"
    before = snapshot(tmp_path)
    refused(col.main, argv, capsys, "--save-path", want)
    unchanged(before, tmp_path)


TORN = [
    case("resume A3C training after a kill tore the curve's last line", "traceback"),
    case("read an A3C curve torn in the middle", "traceback"),
]


@pytest.mark.parametrize("name", TORN)
def test_a_torn_a3c_curve_resumes_or_is_one_line(name, tmp_path, capsys):
    a3c = importlib.import_module("cswm_lib.a3c.train")
    agent = importlib.import_module("cswm_lib.a3c.agent")
    argv = [
        "CartPole-v1",
        "--folder",
        tmp_path,
        "--num-workers",
        1,
        "--max-frames",
        300,
        "--no-progress",
        "--start-method",
        "fork",
    ]
    a3c.main([str(a) for a in argv])
    curve = tmp_path / "curve.jsonl"
    rows = agent.read_returns(tmp_path)
    if "middle" in name:
        lines = curve.read_text().splitlines(keepends=True)
        curve.write_text("".join([lines[0], lines[1][:9] + "\n", *lines[2:]]))
        before = snapshot(tmp_path)
        api_refused(lambda: agent.read_returns(tmp_path), "curve.jsonl line 2")
        unchanged(before, tmp_path)
        return
    with curve.open("a") as f:  # what a kill during an append leaves
        f.write('{"frames": 301, "episo')
    capsys.readouterr()
    assert agent.read_returns(tmp_path) == rows
    assert capsys.readouterr().err.count("torn last line") == 1
    argv[argv.index("--max-frames") + 1] = 600
    a3c.main([str(a) for a in argv])
    resumed = agent.read_returns(tmp_path)
    assert [r["episode"] for r in resumed] == list(range(1, len(resumed) + 1)) and len(resumed) > len(rows)
    assert all(json.loads(line) for line in curve.read_text().splitlines())  # the torn line is gone


@pytest.mark.parametrize(
    "name", [case("collect Pong with an agent trained on Space Invaders", "silent_wrong")]
)
def test_collect_refuses_an_agent_of_another_game(name, tmp_path, capsys):
    a3c = importlib.import_module("cswm_lib.a3c.train")
    agent = importlib.import_module("cswm_lib.a3c.agent")
    optim = importlib.import_module("cswm_lib.a3c.optim")
    folder = tmp_path / "agent"
    folder.mkdir()
    policy = agent.make_policy("SpaceInvadersDeterministic-v4")  # 6 actions, like Pong: the weights fit
    cfg = a3c.A3CConfig(env_id="SpaceInvadersDeterministic-v4", folder=str(folder))
    a3c._save_checkpoint(folder, cfg, policy, optim.SharedAdam(policy.parameters()), 0, a3c._Stats(1), 0.0)
    argv = _collect_argv(tmp_path)
    argv[argv.index("--agent") + 1] = folder
    before = snapshot(tmp_path)
    refused(importlib.import_module("cswm_lib.a3c.collect").main, argv, capsys, "SpaceInvaders", "not Pong")
    unchanged(before, tmp_path)
