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
    source = folder / ("config.json" if (folder / "config.json").is_file() else "metadata.pkl")
    try:
        model = CSWM(ModelConfig(**cfg))
    except (TypeError, ValueError, OverflowError) as err:
        raise CswmError(f"checkpoint {folder} has an invalid model config ({err})") from None
    except CswmError as err:
        raise CswmError(f"{source}: {err}") from None
    check_weights(state, model, weights, f"a {cfg['encoder']} encoder with {cfg['num_objects']} objects")
    model.load_state_dict(state)
    return model.to(get_device(device if device is None else str(device))).eval()


def check_weights(state: object, model: torch.nn.Module, path: str | Path, fits: str = "this model") -> None:
    """``state`` is a state dict of tensors with exactly ``model``'s names and shapes (else one line
    naming ``path`` and the first parameter that differs)."""
    if not isinstance(state, dict):
        raise CswmError(f"{path} holds a {type(state).__name__} where a state dict of tensors belongs")
    mine = model.state_dict()
    missing, extra = sorted(set(mine) - set(state)), sorted(set(state) - set(mine))
    if missing or extra:
        raise CswmError(f"{path} does not fit {fits}: missing {missing[:3]}, unexpected {extra[:3]}")
    for k, v in state.items():
        if not isinstance(v, torch.Tensor):
            raise CswmError(f"{path}: {k} is a {type(v).__name__}, not a tensor")
        if v.shape != mine[k].shape or v.dtype != mine[k].dtype:
            raise CswmError(f"{path}: {k} is {v.dtype} {list(v.shape)} but the config needs "
                            f"{mine[k].dtype} {list(mine[k].shape)}")


#: What a ``state.pt`` holds, key -> (types, description); its "model" is checked against the
#: model by check_weights
TRAINING_STATE = {
    "model": ((dict,), "a state dict"),
    "optimizer": ((dict,), "an optimizer state dict"),
    "epoch": ((int,), "a whole number >= 0"),
    "updates": ((int,), "a whole number >= 0"),
    "best_loss": ((int, float), "a number"),
    "log": ((list,), "a list of log rows"),
    "curve": ((list,), "a list of curve points"),
    "config": ((dict,), "the run's config"),
    "data": ((dict,), "a dataset fingerprint"),
    "acc": ((dict,), "running totals"),  # before cswm_lib.run_folder.Meter
    "meter": ((dict,), "running totals"),
    "selected": ((dict,), "the updates and loss of the weights in model.pt"),
}


def load_training_state(path: str | Path) -> dict:
    """``state.pt`` of an interrupted run, read safely (tensors and plain values only) and checked:
    the keys a resume needs, each of the type it must have (one line naming the file and key)."""
    path = Path(path)
    state = load_tensors(path, "training state (state.pt)")
    need = {"model", "optimizer", "epoch", "best_loss", "log", "config"}
    if not isinstance(state, dict) or not need <= set(state):
        raise CswmError(f"{path} is not a training state of this library (expected the keys {sorted(need)}); "
                        "delete it or use another --name")
    for key, (types, what) in TRAINING_STATE.items():
        if key not in state:
            continue
        v = state[key]
        if isinstance(v, bool) or not isinstance(v, types) or (key in ("epoch", "updates") and v < 0):
            raise CswmError(f"{path}: {key!r} must be {what}, got {type(v).__name__} {str(v)[:40]!r}; "
                            "delete it or use another --name")
    if not all(isinstance(r, dict) for r in state["log"]):
        raise CswmError(f"{path}: 'log' must hold one dict per epoch; delete it or use another --name")
    return state
