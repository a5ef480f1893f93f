"""Datasets on disk: the book's HDF5 format (v1), and reading the original code's layout.

Format v1 (``format="cswm-book"``, ``format_version=1``)::

    /              attrs: format, format_version, + generation parameters (env_id, seed,
                          num_episodes, atari, save_state_ids, episode_length, ...)
    /frames        uint8 [E, T+1, C, H, W]   each episode's frames once; chunk = one episode, compressed
    /actions       int64 [E, T]              action taken after frames[:, t]
    /state_ids     int64 [E, T+1, S]         optional: ground-truth id of every frame

The original code wrote one group per episode ("0", "1", ...) holding float ``obs`` and
``next_obs`` ``[T, C, H, W]`` in [0, 1], ``action`` ``[T]`` and optionally ``state_ids`` /
``next_state_ids`` ``[T, S]``. :func:`load_episodes` reads both into :class:`Episodes`.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from tqdm.auto import tqdm

from cswm_lib.data.episodes import Episodes, whole_actions
from cswm_lib.data.fingerprint import ContentHash, check_content, content_hash
from cswm_lib.data.schema import check_original_episode, check_v1, whole_ids
from cswm_lib.errors import CswmError
from cswm_lib.utils import atomic_path

FORMAT = "cswm-book"
FORMAT_VERSION = 1
COMPRESSION = "gzip"  # with level 1; see benchmarks/bench_envs.py for gzip vs lzf
COMPRESSION_OPTS = 1


def _attr_value(v: Any) -> Any:
    """An HDF5 attribute as a plain Python value (for comparisons and JSON)."""
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v


def read_attrs(path: str | os.PathLike) -> dict[str, Any]:
    """Root attributes of an HDF5 file as plain Python values (no data is read)."""
    with _open(path) as f:
        return {k: _attr_value(v) for k, v in f.attrs.items()}


class EpisodeWriter:
    """Write episodes into a new format-v1 file chunk by chunk; the file appears only on :meth:`close`.

    ``with EpisodeWriter(path, E, T, (C, H, W), state_dim, attrs) as w: w.write(start, frames, actions, ids)``
    """

    def __init__(
        self,
        path: str | os.PathLike,
        num_episodes: int,
        episode_length: int,
        obs_shape: tuple[int, int, int],
        state_dim: int | None,
        attrs: dict[str, Any],
        compression: str | None = COMPRESSION,
    ) -> None:
        self._atomic = atomic_path(path)
        tmp = self._atomic.__enter__()
        self.file = h5py.File(tmp, "w")
        opts = COMPRESSION_OPTS if compression == "gzip" else None
        E, T = num_episodes, episode_length
        for k, v in {**attrs, "format": FORMAT, "format_version": FORMAT_VERSION}.items():
            if v is not None:
                self.file.attrs[k] = v
        self.frames = self.file.create_dataset(
            "frames", (E, T + 1, *obs_shape), np.uint8, chunks=(1, T + 1, *obs_shape),
            compression=compression, compression_opts=opts,
        )
        self.actions = self.file.create_dataset("actions", (E, T), np.int64)
        self.hash: ContentHash | None = ContentHash(self.frames.shape, state_dim is not None)
        self.written = 0  # episodes hashed so far (written in order)
        self.state_ids = None
        if state_dim is not None:
            self.state_ids = self.file.create_dataset(
                "state_ids", (E, T + 1, state_dim), np.int64, chunks=(min(E, 64), T + 1, state_dim),
                compression=compression, compression_opts=opts,
            )

    def write(self, start: int, frames: np.ndarray, actions: np.ndarray,
              state_ids: np.ndarray | None = None) -> None:
        """Episodes ``start .. start + len(frames)``: frames ``[n, T+1, C, H, W]``, actions ``[n, T]``."""
        stop = start + len(frames)
        if self.hash is not None and start == self.written:
            self.hash.update(frames, actions, state_ids)
            self.written = stop
        else:  # out of order: hashed from the file on close
            self.hash = None
        self.frames[start:stop] = frames
        self.actions[start:stop] = actions
        if self.state_ids is not None:
            self.state_ids[start:stop] = state_ids

    def close(self, ok: bool = True) -> None:
        if ok:
            if self.hash is None or self.written != self.frames.shape[0]:
                ids = None if self.state_ids is None else self.state_ids[()]
                digest = content_hash(Episodes(self.frames[()], self.actions[()], ids))
            else:
                digest = self.hash.hexdigest()
            self.file.attrs["content_sha256"] = digest
        self.file.close()
        if ok:
            self._atomic.__exit__(None, None, None)
        else:
            self._atomic.__exit__(RuntimeError, RuntimeError("aborted"), None)

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(ok=exc_type is None)


def save_episodes(episodes: Episodes, path: str | os.PathLike, compression: str | None = COMPRESSION) -> Path:
    """Write ``episodes`` to ``path`` in format v1 (atomically: temp file + rename)."""
    e = episodes
    state_dim = None if e.state_ids is None else e.state_ids.shape[-1]
    shape = (e.num_episodes, e.episode_length, e.obs_shape)
    with EpisodeWriter(path, *shape, state_dim, e.attrs, compression) as w:
        w.write(0, e.frames, e.actions, e.state_ids)
    return Path(path)


def save_original_layout(episodes: Episodes, path: str | os.PathLike, dtype: str = "float32") -> Path:
    """Write ``episodes`` the way the original code did (for interoperability and size comparisons).

    One group per episode ("0", "1", ...) with float ``obs`` / ``next_obs`` ``[T, C, H, W]`` in
    [0, 1], ``action`` ``[T]`` and, when present, ``state_ids`` / ``next_state_ids`` ``[T, S]``;
    uncompressed like the original. Atomic.
    """
    e = episodes
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for i in range(e.num_episodes):
            frames = e.frames[i].astype(dtype) / 255.0
            g = f.create_group(str(i))
            g["obs"], g["next_obs"], g["action"] = frames[:-1], frames[1:], e.actions[i]
            if e.state_ids is not None:
                g["state_ids"], g["next_state_ids"] = e.state_ids[i, :-1], e.state_ids[i, 1:]
    return Path(path)


def _open(path: str | os.PathLike) -> h5py.File:
    path = Path(path)
    if not path.exists():
        raise CswmError(f"dataset file not found: {path}")
    if path.is_dir():
        raise CswmError(f"dataset path is a directory, expected an HDF5 file: {path}")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CswmError(f"cannot read {path}: not a valid HDF5 file, truncated or corrupt ({reason})") \
            from None


class LazyFrames:
    """The ``/frames`` dataset of a format-v1 file, read only where it is indexed.

    Behaves like the uint8 array ``[E, T+1, C, H, W]`` for what evaluation needs (``shape``,
    ``dtype``, ``ndim``, ``len``, ``frames[a:b]``, ``frames[a:b, t]``, ``frames[a:b, [t0, t1]]``
    with increasing indices, ``np.asarray(frames)``): every index reads just those elements from
    the file (HDF5 decompresses only the chunks -- one episode each -- that they touch), so memory
    follows the slice, not the file. ``frames_read`` counts the frames returned so far and
    ``largest_read`` the most frames one read returned (tests check both).
    """

    def __init__(self, file: h5py.File, name: str = "frames") -> None:
        self._file, self._ds = file, file[name]
        self.shape, self.dtype, self.ndim = tuple(self._ds.shape), self._ds.dtype, self._ds.ndim
        self.frames_read = 0
        self.largest_read = 0

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        try:
            out = self._ds[key]
        except OSError as err:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise CswmError(f"cannot read {self._file.filename}: truncated or corrupt data ({reason})") \
                from None
        n = int(np.prod(out.shape[:-3])) if out.ndim >= 3 else 1
        self.frames_read += n
        self.largest_read = max(self.largest_read, n)
        return out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        a = self[()]
        return a if dtype is None else a.astype(dtype, copy=False)

    def close(self) -> None:
        self._file.close()

    def __repr__(self) -> str:
        return f"LazyFrames({self._file.filename}, shape={list(self.shape)})"


def load_episodes(path: str | os.PathLike, progress: bool = False, lazy: bool = False) -> Episodes:
    """Read a dataset: our format v1 or the original per-episode-group layout.

    Returns :class:`Episodes` with frames uint8 ``[E, T+1, C, H, W]``. With ``lazy=True`` a
    format-v1 file's frames stay on disk as :class:`LazyFrames` (the file stays open; actions and
    state ids are read, they are small): evaluation then decompresses only the episodes it embeds,
    a chunk at a time. Original-layout files are always read whole (they are converted on
    reading). Raises a one-line :class:`CswmError` for a missing, truncated/corrupt or foreign
    file, or inconsistent lengths.
    """
    path = Path(path)
    if lazy:
        f = _open(path)
        try:
            if _attr_value(f.attrs.get("format")) == FORMAT:
                return _load_v1(f, path, lazy=True)
        except OSError as err:
            f.close()
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise CswmError(f"cannot read {path}: truncated or corrupt data ({reason})") from None
        except CswmError as err:
            f.close()
            raise CswmError(f"{path}: {err}") from None
        f.close()
    with _open(path) as f:
        try:
            if _attr_value(f.attrs.get("format")) == FORMAT:
                return _load_v1(f, path)
            keys = list(f.keys())
            if keys and all(k.isdigit() for k in keys):
                return _load_original(f, path, progress)
        except OSError as err:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise CswmError(f"cannot read {path}: truncated or corrupt data ({reason})") from None
        except CswmError as err:
            raise CswmError(f"{path}: {err}") from None
        attrs = {k: _attr_value(v) for k, v in f.attrs.items()}
        raise CswmError(
            f"{path} is neither a {FORMAT} dataset (attr format={FORMAT!r}) nor an original C-SWM file "
            f"(groups '0', '1', ...): found keys {keys[:5]} and attrs {sorted(attrs)[:5]}"
        )



def load_episodes_cached(path: str | os.PathLike) -> Episodes:
    """:func:`load_episodes` with a small per-process cache (the last two files, keyed by path, size
    and modification time), so runs that one process trains one after another share one copy of
    their dataset. ``load_episodes_cached.cache_clear()`` empties it."""
    path = Path(path)
    if not path.is_file():
        return load_episodes(path)  # (its own one-line error)
    st = path.stat()
    return _load_cached(str(path.resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=2)
def _load_cached(path: str, size: int, mtime_ns: int) -> Episodes:
    return load_episodes(path)


load_episodes_cached.cache_clear = _load_cached.cache_clear  # type: ignore[attr-defined]

def _load_v1(f: h5py.File, path: Path, lazy: bool = False) -> Episodes:
    version = _attr_value(f.attrs.get("format_version"))
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= FORMAT_VERSION:
        raise CswmError(f"format_version {version!r} is not supported (we read 1..{FORMAT_VERSION})")
    attrs = {k: _attr_value(v) for k, v in f.attrs.items()}
    check_v1(f, attrs)
    frames = LazyFrames(f) if lazy else f["frames"][()]
    actions = f["actions"][()]
    state_ids = f["state_ids"][()] if "state_ids" in f else None
    episodes = Episodes(frames, actions, state_ids, attrs)
    if not lazy:
        check_content(episodes, attrs.get("content_sha256"))
    return episodes


def _load_original(f: h5py.File, path: Path, progress: bool) -> Episodes:
    """Groups "0".."E-1" (read in NUMERIC order) -> Episodes. frames = obs + last next_obs, as uint8.

    The order the original scripts read them in (h5py's, by name: "0", "1", "10", ...) is kept as
    :attr:`Episodes.original_order`."""
    keys = sorted(f.keys(), key=int)
    position = {k: i for i, k in enumerate(keys)}
    original_order = np.array([position[k] for k in f.keys()], dtype=np.int64)
    frames, actions, ids = [], [], []
    with_ids = all("state_ids" in f[k] and "next_state_ids" in f[k] for k in keys)
    for k in tqdm(keys, desc=f"reading {path.name}", disable=not progress):
        g = f[k]
        if not isinstance(g, h5py.Group):
            raise CswmError(f"'{k}' is a {type(g).__name__}, not an episode group")
        missing = [n for n in ("obs", "action", "next_obs") if n not in g]
        if missing:
            raise CswmError(f"episode group '{k}' lacks {missing} (has {list(g.keys())})")
        obs, nxt, act = g["obs"][()], g["next_obs"][()], g["action"][()]
        check_original_episode(k, obs, nxt, act, frames[0].shape[1:] if frames else None)
        if not (len(obs) == len(nxt) == len(act)) or len(obs) == 0:
            raise CswmError(
                f"episode '{k}' has mismatched lengths: obs {len(obs)}, action {len(act)}, "
                f"next_obs {len(nxt)}"
            )
        if frames and len(obs) + 1 != frames[0].shape[0]:
            raise CswmError(
                f"episode '{k}' has {len(obs)} steps but episode '{keys[0]}' has {frames[0].shape[0] - 1}: "
                "all episodes must have the same length"
            )
        for x in (obs, nxt):
            if x.dtype.kind == "f" and not np.isfinite(x).all():
                bad = int((~np.isfinite(x)).sum())
                raise CswmError(f"episode '{k}': observations hold {bad} NaN or inf values")
        if not np.allclose(nxt[:-1], obs[1:], atol=1 / 510):
            raise CswmError(f"episode '{k}': next_obs[t] != obs[t+1], the steps are not consecutive")
        frames.append(_to_uint8(np.concatenate([obs, nxt[-1:]]), k))
        actions.append(whole_actions(np.asarray(act), f"episode '{k}'").reshape(len(act)))
        if with_ids:
            s, ns = g["state_ids"][()], g["next_state_ids"][()]
            if len(s) != len(obs) or len(ns) != len(obs):
                raise CswmError(
                    f"episode '{k}' has {len(s)} state_ids / {len(ns)} next_state_ids for {len(obs)} steps"
                )
            ids.append(whole_ids(np.concatenate([s, ns[-1:]]), f"episode '{k}': state_ids"))
    attrs = {"source": "original-layout", "num_episodes": len(keys), "episode_length": len(actions[0])}
    episodes = Episodes(np.stack(frames), np.stack(actions), np.stack(ids) if with_ids else None, attrs,
                        original_order)
    check_content(episodes)  # computed once, here (the original layout stores no hash)
    return episodes


def _to_uint8(x: np.ndarray, key: str) -> np.ndarray:
    """Floats in [0, 1] -> uint8 by rounding ``x * 255`` (exact for images that were uint8 / 255)."""
    if x.dtype == np.uint8:
        return x
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).sum())
        raise CswmError(f"episode '{key}': observations hold {bad} NaN or inf values")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise CswmError(f"episode '{key}': observations span [{lo:g}, {hi:g}], expected floats in [0, 1]")
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def is_our_dataset(path: Path) -> bool:
    """Whether ``path`` is an HDF5 dataset of the book's format (an ``ours`` test for
    :func:`cswm_lib.paths.output_file`: such a file may be replaced without ``--overwrite``)."""
    try:
        return read_attrs(path).get("format") == "cswm-book"
    except CswmError:
        return False
