"""Load trained models: ours (``model.pt`` + ``config.json``) and the original code's (``model.pt`` +
``metadata.pkl`` holding ``{'args': argparse.Namespace}``).

Both store a plain ``ContrastiveSWM`` state dict with the same parameter names (see the table in
:mod:`cswm_lib.model`), so the only work is rebuilding the :class:`~cswm_lib.model.ModelConfig`.
The original never stored the input shape (it took it from the first batch); we read the channel
count from the first conv and the mask size from the object encoder's input, assuming square frames
(pass ``input_shape`` to override).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import pickle
from pathlib import Path

import torch

from cswm_lib.errors import CswmError
from cswm_lib.model import _DOWNSAMPLE, CSWM, ENCODERS, MODEL_KEYS, ModelConfig
from cswm_lib.utils import get_device, load_tensors


class _NamespaceUnpickler(pickle.Unpickler):
    """Unpickles only plain containers and ``argparse.Namespace``: nothing else can run on load."""

    def find_class(self, module: str, name: str) -> type:
        if (module, name) == ("argparse", "Namespace"):
            return argparse.Namespace
        raise pickle.UnpicklingError(f"metadata.pkl refers to {module}.{name}, which is not allowed")


def read_original_args(path: str | Path) -> dict:
    """The training flags stored in an original ``metadata.pkl``, as a dict."""
    try:
        with open(path, "rb") as fh:
            meta = _NamespaceUnpickler(fh).load()
        return vars(meta["args"])
    except OSError as err:
        raise CswmError(f"cannot read {path}: {err.strerror or err}") from None
    except Exception as err:  # the restricted unpickler ran no code; any failure means a foreign file
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CswmError(f"{path} is not an original C-SWM metadata.pkl ({reason})") from None


def read_model_config(path: Path) -> dict:
    """The ``model`` section of our ``config.json`` (one-line error when broken or foreign)."""
    try:
        section = json.loads(path.read_text()).get("model")
    except (ValueError, AttributeError, OSError) as err:
        raise CswmError(f"{path} is not a valid config.json ({type(err).__name__}: "
                        f"{str(err).splitlines()[0] if str(err) else 'unreadable'})") from None
    if not isinstance(section, dict):
        raise CswmError(f"{path} has no 'model' section: it is not a config.json written by cswm_lib.train")
    unknown = sorted(set(section) - {f.name for f in dataclasses.fields(ModelConfig)})
    if unknown:
        raise CswmError(f"{path}: unknown model settings {unknown}")
    return dict(section)


def _infer_input_shape(encoder: str, state: dict) -> tuple[int, int, int]:
    channels = state["obj_extractor.cnn1.weight"].shape[1]
    cells = state["obj_encoder.fc1.weight"].shape[1]
    side = math.isqrt(cells)
    return channels, side * _DOWNSAMPLE[encoder], side * _DOWNSAMPLE[encoder]


def load_model(
    folder: str | Path,
    device: str | torch.device | None = None,
    *,
    input_shape: tuple[int, int, int] | None = None,
    **expect: object,
) -> CSWM:
    """Rebuild a trained :class:`CSWM` from ``folder`` in eval mode on ``device``.

    ``expect`` may name ModelConfig fields the caller relies on (``encoder="small"``,
    ``num_objects=5``, ``embedding_dim=2``...): a mismatch is a one-line :class:`CswmError`.
    """
    folder = Path(folder)
    weights = folder / "model.pt"
    if not weights.is_file():
        raise CswmError(f"no model.pt in checkpoint folder {folder}")
    state = load_tensors(weights, "model checkpoint (model.pt)")
    if not isinstance(state, dict):
        raise CswmError(f"{weights} holds a {type(state).__name__}, not a C-SWM state dict")
    if isinstance(state, dict) and "model" in state and "obj_encoder.fc1.weight" not in state:
        state = state["model"]
    if (folder / "config.json").is_file():
        cfg = read_model_config(folder / "config.json")
    elif (folder / "metadata.pkl").is_file():
        args = read_original_args(folder / "metadata.pkl")
        cfg = {k: args[k] for k in MODEL_KEYS if k in args}
        if cfg.get("encoder") not in ENCODERS:
            raise CswmError(f"{folder}/metadata.pkl names unknown encoder {cfg.get('encoder')!r}")
        try:
            cfg["input_shape"] = _infer_input_shape(cfg["encoder"], state)
        except KeyError as err:
            raise CswmError(f"{weights} is not a C-SWM state dict (missing {err})") from None
    else:
        raise CswmError(f"checkpoint folder {folder} has model.pt but neither config.json nor metadata.pkl")
    if input_shape is not None:
        cfg["input_shape"] = tuple(input_shape)
    for k, want in expect.items():
        if k not in cfg:
            raise CswmError(f"unknown model setting {k!r} (known: {', '.join(cfg)})")
        got = tuple(cfg[k]) if k == "input_shape" else cfg[k]
        if got != want:
            raise CswmError(f"checkpoint {folder} was trained with {k} = {got!r}, expected {want!r}")
    try:
        model = CSWM(ModelConfig(**cfg))
    except (TypeError, ValueError) as err:
        raise CswmError(f"checkpoint {folder} has an invalid model config ({err})") from None
    mine = model.state_dict()
    missing, extra = sorted(set(mine) - set(state)), sorted(set(state) - set(mine))
    if missing or extra:
        raise CswmError(
            f"{weights} does not fit a {cfg['encoder']} encoder with {cfg['num_objects']} objects: "
            f"missing {missing[:3]}, unexpected {extra[:3]}"
        )
    for k, v in state.items():
        if v.shape != mine[k].shape:
            raise CswmError(
                f"{weights}: {k} has shape {list(v.shape)} but the config (num_objects "
                f"{cfg['num_objects']}, embedding_dim {cfg['embedding_dim']}, hidden_dim "
                f"{cfg['hidden_dim']}, action_dim {cfg['action_dim']}) needs {list(mine[k].shape)}"
            )
    model.load_state_dict(state)
    return model.to(get_device(device if device is None else str(device))).eval()
