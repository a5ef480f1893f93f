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
  curve.jsonl      with --eval-every N: the learning curve, one line per N updates, the last at the
                   last weights, then one point marked "weights": "selected" that scores model.pt
                   (:mod:`cswm_lib.curves`)
  state.pt         model + optimizer + progress, written atomically after every epoch and curve point
  train.lock       the run's lock (:func:`cswm_lib.run_folder.run_lock`): a second run of the same
                   folder is refused, naming the pid that trains it

The budget is ``--num-updates`` optimizer updates when given, else ``--epochs`` passes over the data.
Re-running the same command RESUMES from ``state.pt`` and ends with bit-identical weights and curve
to an uninterrupted run: the shuffling/negative RNG is re-seeded from (seed, epoch) at every epoch
and replayed up to the last saved update. A finished run is returned as is (raise ``epochs`` or
``num_updates`` to train on). A non-finite loss (or weights) stops the run with one line naming the
update; the folder keeps the files of its last good state.

Settings are checked where they are declared (:mod:`cswm_lib.checks`): the model's in
:class:`~cswm_lib.model.ModelConfig`, the run's in :class:`TrainConfig`.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from cswm_lib import checks, vocabulary
from cswm_lib.curves import eval_subset
from cswm_lib.data.episodes import Episodes
from cswm_lib.data.fingerprint import data_fingerprint
from cswm_lib.data.loaders import TransitionBatches
from cswm_lib.errors import CswmError
from cswm_lib.jsonl import read_jsonl
from cswm_lib.model import CSWM, MODEL_KEYS, ModelConfig, check_compatible
from cswm_lib.negatives import STRATEGIES, Negatives, sample_negatives, strategy_from_flags
from cswm_lib.run_folder import Run, run_lock
from cswm_lib.utils import ArgumentParser, checkpoints_dir, cli_errors, get_device


@dataclass(init=False)
class TrainConfig:
    """A training run. Defaults are the original ``train.py``'s.

    The architecture is ``model``, a :class:`~cswm_lib.model.ModelConfig` (its ``input_shape`` is
    taken from the data when training starts). Its fields may also be given as keywords, as on the
    command line: ``TrainConfig(encoder="medium", hidden_dim=512, strategy="mixed")``.
    """

    dataset: str = "data/shapes_train.h5"
    name: str | None = None  # default: <dataset stem>_<strategy>_s<seed>
    save_folder: str | None = None  # default: cswm_lib.utils.checkpoints_dir()
    model: ModelConfig = field(default_factory=ModelConfig)
    epochs: int = 100
    num_updates: int | None = None  # budget in optimizer updates (wins over epochs); None: epochs x batches
    batch_size: int = 1024
    learning_rate: float = 5e-4
    strategy: str = "baseline"  # negative sampling: one of cswm_lib.negatives.STRATEGIES
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

    def __init__(self, model: ModelConfig | None = None, **kw: Any) -> None:
        arch = {k: kw.pop(k) for k in MODEL_KEYS if k in kw}
        unknown = sorted(set(kw) - {f.name for f in fields(self)})
        if unknown:
            hint = f" (renamed {vocabulary.FIELDS[unknown[0]]})" if unknown[0] in vocabulary.FIELDS else ""
            raise TypeError(f"TrainConfig() got an unexpected keyword argument {unknown[0]!r}{hint}")
        if model is not None and arch:
            raise CswmError(f"give the model settings either as model=ModelConfig(...) or as keywords "
                            f"({', '.join(arch)}), not both")
        for f in fields(self):
            if f.name != "model":
                setattr(self, f.name, kw.get(f.name, f.default))
        self.model = model if model is not None else ModelConfig(**arch)
        self.__post_init__()

    def __post_init__(self) -> None:
        if not isinstance(self.model, ModelConfig):
            raise CswmError(f"model must be a ModelConfig, got {type(self.model).__name__}")
        checks.choice(self.strategy, "--strategy", STRATEGIES)
        for k in ("time_aligned", "progress"):
            checks.boolean(getattr(self, k), checks.flag(k))
        self.epochs = checks.integer(self.epochs, "--epochs", 1)
        self.num_updates = checks.optional_integer(self.num_updates, "--num-updates", 1)
        self.batch_size = checks.integer(self.batch_size, "--batch-size", 1)
        self.num_negatives = checks.integer(self.num_negatives, "--num-negs", 1)
        self.learning_rate = checks.real(self.learning_rate, "--learning-rate", 0, lo_open=True)
        self.beta = checks.real(self.beta, "--beta", 0, 1, why="it is a probability: --in-ep-prob")
        self.gamma = checks.real(self.gamma, "--gamma", 0, why="it weighs the negative term")
        self.seed = checks.seed(self.seed)
        self.eval_every = checks.integer(self.eval_every, "--eval-every", 0, why="0: no curve")
        self.eval_episodes = checks.integer(self.eval_episodes, "--eval-episodes", 1)
        if self.num_updates is not None and self.eval_every > self.num_updates:
            raise CswmError(
                f"--eval-every {self.eval_every} is larger than the run (--num-updates {self.num_updates})"
            )
        if self.name is None:
            self.name = f"{Path(self.dataset).stem}_{self.strategy}_s{self.seed}"
        name = Path(str(self.name))
        if not str(self.name).strip() or name.is_absolute() or ".." in name.parts or name == Path("."):
            raise CswmError(f"--name must name a folder inside --save-folder, got {self.name!r}")

    def model_config(self, input_shape: tuple[int, int, int]) -> ModelConfig:
        """``model`` for observations of ``input_shape`` (channels, height, width)."""
        return replace(self.model, input_shape=tuple(input_shape))

    def to_dict(self) -> dict[str, Any]:
        """Every setting as one flat, JSON-able dict (the model's fields beside the run's, one per
        command-line flag): ``config.json``'s ``train`` section and ``state.pt``'s ``config``."""
        run = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "model"}
        return {**run, **{k: getattr(self.model, k) for k in MODEL_KEYS}}

    def folder(self) -> Path:
        """``<save_folder>/<name>``; a one-line error if a file stands where a folder must go."""
        folder = Path(self.save_folder or checkpoints_dir()) / str(self.name)
        for p in (folder, *folder.parents):
            if p.exists() and not p.is_dir():
                raise CswmError(f"cannot make the run folder {folder}: {p} is a file, not a folder")
            if p.is_dir():
                break
        return folder


