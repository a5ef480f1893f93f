"""Checkpoints: crafted pickles run no code; broken or mismatched files are one line."""

from __future__ import annotations

import importlib
import pickle

import pytest
import torch
from tiny_worlds import tiny_episodes

from cswm_lib.errors import CswmError

from .common import (
    _corrupt,
    _live,
    _load_model,
    _model_folder,
    _original_folder,
    _Payload,
    _replace,
    _truncate,
    api_cases,
    case,
    cli,
    one_line,
    run_api_case,
)

CRAFTED = [
    case(f"crafted pickle in {n}", b)
    for n, b in [
        ("state.pt", "code_executed"),
        ("A3C checkpoint.pt", "code_executed"),
        ("model.pt", "traceback"),
        ("metadata.pkl", "code_executed"),
    ]
]


@pytest.mark.parametrize("name", CRAFTED)
def test_crafted_pickles_are_refused_without_running_code(name, tmp_path, trained, capsys):
    import shutil

    a3c_collect = importlib.import_module("cswm_lib.a3c.collect")
    a3c_train = importlib.import_module("cswm_lib.a3c.train")
    from cswm_lib.checkpoint import load_model
    from cswm_lib.train import TrainConfig, train

    marker = tmp_path / "pwned"
    folder = tmp_path / "run"
    shutil.copytree(trained, folder)
    if name.endswith("metadata.pkl"):
        (folder / "config.json").unlink()
        data = pickle.dumps({"args": _Payload(marker)})
        (folder / "metadata.pkl").write_bytes(data)
        _live(marker, lambda: pickle.loads(data))
        with pytest.raises(CswmError) as err:
            load_model(folder)
    elif name.endswith("model.pt"):
        torch.save({"model": _Payload(marker)}, folder / "model.pt")
        _live(marker, lambda: torch.load(folder / "model.pt", weights_only=False))
        with pytest.raises(CswmError) as err:
            load_model(folder)
    elif name.endswith("state.pt"):
        state = torch.load(folder / "state.pt", weights_only=True)
        state["log"].append(_Payload(marker))
        torch.save(state, folder / "state.pt")
        _live(marker, lambda: torch.load(folder / "state.pt", weights_only=False))
        cfg = TrainConfig(
            dataset="tiny.h5",
            save_folder=str(tmp_path),
            name="run",
            hidden_dim=16,
            num_objects=2,
            batch_size=8,
            epochs=2,
            progress=False,
            device="cpu",
        )
        before = (folder / "model.pt").read_bytes()
        with pytest.raises(CswmError) as err:
            train(cfg, tiny_episodes(E=2, T=4))
        assert (folder / "model.pt").read_bytes() == before  # nothing was overwritten
    else:
        a3c = tmp_path / "a3c"
        a3c.mkdir()
        torch.save(
            {
                "config": {"env_id": "CartPole-v1"},
                "model": _Payload(marker),
                "optimizer": {},
                "frames": 0,
                "stats": {},
                "elapsed": 0.0,
            },
            a3c / "checkpoint.pt",
        )
        _live(marker, lambda: torch.load(a3c / "checkpoint.pt", weights_only=False))
        with pytest.raises(CswmError) as err:
            importlib.import_module("cswm_lib.a3c.agent").load_policy(a3c)
        msg = cli(
            a3c_collect.main,
            ["PongDeterministic-v4", "--save-path", tmp_path / "x.h5", "--agent", a3c, "--max-episodes", "1"],
            capsys,
        )
        assert "checkpoint.pt is not a valid or trusted" in msg
        msg = cli(
            a3c_train.main, ["CartPole-v1", "--folder", a3c, "--num-workers", "1", "--no-progress"], capsys
        )
        assert "checkpoint.pt is not a valid or trusted" in msg
        assert not (tmp_path / "x.h5").exists()
    assert "not a valid" in one_line(err.value) or "not allowed" in str(err.value)
    assert not marker.exists()


API = [  # (what the user does, class it guards against, call(tmp_path, trained), message)
    (
        "random bytes as model.pt",
        "traceback",
        lambda t, m: _load_model(_corrupt(_model_folder(t, m), "model.pt")),
        "model.pt is not a valid or trusted",
    ),
    (
        "truncated model.pt",
        "traceback",
        lambda t, m: _load_model(_truncate(_model_folder(t, m), "model.pt")),
        "model.pt is not a valid or trusted",
    ),
    (
        "config.json broken",
        "traceback",
        lambda t, m: _load_model(_corrupt(_model_folder(t, m), "config.json")),
        "is not a valid config.json",
    ),
    (
        "config.json without model",
        "traceback",
        lambda t, m: _load_model(_replace(_model_folder(t, m), "config.json", b'{"train": {}}')),
        "has no 'model' section",
    ),
    (
        "config.json with a bad model setting",
        "traceback",
        lambda t, m: _load_model(
            _replace(_model_folder(t, m), "config.json", b'{"model": {"encoder": "x"}}')
        ),
        "unknown encoder",
    ),
    ("no model.pt", "traceback", lambda t, m: _load_model(t), "no model.pt"),
    (
        "model.pt and config.json disagree",
        "traceback",
        lambda t, m: _load_model(m, num_objects=3),
        "was trained with num_objects = 2",
    ),
    (
        "garbage metadata.pkl",
        "traceback",
        lambda t, m: _load_model(_original_folder(_model_folder(t, m), b"garbage")),
        "not an original C-SWM",
    ),
]


@pytest.mark.parametrize(("name", "call", "pattern"), api_cases(API))
def test_loading_a_bad_checkpoint_is_one_line(name, call, pattern, tmp_path, trained):
    run_api_case(name, call, pattern, tmp_path, trained)
