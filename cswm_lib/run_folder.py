"""What a training run's folder holds and how :func:`cswm_lib.train.train` reads and guards it.

* :func:`run_lock` -- one run per folder: an exclusive OS lock (``fcntl.flock``) on ``train.lock``,
  held while the run trains and released by the OS when the process ends, however it ends.
* :func:`read_state` -- the resume state ``state.pt``, validated in one place: its keys, the type
  and range of every value it holds, the weights' and optimizer moments' shapes against the model
  being built, the config and the dataset it was trained with. Every failure is one line naming
  the file and the field.
* :func:`data_fingerprint` -- what identifies a dataset whatever its path.
* :func:`save_tensors`, :func:`write_lines` -- atomic writes of ``*.pt`` and ``*.jsonl``.
* :class:`Run` -- a run in progress and every file it writes: the epoch log with ``model.pt`` (the
  lowest training loss) and ``last.pt``, curve points (and the point of the selected weights at
  the end), ``state.pt``; its running totals are a :class:`Meter`.
"""

from __future__ import annotations

import copy
import errno
import fcntl
import hashlib
import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from cswm_lib import CswmError, checks
from cswm_lib.curves import curve_scores
from cswm_lib.data.episodes import Episodes
from cswm_lib.model import CSWM
from cswm_lib.utils import atomic_path, load_tensors, write_json

if TYPE_CHECKING:
    from cswm_lib.train import TrainConfig

LOCK = "train.lock"
#: keys every state.pt of this library holds (later versions add updates, curve, meter, data, selected)
STATE_KEYS = ("model", "optimizer", "epoch", "best_loss", "log", "config")
#: TrainConfig fields that may differ between an interrupted run and its resumption
RESUMABLE = {"epochs", "num_updates", "device", "progress", "save_folder", "dataset", "eval_dataset"}
#: field names of states written before the rename of issue 21 (old -> new)
_RENAMED = {"negatives": "strategy"}


@contextmanager
def run_lock(folder: Path) -> Iterator[None]:
    """Hold the exclusive lock of run folder ``folder`` (made if missing) for the block.

    A second holder -- another process, or another ``train`` call in this one -- is refused in one
    line naming the holder's pid. The OS drops the lock when its process ends, even on SIGKILL, so
    a crashed run never leaves a stale lock; the file itself (the pid of the last holder) stays.
    """
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise CswmError(f"{folder} is in use by another training run (pid {holder}); wait for it to "
                            "end, or give this run another --name") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def data_fingerprint(episodes: Episodes) -> dict:
    """What identifies a dataset whatever its path: shapes, generation attributes and a content hash
    (of every action and of the first and last frame of every episode)."""
    h = hashlib.sha256(np.ascontiguousarray(episodes.actions).tobytes())
    h.update(np.ascontiguousarray(episodes.frames[:, [0, -1]]).tobytes())
    keep = ("env_id", "seed", "num_episodes", "episode_length", "source")
    return {"shape": list(episodes.frames.shape), "sha256": h.hexdigest()[:16],
            **{k: str(episodes.attrs[k]) for k in keep if k in episodes.attrs}}


def _describe(fp: dict) -> str:
    name = fp.get("env_id") or fp.get("source") or "data"
    return f"{name}, frames {fp.get('shape')}, seed {fp.get('seed', '?')}, content {fp.get('sha256')}"


def config_mismatch(old: dict, new: dict) -> str | None:
    """The first setting (not in :data:`RESUMABLE`) in which two runs' configs differ, as a phrase."""
    old = {_RENAMED.get(k, k): v for k, v in old.items()}
    for k in sorted(set(old) | set(new)):
        if k not in RESUMABLE and old.get(k) != new.get(k):
            return f"{k}: {old.get(k)!r} there vs {new.get(k)!r} now"
    return None


