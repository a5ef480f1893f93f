"""The in-memory form of every dataset in the book: equal-length episodes of uint8 frames.

All datasets of the paper (random-policy block pushing and Atari, A3C-policy Atari) consist of
episodes of one fixed length ``T`` (100 or 10 transitions). We keep each episode's ``T + 1`` frames
once -- ``frames[e, t]`` is the observation before action ``t`` and ``frames[e, t + 1]`` the one
after it -- instead of storing ``obs`` and ``next_obs`` separately as the original code did.
Training, negative sampling and evaluation index these arrays with whole-batch tensor ops.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from cswm_lib.errors import CswmError

# the attrs that Episodes.summary() shows
SUMMARY_ATTRS = ("env_id", "seed", "shape_rule")


@dataclass
class Episodes:
    """Equal-length episodes.

    Attributes:
        frames: uint8 ``[E, T+1, C, H, W]`` observations (C = 3 for block pushing, 6 for Atari:
            two stacked RGB frames).
        actions: int64 ``[E, T]`` action taken after ``frames[:, t]``.
        state_ids: int64 ``[E, T+1, S]`` ground-truth identity of every frame (object positions,
            S = 10, or Atari RAM, S = 128), or ``None`` when the file has none.
        attrs: free-form metadata (``env_id``, ``seed``, ``num_actions``, ...).
        original_order: int64 ``[E]`` or ``None``: the episodes in the order the original scripts
            read this file. They list an original-layout file's groups as h5py does, by name:
            "0", "1", "10", "100", "101", ..., so ``original_order[i]`` is the index (in our numeric
            order) of the i-th episode they saw. Order-dependent published scores (batches of 100,
            the dropped last batch, running-mean averaging) follow it; ``None`` for files in our
            format, where both orders are the same.
    """

    frames: np.ndarray
    actions: np.ndarray
    state_ids: np.ndarray | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    original_order: np.ndarray | None = None

    def __post_init__(self) -> None:
        f, a, s = self.frames, self.actions, self.state_ids
        if f.dtype != np.uint8 or f.ndim != 5:
            raise CswmError(f"frames must be uint8 [E, T+1, C, H, W], got {f.dtype} {list(f.shape)}")
        if a.ndim != 2 or a.shape[0] != f.shape[0] or a.shape[1] + 1 != f.shape[1]:
            raise CswmError(
                f"actions {list(a.shape)} do not match frames {list(f.shape)}: expected [E, T] "
                "with T + 1 frames per episode"
            )
        self.actions = whole_actions(a)
        if s is not None:
            if s.ndim != 3 or s.shape[:2] != f.shape[:2]:
                raise CswmError(
                    f"state_ids {list(s.shape)} do not match frames {list(f.shape)}: expected [E, T+1, S]"
                )
            from cswm_lib.data.schema import whole_ids

            self.state_ids = whole_ids(s)
        if self.original_order is not None:
            o = np.asarray(self.original_order, dtype=np.int64)
            if o.shape != (f.shape[0],) or not np.array_equal(np.sort(o), np.arange(f.shape[0])):
                raise CswmError(f"original_order must be a permutation of the {f.shape[0]} episode indices")
            self.original_order = o

    @property
    def num_episodes(self) -> int:
        return self.frames.shape[0]

    @property
    def episode_length(self) -> int:
        """Number of transitions ``T`` per episode."""
        return self.actions.shape[1]

    @property
    def num_transitions(self) -> int:
        return self.num_episodes * self.episode_length

    @property
    def obs_shape(self) -> tuple[int, int, int]:
        return tuple(self.frames.shape[2:])  # type: ignore[return-value]

    def __repr__(self) -> str:
        """One short line: sizes and the environment, never the full ``attrs``."""
        env = f"{self.attrs['env_id']}: " if "env_id" in self.attrs else ""
        ids = "" if self.state_ids is None else f", state_ids=[{self.state_ids.shape[-1]}]"
        return (
            f"Episodes({env}E={self.num_episodes}, T={self.episode_length}, "
            f"obs={list(self.obs_shape)}{ids})"
        )

    def summary(self) -> Summary:
        """A two-column table (property, value) that notebooks render as a table.

        Of ``attrs`` only the environment, seed and pixel rule are listed (paths, arrays and
        bookkeeping are left out), so the table stays under a dozen rows.
        """
        rows = [
            ("episodes E", f"{self.num_episodes:,}"),
            ("transitions per episode T", str(self.episode_length)),
            ("transitions", f"{self.num_transitions:,}"),
            ("observation [C, H, W]", str(list(self.obs_shape))),
            ("frames (uint8)", f"{self.frames.nbytes / 2**20:.1f} MiB"),
            ("state ids", "none" if self.state_ids is None else f"{self.state_ids.shape[-1]} per frame"),
        ]
        for key, value in self.attrs.items():
            if key not in SUMMARY_ATTRS:
                continue
            if isinstance(value, np.generic):
                value = value.item()
            text = str(value)
            if isinstance(value, bool | int | float | str) and len(text) <= 40 and "/" not in text:
                rows.append((key, text))
        return Summary(rows)


@dataclass(frozen=True)
class Summary:
    """Rows of ``(property, value)``; shown as a markdown table in a notebook, as text elsewhere."""

    rows: list[tuple[str, str]]

    def _repr_markdown_(self) -> str:
        from cswm_lib.tables import format_table

        return format_table([{"property": k, "value": v} for k, v in self.rows])

    def __str__(self) -> str:
        width = max(len(k) for k, _ in self.rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in self.rows)

    __repr__ = __str__


def whole_actions(a: np.ndarray, where: str = "actions") -> np.ndarray:
    """``a`` as int64; float actions are accepted only when they hold whole numbers (never truncated)."""
    from cswm_lib.data.schema import whole_numbers

    return whole_numbers(a, f"{where}: actions")


def to_float(frames: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 frames -> float32 in [0, 1] (the scale the original code fed its models)."""
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(frames)
    return frames.float().div_(255.0)