def load_dataset(path: str | Path) -> Episodes:
    path = Path(path)
    if path.is_dir():
        raise CswmError(f"dataset {path} is a folder, not an HDF5 file")
    if not path.is_file():
        raise CswmError(f"dataset not found: {path}")
    from cswm_lib.data.hdf5 import load_episodes

    return load_episodes(path)


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


def _data(config: TrainConfig, episodes: Episodes | None, eval_episodes: Episodes | None
          ) -> tuple[Episodes, ModelConfig, Episodes | None]:
    """The training episodes, the model config they fit, and the curve's fixed eval subset (or None)."""
    if episodes is None:
        episodes = load_dataset(config.dataset)
    if episodes.num_episodes < 1 or episodes.episode_length < 1:
        raise CswmError(f"dataset {config.dataset} has {episodes.num_episodes} episodes of "
                        f"{episodes.episode_length} steps: nothing to train on")
    mcfg = config.model_config(episodes.obs_shape)
    check_compatible(mcfg, episodes, f"dataset {config.dataset}")
    if config.eval_every > total_updates(config, episodes.num_transitions):
        raise CswmError(f"--eval-every {config.eval_every} is larger than the run "
                        f"({total_updates(config, episodes.num_transitions)} updates)")
    if not config.eval_every:
        return episodes, mcfg, None
    if eval_episodes is None:
        if config.eval_dataset is None:
            raise CswmError("--eval-every needs --eval-dataset (the episodes the learning curve scores)")
        eval_episodes = load_dataset(config.eval_dataset)
    check_compatible(mcfg, eval_episodes, f"eval dataset {config.eval_dataset}")
    return episodes, mcfg, eval_subset(eval_episodes, config.eval_episodes)


def _negative_inputs(neg: Negatives, batches: TransitionBatches, device: torch.device) -> dict:
    """The negatives as :meth:`CSWM.contrastive_loss` takes them: in-batch positions or observations."""
    if neg.batch_index is not None:
        return {"neg_batch_index": neg.batch_index.to(device)}
    return {"neg_obs": batches.obs(neg.episode, neg.step)}


