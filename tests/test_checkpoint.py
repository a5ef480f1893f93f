"""Loading checkpoints: the original code's (reproducing its outputs) and ours; one-line errors."""

import pickle
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from cswm_lib.checkpoint import load_model, read_original_args
from cswm_lib.errors import CswmError

ART = Path(__file__).parent / "data" / "original"  # written by the original code: see its README.md
CKPT = ART / "checkpoint_small"


def test_original_checkpoint_reproduces_original_outputs():
    model = load_model(CKPT, "cpu")
    assert not model.training and model.config.input_shape == (3, 50, 50) and model.config.encoder == "small"
    exp = np.load(CKPT / "expected_outputs.npz")
    with h5py.File(
        ART / "sample_original_layout.h5"
    ) as f:  # the original float32 obs, as the original fed them
        grp = [f[str(e)] for e in exp["episode_index"]]
        obs = torch.tensor(np.stack([g["obs"][t] for g, t in zip(grp, exp["step"], strict=True)]))
        nxt = torch.tensor(np.stack([g["next_obs"][t] for g, t in zip(grp, exp["step"], strict=True)]))
        act = torch.tensor([int(g["action"][t]) for g, t in zip(grp, exp["step"], strict=True)])
    with torch.no_grad():
        z, zn = model.encode(obs), model.encode(nxt)
        got = {
            "state": z,
            "next_state": zn,
            "predicted_delta": model.transition(z, act),
            "energy_positive": model.energy(z, zn, act),
            "energy_z_vs_reversed_next": model.energy(z, zn.flip(0)),
        }
    for k, v in got.items():
        np.testing.assert_allclose(v.numpy(), exp[k], rtol=1e-5, atol=1e-5, err_msg=k)


def test_metadata_unpickler_refuses_code(tmp_path):
    assert read_original_args(CKPT / "metadata.pkl")["encoder"] == "small"
    bad = tmp_path / "metadata.pkl"
    bad.write_bytes(pickle.dumps({"args": Path("x")}))
    with pytest.raises(CswmError, match="not an original C-SWM metadata.pkl"):
        read_original_args(bad)


def test_mismatch_errors_are_one_line(tmp_path):
    for kw, pat in [
        ({"encoder": "large"}, "encoder = 'small', expected 'large'"),
        ({"num_objects": 3}, "num_objects = 5, expected 3"),
        ({"embedding_dim": 4}, "embedding_dim = 2, expected 4"),
    ]:
        with pytest.raises(CswmError, match=pat) as err:
            load_model(CKPT, "cpu", **kw)
        assert "\n" not in str(err.value)
    with pytest.raises(CswmError, match="no model.pt"):
        load_model(tmp_path, "cpu")
    # metadata that disagrees with the weights (object count)
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(CKPT / "model.pt", bad / "model.pt")
    args = read_original_args(CKPT / "metadata.pkl")
    import argparse

    (bad / "metadata.pkl").write_bytes(
        pickle.dumps({"args": argparse.Namespace(**{**args, "num_objects": 4})})
    )
    with pytest.raises(CswmError, match="needs") as err:
        load_model(bad, "cpu")
    assert "\n" not in str(err.value)
    (bad / "metadata.pkl").write_bytes(
        pickle.dumps({"args": argparse.Namespace(**{**args, "encoder": "large"})})
    )
    with pytest.raises(CswmError, match="does not fit a large encoder"):
        load_model(bad, "cpu")
