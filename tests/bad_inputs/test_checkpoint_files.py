"""Checkpoint files whose keys are right but whose values are not (config.json, model.pt, state.pt,
the A3C checkpoint): each is refused in one line naming the file and the field, before anything is
allocated or written, and the folder stays as it was."""

from __future__ import annotations

import importlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from tiny_worlds import tiny_episodes

from .common import _h5, _train_main, api_refused, case, refused, snapshot, train_argv, unchanged


def _evaluate_cli():
    from cswm_lib.evaluate import main
    from cswm_lib.utils import cli_errors

    return cli_errors(main)


def _config(**model):
    def edit(folder: Path):
        cfg = json.loads((folder / "config.json").read_text())
        cfg["model"].update(model)
        (folder / "config.json").write_text(json.dumps(cfg))

    return edit


def _weights(fn):
    def edit(folder: Path):
        state = torch.load(folder / "model.pt", weights_only=True)
        torch.save(fn(state), folder / "model.pt")

    return edit


CONFIG = {
    "evaluate a checkpoint whose config.json asks for hidden_dim 10^7": (
        "traceback",
        _config(hidden_dim=10_000_000),
        ("config.json", "--hidden-dim must be in [16, 65536]"),
    ),
    "evaluate a checkpoint whose config.json has num_objects '2'": (
        "traceback",
        _config(num_objects="2"),
        ("config.json", "--num-objects must be a whole number"),
    ),
    "evaluate a checkpoint whose config.json has embedding_dim true": (
        "silent_wrong",
        _config(embedding_dim=True),
        ("config.json", "--embedding-dim must be a whole number"),
    ),
    "evaluate a checkpoint whose config.json has input_shape 'abc'": (
        "traceback",
        _config(input_shape="abc"),
        ("input_shape must be a whole number",),
    ),
    "evaluate a checkpoint whose config.json has action_dim 0": (
        "misleading_message",
        _config(action_dim=0),
        ("config.json", "--action-dim must be in [1, "),
    ),
    "evaluate a checkpoint whose config.json has hidden_dim 8": (
        "traceback",
        _config(hidden_dim=8),
        ("config.json", "--hidden-dim must be in [16, "),
    ),
    "evaluate a checkpoint whose model.pt holds an int": (
        "traceback",
        lambda f: torch.save(3, f / "model.pt"),
        ("model.pt", "holds a int"),
    ),
    "evaluate a checkpoint whose model.pt holds a list for a weight": (
        "traceback",
        _weights(lambda s: {**s, "obj_encoder.fc1.bias": [0.0] * 4}),
        ("model.pt", "not a tensor"),
    ),
    "evaluate a checkpoint whose model.pt weight has another shape": (
        "traceback",
        _weights(lambda s: {**s, "obj_encoder.fc1.bias": torch.zeros(3)}),
        ("model.pt", "obj_encoder.fc1.bias"),
    ),
}
CONFIG_CASES = [pytest.param(case(n, k), edit, want, id=n) for n, (k, edit, want) in CONFIG.items()]


@pytest.mark.parametrize(("name", "edit", "want"), CONFIG_CASES)
def test_evaluate_refuses_a_checkpoint_with_a_bad_value_in_one_line(
    name, edit, want, tmp_path, trained, capsys, monkeypatch
):
    folder = Path(shutil.copytree(trained, tmp_path / "ckpt"))
    edit(folder)
    data = _h5(tmp_path, "eval.h5", E=4, T=4)
    monkeypatch.setenv("CSWM_RESULTS", str(tmp_path / "results"))
    before = snapshot(tmp_path)
    argv = ["--save-folder", folder, "--dataset", data, "--no-progress", "--ks", 1, "--device", "cpu"]
    refused(_evaluate_cli(), argv, capsys, *want)
    unchanged(before, tmp_path)


def _state(tmp_path: Path, **change) -> Path:
    from cswm_lib.data.hdf5 import save_episodes

    data = save_episodes(tiny_episodes(E=2, T=4), tmp_path / "d.h5")
    _train_main([str(a) for a in train_argv(data, tmp_path)])
    path = tmp_path / "run" / "state.pt"
    state = torch.load(path, weights_only=True)
    torch.save({**state, **change}, path)
    return data