def train(
    config: TrainConfig, episodes: Episodes | None = None, eval_episodes: Episodes | None = None
) -> Path:
    """Train (or resume, or return a finished run) and return the checkpoint folder.

    ``episodes`` (and the learning curve's ``eval_episodes``) may be passed in memory; otherwise
    ``config.dataset`` (``config.eval_dataset``) is loaded. A non-finite loss stops the run with a
    :class:`CswmError`; the folder keeps its last good state.
    """
    episodes, mcfg, curve_set = _data(config, episodes, eval_episodes)
    E, T, device = episodes.num_episodes, episodes.episode_length, get_device(config.device)
    total, nb = total_updates(config, E * T), -(-E * T // config.batch_size)  # nb: batches per epoch
    with run_lock(config.folder()):
        # resume: rebuild the model and optimizer, then load the validated state.pt of an earlier run
        torch.manual_seed(config.seed)
        model = CSWM(mcfg).to(device)
        run = Run(config, config.folder(), model, Adam(model.parameters(), lr=config.learning_rate), nb,
                  data_fingerprint(episodes))
        run.resume(episodes)
        if run.done >= total:  # finished: returned as is
            return run.folder
        run.write_config(episodes)
        if curve_set is not None and run.done == 0 and not run.curve:
            run.curve_point(curve_set)  # the untrained model's scores
        batches = TransitionBatches(episodes, config.batch_size, device)
        model.train()
        bar = tqdm(total=total, initial=run.done, desc=config.name, disable=not config.progress, unit="upd")
        while run.done < total:
            epoch, skip = divmod(run.done, nb)  # a resumed run replays the draws of the batches it made
            g = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
            t0 = time.perf_counter()
            for j, b in enumerate(batches.epoch(g)):
                # step: draw the negatives (also for replayed batches), then one optimizer update
                neg = sample_negatives(config.strategy, b.episode, b.step, E, T, g, config.beta,
                                       config.num_negatives, config.time_aligned)
                if j < skip:
                    continue
                loss, pos, negl = model.contrastive_loss(
                    b.obs, b.action, b.next_obs, gamma=config.gamma, **_negative_inputs(neg, batches, device))
                run.opt.zero_grad(set_to_none=True)
                loss.backward()
                run.opt.step()
                run.done += 1
                bar.update(1)
                # log: the running totals; a non-finite loss stops the run before anything is saved
                terms = torch.stack([loss.detach(), pos.detach(), negl.detach()]).double().cpu().tolist()
                run.stop_if_not_finite(terms[0])
                now = time.perf_counter()
                run.meter.add(terms, len(b.step), now - t0)
                t0 = now
                complete, end = j + 1 == nb, run.done == total
                eval_now = curve_set is not None and (run.done % config.eval_every == 0 or end)
                if complete or end or eval_now:
                    run.stop_if_not_finite()
                # curve point: every eval_every updates and at the last weights
                if eval_now:
                    run.curve_point(curve_set)
                    t0 = time.perf_counter()
                # save: the epoch's log line, model.pt / last.pt, the selected point, then state.pt
                if complete or end:
                    loss_, pos_, neg_ = run.end_epoch(epoch, complete)
                    bar.set_postfix(loss=f"{loss_:.4f}", pos=f"{pos_:.4f}", neg=f"{neg_:.4f}")
                if end and curve_set is not None:
                    run.selected_point(curve_set)
                if complete or end or eval_now:
                    run.checkpoint()
                if end:
                    break
        bar.close()
    return run.folder


def read_log(folder: str | Path) -> list[dict]:
    """The per-epoch rows of ``log.jsonl``."""
    path = Path(folder) / "log.jsonl"
    if not path.is_file():
        raise CswmError(f"no training log in {folder} (expected {path.name})")
    return read_jsonl(path, "training log")


def build_parser() -> argparse.ArgumentParser:
    d, m = TrainConfig(), ModelConfig()
    p = ArgumentParser(
        prog="python -m cswm_lib.train",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--dataset", default=d.dataset)
    p.add_argument("--name", default=None, help="run name (folder under --save-folder)")
    p.add_argument("--save-folder", default=None, help="default: the project's checkpoints/")
    p.add_argument("--encoder", default=m.encoder, help="small | medium | large")
    for k in ("embedding_dim", "hidden_dim", "action_dim", "num_objects"):
        p.add_argument(checks.flag(k), type=int, default=getattr(m, k))
    for k in ("epochs", "batch_size", "seed"):
        p.add_argument(checks.flag(k), type=int, default=getattr(d, k))
    for k in ("sigma", "hinge"):
        p.add_argument(checks.flag(k), type=float, default=getattr(m, k))
    for k in ("learning_rate", "gamma"):
        p.add_argument(checks.flag(k), type=float, default=getattr(d, k))
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
    g = p.add_argument_group(
        "negative sampling: --strategy, or the original flags of the negative-sampling fork as aliases "
        "(--custom-neg [--in-ep-prob P] [--disable-time-aligned]; the mapping is the table of "
        "cswm_lib.negatives)")
    g.add_argument("--strategy", choices=STRATEGIES, default=None,
                   help="the strategy; none given: baseline, or what the aliases say")
    g.add_argument("--custom-neg", action="store_true",
                   help="alias: dataset negatives instead of the in-batch permutation")
    g.add_argument("--in-ep-prob", type=float, default=None,
                   help="alias: probability of an episodic negative (0.5)")
    g.add_argument("--disable-time-aligned", action="store_true",
                   help="alias: out-of-episode negatives at any step")
    g.add_argument("--num-negs", type=int, default=1, help="negatives per positive")
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
    if a.strategy is None:
        strategy, beta, time_aligned = strategy_from_flags(a.custom_neg, beta, a.disable_time_aligned)
    else:
        strategy, time_aligned = a.strategy, not a.disable_time_aligned
        if a.custom_neg and strategy == "baseline":
            raise CswmError("--custom-neg asks for dataset negatives but --strategy is baseline")
    explicit = a.beta if a.beta is not None else a.in_ep_prob
    if explicit is not None and a.strategy not in (None, "mixed"):
        raise CswmError(f"--beta/--in-ep-prob {explicit} has no effect with --strategy {a.strategy} "
                        "(only mixed draws episodic negatives with probability beta); drop it")
    if explicit is not None and a.strategy is None and not a.custom_neg:
        raise CswmError(f"--beta/--in-ep-prob {explicit} has no effect without --custom-neg (the baseline "
                        "permutes the batch); add --custom-neg or drop it")
    names = [f.name for f in fields(TrainConfig) if f.name != "model"] + list(MODEL_KEYS)
    kw = {k: getattr(a, k) for k in names if hasattr(a, k)}
    kw.update(
        strategy=strategy,
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
