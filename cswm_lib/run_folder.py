"""What a training run's folder holds and how :func:`cswm_lib.train.train` reads and guards it.

* :func:`run_lock` -- one run per folder: an exclusive OS lock (``fcntl.flock``) on ``train.lock``,
  held while the run trains and released by the OS when the process ends, however it ends.
* :func:`read_state` -- the resume state ``state.pt``, validated in one place: its schema (keys
  and types, :func:`cswm_lib.checkpoint.load_training_state`), the values the loop reads, the
  weights' and optimizer moments' shapes against the model being built, the config and the dataset
  it was trained with. Every failure is one line naming the file and the field.
* :func:`save_tensors` -- atomic writes of ``*.pt`` (``*.jsonl``: :func:`cswm_lib.jsonl.rewrite_jsonl`).
* :class:`Run` -- a run in progress and every file it writes: the epoch log with ``model.pt`` (the
  lowest training loss) and ``last.pt``, curve points (and the point of the selected weights at
  the end), ``state.pt``; its running totals are a :class:`Meter`.
"""

from __future__ import annotations

import copy
import errno
import fcntl
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

import torch

from cswm_lib import checks, vocabulary
from cswm_lib.checkpoint import check_weights, load_training_state
from cswm_lib.curves import curve_scores
from cswm_lib.data.episodes import Episodes
from cswm_lib.data.fingerprint import data_fingerprint
from cswm_lib.errors import CswmError
from cswm_lib.jsonl import rewrite_jsonl
from cswm_lib.model import CSWM
from cswm_lib.utils import atomic_path, load_tensors, write_json


class RunConfig(Protocol):
    """What a run folder needs of its :class:`cswm_lib.train.TrainConfig` (no import of the
    training module: it imports this one)."""

    name: str

    def to_dict(self) -> dict[str, Any]: ...

LOCK = "train.lock"
#: TrainConfig fields that may differ between an interrupted run and its resumption
RESUMABLE = {"epochs", "num_updates", "device", "progress", "save_folder", "dataset", "eval_dataset"}


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


def _describe(fp: dict) -> str:
    name = fp.get("env_id") or fp.get("source") or "data"
    seed = f", seed {fp['seed']}" if "seed" in fp else ""
    return f"{name}, frames {fp.get('shape')}{seed}, content {str(fp.get('sha256'))[:16]}"


def config_mismatch(old: dict, new: dict) -> str | None:
    """The first setting (not in :data:`RESUMABLE`) in which two runs' configs differ, as a phrase."""
    old = {vocabulary.FIELDS.get(k, k): v for k, v in old.items()}  # states of before the renames
    for k in sorted(set(old) | set(new)):
        if k not in RESUMABLE and old.get(k) != new.get(k):
            return f"{k}: {old.get(k)!r} there vs {new.get(k)!r} now"
    return None


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


def read_state(path: Path, config: dict, episodes: Episodes, model: torch.nn.Module,
               optimizer: torch.optim.Optimizer, batches_per_epoch: int) -> dict | None:
    """The state of the run saved at ``path`` (``None`` when there is none), checked and loaded into
    ``model`` and ``optimizer``: the file's schema (:func:`cswm_lib.checkpoint.load_training_state`),
    the config and dataset it was trained with, the values the loop reads, the weights' and the
    optimizer moments' shapes. ``updates`` is filled in for states that predate it."""
    if not path.exists():
        return None
    state = load_training_state(path)
    why = config_mismatch(state["config"], config)
    if why:
        raise CswmError(f"{path.parent} holds a run with another config ({why}); use another --name or "
                        "delete it")
    if "data" in state and data_fingerprint(episodes, like=state["data"]) != state["data"]:
        raise CswmError(f"{path.parent} was trained on another dataset ({_describe(state['data'])}) than "
                        f"{config['dataset']} ({_describe(data_fingerprint(episodes))}); use another --name "
                        "to train on it")
    state["updates"] = state.get("updates", state["epoch"] * batches_per_epoch)
    state["best_loss"] = checks.real(state["best_loss"], f"{path}: best_loss", finite=False)
    if not all(isinstance(r, dict) for r in state.get("curve", [])):
        raise CswmError(f"{path}: 'curve' must hold one dict per point; delete it or use another --name")
    state["meter"] = Meter.from_state(state.get("meter", state.get("acc")), f"{path}: meter")
    if "selected" in state:
        sel = state["selected"]
        checks.integer(sel.get("updates"), f"{path}: selected.updates", 0, state["updates"])
        if sel.get("loss") is not None:
            checks.real(sel["loss"], f"{path}: selected.loss")
    check_weights(state["model"], model, f"{path} (model)")
    model.load_state_dict(state["model"])
    _check_optimizer(state["optimizer"], optimizer, f"{path} (optimizer)")
    return state


def save_tensors(obj: object, path: Path) -> None:
    """``torch.save`` atomically (a kill never leaves a half-written file under ``path``)."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


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
    def from_state(cls, d: dict | None, where: str = "meter") -> Meter:
        """From ``state.pt``: the ``meter`` dict, or the positional ``acc`` of states before it."""
        if d is None:
            return cls()
        try:
            if "epoch" in d:  # {"epoch": [loss, pos, neg, n], "point": [loss, n], "seconds", "train_seconds"}
                (loss, pos, neg, n), (pl, pn) = d["epoch"], d["point"]
                d = dict(loss=loss, pos=pos, neg=neg, transitions=n, seconds=d["seconds"], point_loss=pl,
                         point_updates=pn, train_seconds=d["train_seconds"])
            meter = cls(**d)
        except (TypeError, ValueError, KeyError) as err:
            raise CswmError(f"{where} is not a set of running totals ({type(err).__name__}); delete it or "
                            "use another --name") from None
        for f in fields(meter):
            kind = checks.integer if f.type == "int" else checks.real
            setattr(meter, f.name, kind(getattr(meter, f.name), f"{where}: {f.name}", 0))
        return meter

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

    config: RunConfig
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

    def resume(self, episodes: Episodes) -> None:
        """Continue from ``state.pt`` (validated by :func:`read_state`), if there is one."""
        s = read_state(self.folder / "state.pt", self.config.to_dict(), episodes, self.model, self.opt,
                       self.batches_per_epoch)
        if s is None:
            return
        self.done = self.saved = s["updates"]
        self.best, self.log, self.curve = s["best_loss"], s["log"], s.get("curve", [])
        self.meter = s["meter"]
        self.selected = s.get("selected") or self._selected_from_log()

    def _selected_from_log(self) -> dict:
        """What model.pt holds, for states written before ``selected``: the last epoch marked best."""
        best = [r for r in self.log if r.get("best")]
        if not best:
            return {"updates": 0, "loss": None}
        r = best[-1]
        updates = r.get("updates", r.get("epoch", 0) * self.batches_per_epoch)
        return {"updates": updates, "loss": r.get("loss")}

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
        rewrite_jsonl(self.folder / "curve.jsonl", self.curve)

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
            check_weights(weights, chosen, path)
            chosen.load_state_dict(weights)
            records = curve_scores(chosen, curve_set)
        point = {"updates": u, "epoch": round(u / self.batches_per_epoch, 4), "loss": self.selected["loss"],
                 "weights": "selected", "records": records}
        rewrite_jsonl(self.folder / "curve.jsonl", [*self.curve, point])

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
        rewrite_jsonl(self.folder / "log.jsonl", self.log + ([] if complete else [row]))
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