def check_weights(weights: Any, model: torch.nn.Module, where: str) -> dict[str, torch.Tensor]:
    """``weights`` must be a state dict with exactly ``model``'s keys, shapes and dtypes."""
    if not isinstance(weights, dict):
        raise CswmError(f"{where} holds a {type(weights).__name__}, not a C-SWM state dict")
    mine = model.state_dict()
    missing, extra = sorted(set(mine) - set(weights)), sorted(set(weights) - set(mine), key=str)
    if missing or extra:
        raise CswmError(f"{where} does not fit this model: missing {missing[:3]}, unexpected {extra[:3]}")
    for k, v in weights.items():
        if not isinstance(v, torch.Tensor) or v.shape != mine[k].shape or v.dtype != mine[k].dtype:
            got = f"shape {list(v.shape)} {v.dtype}" if isinstance(v, torch.Tensor) else type(v).__name__
            raise CswmError(f"{where}: {k} is {got} but this model needs shape {list(mine[k].shape)} "
                            f"{mine[k].dtype}")
    return weights


def _check_optimizer(state: Any, optimizer: torch.optim.Optimizer, where: str) -> None:
    params = [p for g in optimizer.param_groups for p in g["params"]]
    if not isinstance(state, dict) or not isinstance(state.get("state"), dict) \
            or not isinstance(state.get("param_groups"), list):
        raise CswmError(f"{where} is not an optimizer state dict")
    for i, moments in state["state"].items():
        if not isinstance(i, int) or not 0 <= i < len(params) or not isinstance(moments, dict):
            raise CswmError(f"{where}: entry {i!r} names no parameter of this model")
        for k, v in moments.items():
            if k != "step" and (not isinstance(v, torch.Tensor) or v.shape != params[i].shape):
                raise CswmError(f"{where}: {k} of parameter {i} does not have the parameter's shape "
                                f"{list(params[i].shape)}")
    try:
        optimizer.load_state_dict(state)
    except (ValueError, KeyError, TypeError, RuntimeError) as err:
        raise CswmError(f"{where} does not fit this model's optimizer ({str(err).splitlines()[0]})") from None


def read_state(path: Path, config: dict, fingerprint: dict, model: torch.nn.Module,
               optimizer: torch.optim.Optimizer, batches_per_epoch: int) -> dict | None:
    """The validated state of the run saved at ``path`` (``None`` when there is none), loaded into
    ``model`` and ``optimizer``. ``updates`` is filled in for states that predate it."""
    if not path.exists():
        return None
    state = load_tensors(path, "training state (state.pt)")
    if not (isinstance(state, dict) and set(STATE_KEYS) <= set(state) and isinstance(state["config"], dict)):
        raise CswmError(f"{path} is not a training state of this library (expected the keys "
                        f"{sorted(STATE_KEYS)}); delete it or use another --name")
    why = config_mismatch(state["config"], config)
    if why:
        raise CswmError(f"{path.parent} holds a run with another config ({why}); use another --name or "
                        "delete it")
    if state.get("data", fingerprint) != fingerprint:
        raise CswmError(f"{path.parent} was trained on another dataset ({_describe(state['data'])}) than "
                        f"{config['dataset']} ({_describe(fingerprint)}); use another --name to train on it")
    epoch = checks.integer(state["epoch"], f"{path}: epoch", 0)
    state["updates"] = checks.integer(state.get("updates", epoch * batches_per_epoch), f"{path}: updates", 0)
    state["best_loss"] = checks.real(state["best_loss"], f"{path}: best_loss", finite=False)
    for k in ("log", "curve"):
        if not isinstance(state.get(k, []), list) or not all(isinstance(r, dict) for r in state.get(k, [])):
            raise CswmError(f"{path}: {k} must be a list of rows, got {type(state[k]).__name__}")
    for k in ("meter", "acc", "selected"):
        if not isinstance(state.get(k, {}), dict):
            raise CswmError(f"{path}: {k} must be a dict, got {type(state[k]).__name__}")
    model.load_state_dict(check_weights(state["model"], model, f"{path}: model"))
    _check_optimizer(state["optimizer"], optimizer, f"{path}: optimizer")
    return state


