"""What identifies a dataset whatever its path: a hash of its whole content.

:class:`ContentHash` hashes frames, actions and state ids as they are written (the generator writes
the hash into the file, attribute ``content_sha256``), :func:`check_content` checks it when a file is
read whole (a file without one, e.g. from another program, gets it computed there, once per load),
and :func:`data_fingerprint` is what a training run stores to know it resumes on the same data.

Fingerprint versions: ``2`` (``{"version": 2, "shape", "sha256"}``) covers every byte of the
episodes. Runs saved before it carry version 1 (no ``version`` key: actions and the first and last
frame of each episode, plus generation attributes); ``data_fingerprint(episodes, like=old)`` computes
that older kind for them, so they still resume.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from cswm_lib.data.episodes import Episodes
from cswm_lib.errors import CswmError

FINGERPRINT_VERSION = 2


class ContentHash:
    """sha256 of an episode set, fed episodes in order: ``h.update(frames, actions, ids)`` per block of
    episodes, then ``h.hexdigest()``. The same data in any block sizes gives the same hash."""

    def __init__(self, shape: tuple[int, ...], with_ids: bool) -> None:
        self.parts = [hashlib.sha256() for _ in range(3 if with_ids else 2)]
        self.header = f"cswm-content-v2 frames {list(shape)} ids {with_ids}".encode()

    def update(self, frames: np.ndarray, actions: np.ndarray, state_ids: np.ndarray | None = None) -> None:
        self.parts[0].update(np.ascontiguousarray(frames, dtype=np.uint8).data)
        self.parts[1].update(np.ascontiguousarray(actions, dtype=np.int64).data)
        if len(self.parts) == 3:
            self.parts[2].update(np.ascontiguousarray(state_ids, dtype=np.int64).data)

    def hexdigest(self) -> str:
        h = hashlib.sha256(self.header)
        for p in self.parts:
            h.update(p.digest())
        return h.hexdigest()


def content_hash(episodes: Episodes, block: int = 64) -> str:
    """The content hash of ``episodes`` (cached on the object by :func:`check_content`)."""
    cached = getattr(episodes, "_content_sha256", None)
    if cached is not None:
        return cached
    e = episodes
    h = ContentHash(e.frames.shape, e.state_ids is not None)
    for i in range(0, e.num_episodes, block):  # blocks: a lazily read file is never read whole
        ids = None if e.state_ids is None else e.state_ids[i:i + block]
        h.update(e.frames[i:i + block], e.actions[i:i + block], ids)
    return h.hexdigest()


def check_content(episodes: Episodes, stored: Any = None) -> str:
    """Hash ``episodes`` once (kept on the object) and compare with the hash the file ``stored``."""
    digest = content_hash(episodes)
    if stored is not None and stored != digest:
        raise CswmError(f"its content does not match the hash written when it was made (content_sha256 "
                        f"{str(stored)[:12]}..., now {digest[:12]}...): the file was changed or damaged")
    episodes._content_sha256 = digest  # type: ignore[attr-defined]
    return digest


def _fingerprint_v1(episodes: Episodes) -> dict:
    h = hashlib.sha256(np.ascontiguousarray(episodes.actions).tobytes())
    h.update(np.ascontiguousarray(episodes.frames[:, [0, -1]]).tobytes())
    keep = ("env_id", "seed", "num_episodes", "episode_length", "source")
    return {"shape": list(episodes.frames.shape), "sha256": h.hexdigest()[:16],
            **{k: str(episodes.attrs[k]) for k in keep if k in episodes.attrs}}


def data_fingerprint(episodes: Episodes, like: dict | None = None) -> dict:
    """What identifies ``episodes`` whatever its path (see the module docstring); with ``like`` (a
    fingerprint a run saved earlier) of the same version as ``like``, so old runs still resume."""
    if isinstance(like, dict) and "version" not in like:
        return _fingerprint_v1(episodes)
    return {"version": FINGERPRINT_VERSION, "shape": list(episodes.frames.shape),
            "sha256": content_hash(episodes)}
