"""Train a C-SWM with any negative-sampling strategy: ``train(TrainConfig(...))`` or the original CLI::

    python -m cswm_lib.train --dataset data/shapes_train.h5 --encoder small --name shapes
    python -m cswm_lib.train --dataset data/pong_train.h5 --encoder medium --embedding-dim 4 \\
        --action-dim 6 --num-objects 3 --copy-action --custom-neg --in-ep-prob 0.0   # time-aligned

Writes ``<save_folder>/<name>/``::

  config.json      the full TrainConfig + ModelConfig + dataset facts
  model.pt         state dict of the epoch with the LOWEST mean training loss (the original's rule;
                   there is no validation set) -- "the" model that ``checkpoint.load_model`` reads
  last.pt          state dict at the end of the run (after the last completed epoch while it runs)
  log.jsonl        one line per epoch: epoch, updates, loss, pos, neg, seconds, best (a budget that
                   ends inside an epoch logs that partial epoch last)
  curve.jsonl      with --eval-every N: the learning curve, one line per N updates
                   (:mod:`cswm_lib.curves`)
  state.pt         model + optimizer + progress, written atomically after every epoch and curve point

The budget is ``--num-updates`` optimizer updates when given, else ``--epochs`` passes over the data.
Re-running the same command RESUMES from ``state.pt`` and ends with bit-identical weights and curve
to an uninterrupted run: the shuffling/negative RNG is re-seeded from (seed, epoch) at every epoch
and replayed up to the last saved update. A finished run is returned as is (raise ``epochs`` or
``num_updates`` to train on).
"""

from __future__ import annotations

import argparse
import json
import math
import numbers
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from cswm_lib import CswmError
from cswm_lib.curves import curve_scores, eval_subset
from cswm_lib.data.episodes import Episodes
from cswm_lib.data.loaders import TransitionBatches
from cswm_lib.model import CSWM, MODEL_KEYS, ModelConfig, check_compatible
from cswm_lib.negatives import STRATEGIES, sample_negatives, strategy_from_flags
from cswm_lib.utils import (
    ArgumentParser,
    atomic_path,
    checkpoints_dir,
    cli_errors,
    get_device,
    load_tensors,
    write_json,
)