def save_tensors(obj: object, path: Path) -> None:
    """``torch.save`` atomically (a kill never leaves a half-written file under ``path``)."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def write_lines(path: Path, rows: list[dict]) -> None:
    """Rows as JSON lines, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))


@dataclass
class Meter:
    """Running totals of the training loss: the epoch's (sums over transitions, for its log line) and
    the curve point's (batch-mean losses since the last point), and wall-clock seconds."""

    loss: float = 0.0
    pos: float = 0.0
    neg: float = 0.0
    transitions: int = 0
    seconds: float = 0.0  # of this epoch
    point_loss: float = 0.0
    point_updates: int = 0
    train_seconds: float = 0.0  # of the whole run, evaluation excluded

    @classmethod
    def from_state(cls, d: dict | None) -> Meter:
        """From ``state.pt``: the ``meter`` dict, or the positional ``acc`` of states before it."""
        if d is None:
            return cls()
        if "epoch" in d:  # {"epoch": [loss, pos, neg, n], "point": [loss, n], "seconds", "train_seconds"}
            (loss, pos, neg, n), (pl, pn) = d["epoch"], d["point"]
            return cls(loss, pos, neg, n, d["seconds"], pl, pn, d["train_seconds"])
        return cls(**d)

    def add(self, terms: list[float], transitions: int, seconds: float) -> None:
        """One update: ``terms`` = batch means of (loss, pos, neg) over ``transitions`` transitions."""
        self.loss += terms[0] * transitions
        self.pos += terms[1] * transitions
        self.neg += terms[2] * transitions
        self.transitions += transitions
        self.point_loss += terms[0]
        self.point_updates += 1
        self.seconds += seconds
        self.train_seconds += seconds

    def epoch_means(self) -> tuple[float, float, float]:
        """Mean (loss, pos, neg) over the epoch's transitions so far."""
        n = self.transitions
        return self.loss / n, self.pos / n, self.neg / n

    def point_mean(self) -> float | None:
        """Mean batch loss since the last curve point (None when no update was made since)."""
        return self.point_loss / self.point_updates if self.point_updates else None


