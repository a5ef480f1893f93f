"""What a dataset file must hold, checked in one place before any array is read.

:func:`check_v1` validates a format-v1 file (see :mod:`cswm_lib.data.hdf5`): its arrays' types and
shapes, the attributes the library acts on (their types, and declared sizes against the arrays), and
that every declared episode is really stored (a 6 KB file cannot declare 10^10 episodes: HDF5 would
hand back zeros for chunks that were never written). :func:`check_original_episode` validates one
episode group of the original code's layout. :func:`whole_ids` keeps ground-truth state ids exact.
Each failure is a one-line :class:`~cswm_lib.CswmError` naming the field (the caller adds the file).
"""

from __future__ import annotations

import numbers
from typing import Any

import h5py
import numpy as np

from cswm_lib.errors import CswmError

#: The python types each attribute may have, with a description (attributes not listed are
#: free-form)
ATTR_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "atari": ((bool, np.bool_), "true or false"),
    "save_state_ids": ((bool, np.bool_), "true or false"),
    "num_episodes": ((numbers.Integral,), "a whole number"),
    "episode_length": ((numbers.Integral,), "a whole number"),
    "num_actions": ((numbers.Integral,), "a whole number"),
    "seed": ((numbers.Integral,), "a whole number"),
    "env_id": ((str,), "a string"),
    "content_sha256": ((str,), "a string"),
}
#: The most bytes of frames per file the library will ever allocate, 2^36 = 64 GiB (a guard
#: against crafted shapes)
MAX_FRAME_BYTES = 2**36


def whole_numbers(x: np.ndarray, name: str, why: str = "") -> np.ndarray:
    """``x`` as int64; floats only when they hold whole numbers (never truncated): else one line
    naming ``name`` (``why``: what truncating would break)."""
    x = np.asarray(x)
    if x.dtype.kind == "f":
        bad = ~np.isfinite(x) | (x != np.round(x))
        if bad.any():
            raise CswmError(f"{name} must be whole numbers, got {x[bad].ravel()[0].item()!r} "
                            f"({int(bad.sum())} non-integer values){why}")
    elif x.dtype.kind not in "iub":
        raise CswmError(f"{name} must be integers, got dtype {x.dtype}")
    return x.astype(np.int64, copy=False)


def whole_ids(s: np.ndarray, where: str = "state_ids") -> np.ndarray:
    """Ground-truth state ids as int64 (truncating 0.2 and 0.7 to 0 would merge distinct states, and
    the de-duplicated scores with them)."""
    return whole_numbers(s, where, ": distinct states would merge")


def check_attrs(attrs: dict[str, Any]) -> None:
    """Types of the attributes the library acts on (:data:`ATTR_TYPES`)."""
    for key, (types, what) in ATTR_TYPES.items():
        if key not in attrs:
            continue
        v = attrs[key]
        if isinstance(v, bool | np.bool_) and bool not in types:  # True is an int to Python, not to us
            ok = False
        elif isinstance(v, int | np.integer) and bool in types:
            ok = v in (0, 1)  # h5py may hand back a bool stored by another writer as 0/1
        else:
            ok = isinstance(v, types)
        if not ok:
            raise CswmError(f"attribute {key!r} must be {what}, got {v!r} ({type(v).__name__})")
    for key in ("num_episodes", "num_actions"):
        if key in attrs and attrs[key] < (0 if key == "num_episodes" else 1):
            low = 0 if key == "num_episodes" else 1
            raise CswmError(f"attribute {key!r} must be >= {low}, got {attrs[key]}")


def _dataset(f: h5py.File, name: str) -> h5py.Dataset:
    if name not in f:
        raise CswmError(f"missing dataset '/{name}' (found {list(f.keys())})")
    ds = f[name]
    if not isinstance(ds, h5py.Dataset):
        raise CswmError(f"'/{name}' is a {type(ds).__name__}, not an array")
    return ds


def _stored_everywhere(ds: h5py.Dataset) -> bool:
    """Whether every element of ``ds`` was written (not left to HDF5's fill value)."""
    if ds.size == 0:
        return True
    if ds.chunks is None:
        return ds.id.get_storage_size() >= ds.size * ds.dtype.itemsize
    per_dim = [-(-n // c) for n, c in zip(ds.shape, ds.chunks, strict=True)]
    return ds.id.get_num_chunks() >= int(np.prod(per_dim))


def check_v1(f: h5py.File, attrs: dict[str, Any]) -> None:
    """A format-v1 file's arrays and attributes (``attrs``: its root attributes as plain values)."""
    check_attrs(attrs)
    frames, actions = _dataset(f, "frames"), _dataset(f, "actions")
    if frames.dtype != np.uint8 or frames.ndim != 5 or min(frames.shape[1:], default=0) < 1:
        raise CswmError(f"'/frames' must be uint8 [E, T+1, C, H, W], got {frames.dtype} {list(frames.shape)}")
    E, T1 = frames.shape[:2]
    if frames.size > MAX_FRAME_BYTES:
        raise CswmError(f"'/frames' declares {list(frames.shape)} ({frames.size / 2**30:,.0f} GiB), "
                        f"more than this library loads ({MAX_FRAME_BYTES / 2**30:.0f} GiB)")
    if actions.dtype.kind not in "iu" or actions.shape != (E, T1 - 1):
        raise CswmError(f"'/actions' {actions.dtype} {list(actions.shape)} do not match frames "
                        f"{list(frames.shape)}: expected integers [E, T] = [{E}, {T1 - 1}]")
    names = ["frames", "actions"]
    if "state_ids" in f:
        ids = _dataset(f, "state_ids")
        if ids.dtype.kind not in "iu":
            raise CswmError(f"'/state_ids' must be integers, got {ids.dtype} (truncated float ids would "
                            "merge distinct states)")
        if ids.ndim != 3 or ids.shape[:2] != (E, T1):
            raise CswmError(f"'/state_ids' {list(ids.shape)} do not match frames {list(frames.shape)}: "
                            f"expected [E, T+1, S] = [{E}, {T1}, S]")
        names.append("state_ids")
    for key, n in (("num_episodes", E), ("episode_length", T1 - 1)):
        if key in attrs and attrs[key] != n:
            raise CswmError(f"attribute {key!r} says {attrs[key]} but '/frames' holds {n}")
    for name in names:
        if not _stored_everywhere(f[name]):
            raise CswmError(f"'/{name}' declares {list(f[name].shape)} but not all of it is stored in the "
                            "file (truncated, or written by another program)")


def check_original_episode(key: str, obs: np.ndarray, nxt: np.ndarray, act: np.ndarray,
                           first: tuple[int, ...] | None) -> None:
    """One episode group of the original layout: ``obs``/``next_obs`` ``[T, C, H, W]`` of the first
    episode's frame shape ``first``, ``action`` ``[T]``."""
    if obs.ndim != 4 or nxt.shape != obs.shape:
        raise CswmError(f"episode '{key}': obs {list(obs.shape)} and next_obs {list(nxt.shape)} must both "
                        "be [T, C, H, W]")
    if obs.dtype.kind not in "fu":
        raise CswmError(f"episode '{key}': observations must be floats in [0, 1] or uint8, got {obs.dtype}")
    if act.ndim != 1:
        raise CswmError(f"episode '{key}': action must be [T], got {list(act.shape)}")
    if first is not None and obs.shape[1:] != first:
        raise CswmError(f"episode '{key}' has frames {list(obs.shape[1:])} but the first episode has "
                        f"{list(first)}: all episodes must have the same frame shape")