@dataclass
class TrainConfig:
    """A training run. Defaults are the original ``train.py``'s."""

    dataset: str = "data/shapes_train.h5"
    name: str | None = None  # default: <dataset stem>_<negatives>_s<seed>
    save_folder: str | None = None  # default: cswm_lib.utils.checkpoints_dir()
    encoder: str = "small"
    embedding_dim: int = 2
    hidden_dim: int = 512
    action_dim: int = 4
    num_objects: int = 5
    sigma: float = 0.5
    hinge: float = 1.0
    copy_action: bool = False
    ignore_action: bool = False
    epochs: int = 100
    num_updates: int | None = None  # budget in optimizer updates (wins over epochs); None: epochs x batches
    batch_size: int = 1024
    learning_rate: float = 5e-4
    negatives: str = "baseline"
    beta: float = 0.5  # probability of an episodic negative ("mixed"); the fork's --in-ep-prob
    time_aligned: bool = True  # out-of-episode negatives of "mixed" keep step t (fork default)
    num_negatives: int = 1
    gamma: float = 1.0  # weight of the negative term (fork's --gamma)
    seed: int = 42
    eval_dataset: str | None = None  # learning curve: eval episodes scored every eval_every updates
    eval_every: int = 0  # updates between curve points (0: no curve)
    eval_episodes: int = 1000  # the fixed eval subset: the first eval_episodes episodes
    device: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if self.negatives not in STRATEGIES:
            raise CswmError(
                f"unknown --negatives {self.negatives!r}: expected one of {', '.join(STRATEGIES)}"
            )
        if self.copy_action and self.ignore_action:
            raise CswmError("--copy-action and --ignore-action exclude each other")
        for k in ("learning_rate", "beta", "gamma"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
                raise CswmError(f"--{k.replace('_', '-')} must be a finite number, got {v!r}")
        if self.learning_rate <= 0:
            raise CswmError(f"--learning-rate must be > 0, got {self.learning_rate}")
        if self.gamma < 0:
            raise CswmError(f"--gamma weighs the negative term, so it must be >= 0; got {self.gamma}")
        if not 0 <= self.beta <= 1:
            raise CswmError(f"--beta (--in-ep-prob) is a probability, so in [0, 1]; got {self.beta}")
        for k in ("epochs", "batch_size", "num_negatives", "hidden_dim", "seed"):
            if isinstance(getattr(self, k), bool) or not isinstance(getattr(self, k), numbers.Integral):
                raise CswmError(f"--{k.replace('_', '-')} must be a whole number, got {getattr(self, k)!r}")
        for k in ("epochs", "batch_size", "num_negatives", "hidden_dim"):
            if getattr(self, k) < 1:
                raise CswmError(f"--{k.replace('_', '-')} must be >= 1, got {getattr(self, k)}")
        if self.num_updates is not None and self.num_updates < 1:
            raise CswmError(f"--num-updates must be >= 1, got {self.num_updates}")
        if self.eval_every < 0 or self.eval_episodes < 1:
            raise CswmError(
                f"--eval-every must be >= 0 and --eval-episodes >= 1, got {self.eval_every} and "
                f"{self.eval_episodes}"
            )
        if self.num_updates is not None and self.eval_every > self.num_updates:
            raise CswmError(
                f"--eval-every {self.eval_every} is larger than the run (--num-updates {self.num_updates})"
            )
        if self.name is None:
            self.name = f"{Path(self.dataset).stem}_{self.negatives}_s{self.seed}"
        name = Path(str(self.name))
        if not str(self.name).strip() or name.is_absolute() or ".." in name.parts or name == Path("."):
            raise CswmError(f"--name must name a folder inside --save-folder, got {self.name!r}")

    def model_config(self, input_shape: tuple[int, int, int]) -> ModelConfig:
        return ModelConfig(input_shape=input_shape, **{k: getattr(self, k) for k in MODEL_KEYS})

    def folder(self) -> Path:
        """``<save_folder>/<name>``; a one-line error if a file stands where a folder must go."""
        folder = Path(self.save_folder or checkpoints_dir()) / str(self.name)
        for p in (folder, *folder.parents):
            if p.exists() and not p.is_dir():
                raise CswmError(f"cannot make the run folder {folder}: {p} is a file, not a folder")
            if p.is_dir():
                break
        return folder


#: fields that may differ between an interrupted run and its resumption
_RESUMABLE = {"epochs", "num_updates", "device", "progress", "save_folder", "dataset", "eval_dataset"}


def load_dataset(path: str | Path) -> Episodes:
    path = Path(path)
    if path.is_dir():
        raise CswmError(f"dataset {path} is a folder, not an HDF5 file")
    if not path.is_file():
        raise CswmError(f"dataset not found: {path}")
    from cswm_lib.data.hdf5 import load_episodes

    return load_episodes(path)


def _config_mismatch(old: dict, new: dict) -> str | None:
    for k in sorted(set(old) | set(new)):
        if k not in _RESUMABLE and old.get(k) != new.get(k):
            return f"{k}: {old.get(k)!r} there vs {new.get(k)!r} now"
    return None


def data_fingerprint(episodes: Episodes) -> dict:
    """What identifies a dataset whatever its path: shapes, generation attributes and a content hash
    (of every action and of the first and last frame of every episode)."""
    import hashlib

    h = hashlib.sha256(np.ascontiguousarray(episodes.actions).tobytes())
    h.update(np.ascontiguousarray(episodes.frames[:, [0, -1]]).tobytes())
    keep = ("env_id", "seed", "num_episodes", "episode_length", "source")
    return {"shape": list(episodes.frames.shape), "sha256": h.hexdigest()[:16],
            **{k: str(episodes.attrs[k]) for k in keep if k in episodes.attrs}}


def _describe(fp: dict) -> str:
    name = fp.get("env_id") or fp.get("source") or "data"
    return f"{name}, frames {fp.get('shape')}, seed {fp.get('seed', '?')}, content {fp.get('sha256')}"


def _load_state(path: Path) -> dict:
    """``state.pt`` of an interrupted run, read safely (tensors and plain values only)."""
    state = load_tensors(path, "training state (state.pt)")
    keys = {"model", "optimizer", "epoch", "best_loss", "log", "config"}
    if not isinstance(state, dict) or not keys <= set(state) or not isinstance(state["config"], dict):
        raise CswmError(f"{path} is not a training state of this library (expected the keys {sorted(keys)}); "
                        "delete it or use another --name")
    return state


def _save(obj: object, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def total_updates(config: TrainConfig, num_transitions: int) -> int:
    """Optimizer updates of a run: ``num_updates`` when given, else ``epochs`` x batches per epoch."""
    if config.num_updates is not None:
        return config.num_updates
    return config.epochs * -(-num_transitions // config.batch_size)


class Adam(torch.optim.Adam):
    """``torch.optim.Adam``, the same arithmetic and state dict, without importing ``torch._dynamo``.

    PyTorch's optimizers import the compiler stack on their first ``add_param_group`` / ``step``
    (1-6 s on this kind of CPU, every training process) only to mark those methods as not to be
    compiled. We call the same undecorated methods (``__wrapped__``) directly; ``step`` runs under
    ``no_grad`` as the decorator does when ``differentiable=False``. Tested: bitwise equal
    parameters and state to ``torch.optim.Adam`` over several steps, and no ``torch._dynamo`` import.
    """

    def __init__(self, params: Any, **kwargs: Any) -> None:
        if kwargs.get("differentiable"):
            raise CswmError("train.Adam does not support differentiable=True; use torch.optim.Adam")
        super().__init__(params, **kwargs)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        torch.optim.Optimizer.add_param_group.__wrapped__(self, param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        torch.optim.Optimizer.zero_grad.__wrapped__(self, set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return torch.optim.Optimizer.state_dict.__wrapped__(self)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.optim.Optimizer.load_state_dict.__wrapped__(self, state_dict)

    def step(self, closure: Any = None) -> Any:
        with torch.no_grad():
            return torch.optim.Adam.step.__wrapped__(self, closure)


def train(
    config: TrainConfig, episodes: Episodes | None = None, eval_episodes: Episodes | None = None
) -> Path:
    """Train (or resume, or return a finished run) and return the checkpoint folder.

    ``episodes`` (and the learning curve's ``eval_episodes``) may be passed in memory; otherwise
    ``config.dataset`` (``config.eval_dataset``) is loaded.
    """
    folder = config.folder()
    device = get_device(config.device)
    if episodes is None:
        episodes = load_dataset(config.dataset)
    if episodes.num_episodes < 1 or episodes.episode_length < 1:
        raise CswmError(f"dataset {config.dataset} has {episodes.num_episodes} episodes of "
                        f"{episodes.episode_length} steps: nothing to train on")
    mcfg = config.model_config(episodes.obs_shape)
    check_compatible(mcfg, episodes, f"dataset {config.dataset}")
    total = total_updates(config, episodes.num_transitions)
    if config.eval_every > total:
        raise CswmError(f"--eval-every {config.eval_every} is larger than the run ({total} updates)")

    run = {k: v for k, v in asdict(config).items()}
    state_path = folder / "state.pt"
    state = _load_state(state_path) if state_path.exists() else None
    fingerprint = data_fingerprint(episodes)
    nb = -(-episodes.num_transitions // config.batch_size)  # batches per epoch
    if state is not None:
        why = _config_mismatch(state["config"], run)
        if why:
            raise CswmError(
                f"{folder} holds a run with another config ({why}); use another --name or delete it"
            )
        if state.get("data", fingerprint) != fingerprint:
            raise CswmError(
                f"{folder} was trained on another dataset ({_describe(state['data'])}) than {config.dataset} "
                f"({_describe(fingerprint)}); use another --name to train on it"
            )
        if state.get("updates", state["epoch"] * nb) >= total:
            return folder

    curve_set = None
    if config.eval_every:
        if eval_episodes is None:
            if config.eval_dataset is None:
                raise CswmError("--eval-every needs --eval-dataset (the episodes the learning curve scores)")
            eval_episodes = load_dataset(config.eval_dataset)
        check_compatible(mcfg, eval_episodes, f"eval dataset {config.eval_dataset}")
        curve_set = eval_subset(eval_episodes, config.eval_episodes)

    torch.manual_seed(config.seed)
    model = CSWM(mcfg).to(device)
    opt = Adam(model.parameters(), lr=config.learning_rate)
    done, best, log, curve = 0, float("inf"), [], []
    acc = {"epoch": [0.0, 0.0, 0.0, 0], "point": [0.0, 0], "seconds": 0.0, "train_seconds": 0.0}
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        done, best, log = state.get("updates", state["epoch"] * nb), state["best_loss"], state["log"]
        curve, acc = state.get("curve", []), state.get("acc", acc)
    write_json(
        folder / "config.json",
        {
            "train": run,
            "model": mcfg.to_dict(),
            "format": "cswm-book",
            "data": {
                "num_episodes": episodes.num_episodes,
                "episode_length": episodes.episode_length,
                "obs_shape": list(episodes.obs_shape),
                "attrs": {k: str(v) for k, v in episodes.attrs.items()},
            },
        },
    )

    def weights() -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu() for k, v in model.state_dict().items()}

    def checkpoint() -> None:
        state = {"model": weights(), "optimizer": opt.state_dict(), "epoch": done // nb, "updates": done,
                 "best_loss": best, "log": log, "curve": curve, "acc": acc, "config": run,
                 "data": fingerprint}
        _save(state, state_path)

    def evaluate_point() -> None:
        loss_sum, n = acc["point"]
        curve.append({
            "updates": done,
            "epoch": round(done / nb, 4),
            "loss": loss_sum / n if n else None,
            "train_seconds": round(acc["train_seconds"], 3),
            "records": curve_scores(model, curve_set),
        })
        acc["point"] = [0.0, 0]
        with atomic_path(folder / "curve.jsonl") as tmp:
            tmp.write_text("".join(json.dumps(r) + "\n" for r in curve))

    if curve_set is not None and done == 0 and not curve:
        evaluate_point()

    batches = TransitionBatches(episodes, config.batch_size, device)
    E, T = episodes.num_episodes, episodes.episode_length
    model.train()
    bar = tqdm(total=total, initial=done, desc=config.name, disable=not config.progress, unit="upd")
    while done < total:
        epoch, skip = divmod(done, nb)
        g = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        t0 = time.perf_counter()
        for j, b in enumerate(batches.epoch(g)):
            neg = sample_negatives(
                config.negatives,
                b.episode,
                b.step,
                E,
                T,
                g,
                config.beta,
                config.num_negatives,
                config.time_aligned,
            )
            if j < skip:  # resuming inside an epoch: replay the random draws of the batches done
                continue
            if neg.batch_index is not None:
                kw = {"neg_batch_index": neg.batch_index.to(device)}
            else:
                kw = {"neg_obs": batches.obs(neg.episode, neg.step)}
            loss, pos, negl = model.contrastive_loss(b.obs, b.action, b.next_obs, gamma=config.gamma, **kw)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
            bar.update(1)
            row3 = torch.stack([loss.detach(), pos.detach(), negl.detach()]).double().cpu()
            acc["epoch"] = [
                *(x + y * len(b.step) for x, y in zip(acc["epoch"][:3], row3.tolist(), strict=True)),
                acc["epoch"][3] + len(b.step),
            ]
            acc["point"] = [acc["point"][0] + float(row3[0]), acc["point"][1] + 1]
            now = time.perf_counter()
            acc["seconds"] += now - t0
            acc["train_seconds"] += now - t0
            t0 = now
            end_of_epoch, end = j + 1 == nb, done == total
            eval_now = curve_set is not None and (done % config.eval_every == 0 or end)
            if eval_now:
                evaluate_point()
                t0 = time.perf_counter()
            if end_of_epoch or end:
                *sums, n = acc["epoch"]
                loss_, pos_, neg_ = (x / n for x in sums)  # mean over transitions
                row = {
                    "epoch": epoch + 1,
                    "updates": done,
                    "loss": loss_,
                    "pos": pos_,
                    "neg": neg_,
                    "seconds": round(acc["seconds"], 3),
                    "best": loss_ < best,
                }
                if end_of_epoch:  # a partial last epoch is logged but stays open for a longer budget
                    log.append(row)
                    acc["epoch"], acc["seconds"] = [0.0, 0.0, 0.0, 0], 0.0
                if loss_ < best:
                    _save(weights(), folder / "model.pt")
                    best = loss_ if end_of_epoch else best
                _save(weights(), folder / "last.pt")
                rows = log + ([] if end_of_epoch else [row])
                with atomic_path(folder / "log.jsonl") as tmp:
                    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
                bar.set_postfix(loss=f"{loss_:.4f}", pos=f"{pos_:.4f}", neg=f"{neg_:.4f}")
            if end_of_epoch or end or eval_now:
                checkpoint()
            if end:
                break
    bar.close()
    return folder


def read_log(folder: str | Path) -> list[dict]:
    """The per-epoch rows of ``log.jsonl``."""
    path = Path(folder) / "log.jsonl"
    if not path.is_file():
        raise CswmError(f"no training log in {folder} (expected {path.name})")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def build_parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    p = ArgumentParser(
        prog="python -m cswm_lib.train",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--dataset", default=d.dataset)
    p.add_argument("--name", default=None, help="run name (folder under --save-folder)")
    p.add_argument("--save-folder", default=None, help="default: the project's checkpoints/")
    p.add_argument("--encoder", default=d.encoder, help="small | medium | large")
    for k in ("embedding_dim", "hidden_dim", "action_dim", "num_objects", "epochs", "batch_size", "seed"):
        p.add_argument("--" + k.replace("_", "-"), type=int, default=getattr(d, k))
    for k in ("learning_rate", "sigma", "hinge", "gamma"):
        p.add_argument("--" + k.replace("_", "-"), type=float, default=getattr(d, k))
    p.add_argument("--num-updates", type=int, default=None,
                   help="budget in optimizer updates (wins over --epochs)")
    c = p.add_argument_group("learning curve (scores during training, written to curve.jsonl)")
    c.add_argument("--eval-dataset", default=None, help="eval episodes (.h5) scored every --eval-every")
    c.add_argument("--eval-every", type=int, default=0, help="updates between curve points (0: no curve)")
    c.add_argument("--eval-episodes", type=int, default=d.eval_episodes, help="size of the fixed eval subset")
    p.add_argument(
        "--copy-action", action="store_true", help="one action one-hot copied to every slot (Atari)"
    )
    p.add_argument("--ignore-action", action="store_true")
    g = p.add_argument_group("negatives (original flags of the negative-sampling fork, or the aliases)")
    g.add_argument(
        "--custom-neg", action="store_true", help="dataset negatives instead of the in-batch permutation"
    )
    g.add_argument("--in-ep-prob", type=float, default=None, help="probability of an episodic negative (0.5)")
    g.add_argument("--disable-time-aligned", action="store_true")
    g.add_argument("--num-negs", type=int, default=1, help="negatives per positive")
    g.add_argument("--negatives", choices=STRATEGIES, default=None, help="strategy by name")
    g.add_argument("--beta", type=float, default=None, help="alias of --in-ep-prob")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: CUDA when available)")
    p.add_argument("--no-cuda", action="store_true", help="same as --device cpu")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--log-interval", type=int, default=20, help="accepted for compatibility; unused")
    return p


def config_from_args(a: argparse.Namespace) -> TrainConfig:
    """Resolve the original flags and the aliases into a :class:`TrainConfig`; conflicts are errors."""
    if a.beta is not None and a.in_ep_prob is not None and a.beta != a.in_ep_prob:
        raise CswmError(f"--beta {a.beta} and --in-ep-prob {a.in_ep_prob} disagree; give one")
    beta = a.beta if a.beta is not None else (a.in_ep_prob if a.in_ep_prob is not None else 0.5)
    if a.negatives is None:
        negatives, beta, time_aligned = strategy_from_flags(a.custom_neg, beta, a.disable_time_aligned)
    else:
        negatives, time_aligned = a.negatives, not a.disable_time_aligned
        if a.custom_neg and negatives == "baseline":
            raise CswmError("--custom-neg asks for dataset negatives but --negatives is baseline")
    explicit = a.beta if a.beta is not None else a.in_ep_prob
    if explicit is not None and a.negatives not in (None, "mixed"):
        raise CswmError(f"--beta/--in-ep-prob {explicit} has no effect with --negatives {a.negatives} "
                        "(only mixed draws episodic negatives with probability beta); drop it")
    if explicit is not None and a.negatives is None and not a.custom_neg:
        raise CswmError(f"--beta/--in-ep-prob {explicit} has no effect without --custom-neg (the baseline "
                        "permutes the batch); add --custom-neg or drop it")
    kw = {f.name: getattr(a, f.name) for f in fields(TrainConfig) if hasattr(a, f.name)}
    kw.update(
        negatives=negatives,
        beta=beta,
        time_aligned=time_aligned,
        num_negatives=a.num_negs,
        device="cpu" if a.no_cuda else a.device,
        progress=not a.no_progress,
    )
    return TrainConfig(**kw)


@cli_errors
def main(argv: list[str] | None = None) -> None:
    config = config_from_args(build_parser().parse_args(argv))
    folder = train(config)
    log = read_log(folder)
    best = min(log, key=lambda r: r["loss"])
    print(f"{folder}: {log[-1].get('updates', len(log))} updates ({log[-1]['epoch']} epochs), "
          f"best loss {best['loss']:.6f} at epoch {best['epoch']}")


if __name__ == "__main__":
    main()