STATE = {
    "load a state.pt whose updates is 'many'": ("traceback", {"updates": "many"}, "'updates' must be"),
    "load a state.pt whose epoch is -3": ("silent_wrong", {"epoch": -3}, "'epoch' must be"),
    "load a state.pt whose log is a string": ("traceback", {"log": "none"}, "'log' must be"),
    "load a state.pt whose best_loss is a list": ("traceback", {"best_loss": [1.0]}, "'best_loss' must be"),
}
STATE_CASES = [pytest.param(case(n, k), change, want, id=n) for n, (k, change, want) in STATE.items()]


@pytest.mark.parametrize(("name", "change", "want"), STATE_CASES)
def test_a_training_state_with_a_bad_value_is_one_line(name, change, want, tmp_path, capsys):
    from cswm_lib.checkpoint import load_training_state

    _state(tmp_path, **change)
    capsys.readouterr()
    before = snapshot(tmp_path)
    api_refused(lambda: load_training_state(tmp_path / "run" / "state.pt"), "state.pt", want)
    unchanged(before, tmp_path)


@pytest.mark.parametrize(
    "name", [case("resume a run whose state.pt holds weights of other shapes", "traceback")]
)
def test_resume_refuses_a_state_with_weights_of_other_shapes(name, tmp_path, capsys):
    model = {"obj_encoder.fc1.bias": torch.zeros(3)}
    data = _state(tmp_path, model=model)
    capsys.readouterr()
    before = snapshot(tmp_path)
    refused(_train_main, train_argv(data, tmp_path, epochs=2), capsys, "state.pt", "obj_encoder")
    unchanged(before, tmp_path)


# ------------------------------------------------------------------------------------------------
# the A3C checkpoint


def _a3c(tmp_path: Path, env_id: str = "CartPole-v1", weights_of: str | None = None, **change) -> Path:
    a3c = importlib.import_module("cswm_lib.a3c.train")
    agent = importlib.import_module("cswm_lib.a3c.agent")
    cfg = a3c.A3CConfig(env_id=env_id, folder=str(tmp_path / "a3c"))
    policy = agent.make_policy(weights_of or env_id)
    opt = importlib.import_module("cswm_lib.a3c.optim").SharedAdam(policy.parameters())
    (tmp_path / "a3c").mkdir()
    a3c._save_checkpoint(tmp_path / "a3c", cfg, policy, opt, 0, a3c._Stats(1), 0.0)
    path = tmp_path / "a3c" / "checkpoint.pt"
    ckpt = torch.load(path, weights_only=True)
    for k, v in change.items():
        if k.startswith("config_"):
            ckpt["config"][k[7:]] = v
        elif k == "no_hidden":
            del ckpt["config"]["hidden"]
        else:
            ckpt[k] = v
    torch.save(ckpt, path)
    return tmp_path / "a3c"


A3C = {
    "load an A3C checkpoint whose config has no hidden": ("traceback", dict(no_hidden=True), "config.hidden"),
    "load an A3C checkpoint whose hidden is 'big'": ("traceback", dict(config_hidden="big"), "config.hidden"),
    "load an A3C checkpoint whose frames is 'many'": ("traceback", dict(frames="many"), "frames"),
    "load an A3C agent of another game": (
        "traceback",
        dict(weights_of="Acrobot-v1"),
        "does not fit a CartPole-v1",
    ),
}
A3C_CASES = [pytest.param(case(n, k), change, want, id=n) for n, (k, change, want) in A3C.items()]


@pytest.mark.parametrize(("name", "change", "want"), A3C_CASES)
def test_a3c_refuses_a_checkpoint_with_a_bad_value_in_one_line(name, change, want, tmp_path, capsys):
    a3c_train = importlib.import_module("cswm_lib.a3c.train")
    agent = importlib.import_module("cswm_lib.a3c.agent")
    folder = _a3c(tmp_path, **change)
    before = snapshot(tmp_path)
    api_refused(lambda: agent.load_policy(folder), "checkpoint.pt", want)
    argv = ["CartPole-v1", "--folder", folder, "--num-workers", 1, "--max-frames", 100, "--no-progress"]
    refused(a3c_train.main, argv, capsys, "checkpoint.pt", want)  # resuming it: refused the same way
    unchanged(before, tmp_path)