@dataclass
class Run:
    """A run in progress: its model, optimizer, folder and progress; every file it writes."""

    config: TrainConfig
    folder: Path
    model: CSWM
    opt: torch.optim.Optimizer
    batches_per_epoch: int
    fingerprint: dict
    done: int = 0  # optimizer updates made
    best: float = math.inf  # lowest mean loss of a completed epoch
    log: list[dict] = field(default_factory=list)  # one row per completed epoch
    curve: list[dict] = field(default_factory=list)  # the curve points so far
    meter: Meter = field(default_factory=Meter)
    selected: dict = field(default_factory=lambda: {"updates": 0, "loss": None})  # what model.pt holds
    saved: int = 0  # updates of the last state.pt

    def resume(self) -> None:
        """Continue from ``state.pt`` (validated by :func:`run_folder.read_state`), if there is one."""
        s = read_state(self.folder / "state.pt", self.config.to_dict(), self.fingerprint, self.model,
                       self.opt, self.batches_per_epoch)
        if s is None:
            return
        self.done = self.saved = s["updates"]
        self.best, self.log, self.curve = s["best_loss"], s["log"], s.get("curve", [])
        self.meter = Meter.from_state(s.get("meter", s.get("acc")))
        best = [r for r in self.log if r.get("best")]
        self.selected = s.get("selected") or {"updates": best[-1]["updates"] if best else 0,
                                               "loss": best[-1]["loss"] if best else None}

    def write_config(self, episodes: Episodes) -> None:
        """``config.json``: the settings, the model (with its input shape) and the data's facts."""
        write_json(self.folder / "config.json", {
            "train": self.config.to_dict(),
            "model": self.model.config.to_dict(),
            "format": "cswm-book",
            "data": {"num_episodes": episodes.num_episodes, "episode_length": episodes.episode_length,
                     "obs_shape": list(episodes.obs_shape),
                     "attrs": {k: str(v) for k, v in episodes.attrs.items()}},
        })

    def weights(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu() for k, v in self.model.state_dict().items()}

    def stop_if_not_finite(self, loss: float | None = None) -> None:
        """Stop when ``loss`` (or, without it, a weight: checked before each save) is not finite; one
        line, and the run's files keep the last good state."""
        if loss is None and all(torch.isfinite(p).all() for p in self.model.parameters()):
            return
        if loss is not None and math.isfinite(loss):
            return
        what = "the weights are no longer finite" if loss is None else f"the training loss is {loss}"
        raise CswmError(f"{what} at update {self.done} of {self.config.name}: training stopped; "
                        f"{self.folder} keeps the state of update {self.saved}; lower --learning-rate or "
                        "check the data")

    def curve_point(self, curve_set: Episodes, weights: str = "last") -> None:
        """Score the model on the fixed eval subset; append the point and rewrite ``curve.jsonl``."""
        self.curve.append({
            "updates": self.done, "epoch": round(self.done / self.batches_per_epoch, 4),
            "loss": self.meter.point_mean(), "train_seconds": round(self.meter.train_seconds, 3),
            "records": curve_scores(self.model, curve_set),
        })
        self.meter.point_loss, self.meter.point_updates = 0.0, 0
        write_lines(self.folder / "curve.jsonl", self.curve)

    def selected_point(self, curve_set: Episodes) -> None:
        """At the end: one more curve point, of the weights in ``model.pt`` (the published selection),
        marked ``"weights": "selected"``; the last ordinary point is the last weights'."""
        u = self.selected["updates"]
        if u == self.done:  # model.pt holds the last weights: the same scores
            records = self.curve[-1]["records"]
        else:
            chosen = copy.deepcopy(self.model)
            path = self.folder / "model.pt"
            weights = load_tensors(path, "model checkpoint (model.pt)")
            chosen.load_state_dict(check_weights(weights, chosen, str(path)))
            records = curve_scores(chosen, curve_set)
        point = {"updates": u, "epoch": round(u / self.batches_per_epoch, 4), "loss": self.selected["loss"],
                 "weights": "selected", "records": records}
        write_lines(self.folder / "curve.jsonl", [*self.curve, point])

    def end_epoch(self, epoch: int, complete: bool) -> tuple[float, float, float]:
        """The epoch's log line (a partial last epoch is written but stays open for a longer budget),
        ``model.pt`` when its loss is the lowest so far, and ``last.pt``."""
        loss, pos, neg = self.meter.epoch_means()
        row = {"epoch": epoch + 1, "updates": self.done, "loss": loss, "pos": pos, "neg": neg,
               "seconds": round(self.meter.seconds, 3), "best": loss < self.best}
        if complete:
            self.log.append(row)
            self.meter.loss = self.meter.pos = self.meter.neg = self.meter.seconds = 0.0
            self.meter.transitions = 0
        if loss < self.best:
            save_tensors(self.weights(), self.folder / "model.pt")
            self.selected = {"updates": self.done, "loss": loss}
            self.best = loss if complete else self.best
        save_tensors(self.weights(), self.folder / "last.pt")
        write_lines(self.folder / "log.jsonl", self.log + ([] if complete else [row]))
        return loss, pos, neg

    def checkpoint(self) -> None:
        """``state.pt``: everything a resumed run needs to continue bit-identically."""
        save_tensors({
            "model": self.weights(), "optimizer": self.opt.state_dict(),
            "epoch": self.done // self.batches_per_epoch, "updates": self.done, "best_loss": self.best,
            "log": self.log, "curve": self.curve, "meter": asdict(self.meter), "selected": self.selected,
            "config": self.config.to_dict(), "data": self.fingerprint,
        }, self.folder / "state.pt")
        self.saved = self.done
