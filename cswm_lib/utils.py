"""Small shared helpers: device choice, thread count, eval mode, seeding, project paths, atomic
writes, CLI errors."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import random
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch

from cswm_lib.errors import CswmError


def get_device(device: str | None = None) -> torch.device:
    """The torch device to compute on.

    ``device`` wins when given ("cpu", "cuda", "cuda:1"); otherwise the environment variable
    ``CSWM_DEVICE``; otherwise CUDA when available, else the CPU.
    """
    name = device or os.environ.get("CSWM_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(name, str):
        raise CswmError(f"device must be a string such as 'cpu' or 'cuda', got {name!r}")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise CswmError(f"unknown device {name!r}: expected cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise CswmError(f"device {name!r} was asked for but CUDA is not available on this machine")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise CswmError(f"device {name!r} was asked for but there are {torch.cuda.device_count()} GPUs")
    if dev.type not in ("cpu", "cuda"):
        raise CswmError(f"device {name!r} is not supported here: expected cpu, cuda or cuda:N")
    return dev


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run a block with ``n`` torch CPU threads (``None``: leave the count alone), then restore it.

    Small work (the ranking loop's cache-sized ops, the explorer's forward passes) is faster on one
    thread: on a loaded 2-core machine two threads were up to 20x slower than one in the ranking loop,
    and 20 actions' predictions took ~250 ms instead of ~5 ms.
    """
    old = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Put ``model`` in eval mode (BatchNorm uses its running statistics) for a block, then restore
    its train/eval mode, also when the block raises."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def set_seed(seed: int) -> np.random.Generator:
    """Seed Python, numpy's global RNG and torch; return a fresh numpy Generator for local use."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def project_root() -> Path:
    """The folder holding ``_toc.yml``: ``CSWM_ROOT`` if set, else the first parent of the working
    directory (or of this package) that has one, else the working directory."""
    if os.environ.get("CSWM_ROOT"):
        return Path(os.environ["CSWM_ROOT"]).resolve()
    for start in (Path.cwd().resolve(), Path(__file__).resolve().parent):
        for folder in (start, *start.parents):
            if (folder / "_toc.yml").is_file():
                return folder
    return Path.cwd().resolve()


def project_relative(path: str | Path, root: Path | None = None) -> str | None:
    """``path`` as a posix path relative to the project folder ``root`` (default
    :func:`project_root`) when it lies inside it, else None: files the project writes name paths
    this way, never the machine they were made on."""
    path, root = Path(path), root if root is not None else project_root()
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else None


def data_dir() -> Path:
    """Where datasets go: ``CSWM_DATA`` if set, else ``<project root>/data``."""
    return Path(os.environ.get("CSWM_DATA") or project_root() / "data")


def checkpoints_dir() -> Path:
    """Where trained models go: ``CSWM_CHECKPOINTS`` if set, else ``<project root>/checkpoints``."""
    return Path(os.environ.get("CSWM_CHECKPOINTS") or project_root() / "checkpoints")


def results_dir() -> Path:
    """Where chapters write ``results.json``: ``CSWM_RESULTS`` (set by the papermill runner),
    else ``<project root>/_build/results``."""
    return Path(os.environ.get("CSWM_RESULTS") or project_root() / "_build" / "results")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds.

    An interrupted job therefore never leaves a file that looks complete, nor the temporary file:
    Ctrl-C and errors unwind through ``finally``, and SIGTERM does too under :func:`cli_errors`; in a
    process with SIGTERM's default action (library use) the block removes its temporary file before
    the process ends by the signal.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:  # from here on: a signal raised as an exception (cli_errors) unwinds through finally
        try:
            os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a finished file gets the usual mode
        finally:
            os.close(fd)
        with _remove_on_sigterm(tmp):
            yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


_PENDING: set[Path] = set()  # temporary files of the atomic writes in progress in this process


@contextlib.contextmanager
def _remove_on_sigterm(tmp: Path) -> Iterator[None]:
    """While SIGTERM has its default action (it would end the process with no cleanup), remove the
    temporary files of every atomic write in progress first, then end the process by the signal."""
    import signal
    import threading

    def handler(signum: int, frame: Any) -> None:
        for path in list(_PENDING):
            path.unlink(missing_ok=True)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    main = threading.current_thread() is threading.main_thread()
    installed = main and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    if installed:
        signal.signal(signal.SIGTERM, handler)
    _PENDING.add(tmp)
    try:
        yield
    finally:
        _PENDING.discard(tmp)
        if installed:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def load_tensors(path: str | os.PathLike, what: str = "checkpoint") -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU: tensors and plain values only, so a file
    from someone else cannot run code. Any failure (truncated, corrupt, foreign objects) is a
    one-line :class:`~cswm_lib.CswmError` naming the file; torch's advice to retry with
    ``weights_only=False`` is deliberately not passed on."""
    path = Path(path)
    if not path.is_file():
        raise CswmError(f"{what} not found or not a regular file: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any reason the file cannot be read safely
        raise CswmError(
            f"{path} is not a valid or trusted {what}: it is truncated, corrupt, or holds objects other "
            f"than tensors and plain values ({type(err).__name__}); it was not loaded"
        ) from None


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's ``KeyboardInterrupt`` (by :func:`interrupt_guard`), so the same
    cleanup runs: workers stopped, temporary files removed, the old output kept."""


class InterruptGuard:
    """Remembers a Ctrl-C (SIGINT) or SIGTERM even when the ``KeyboardInterrupt`` it raised was
    swallowed on the way (Python ignores exceptions raised in ``__del__``, weakref and thread
    callbacks), so a job can :meth:`check` before it commits its output. See :func:`interrupt_guard`."""

    def __init__(self) -> None:
        self.interrupted: type[KeyboardInterrupt] | None = None

    def check(self) -> None:
        """Raise ``KeyboardInterrupt`` (:class:`Terminated` for SIGTERM) if a signal arrived since the
        guard was entered."""
        if self.interrupted:
            raise self.interrupted


@contextlib.contextmanager
def interrupt_guard() -> Iterator[InterruptGuard]:
    """Within the block, SIGINT raises ``KeyboardInterrupt`` as usual, SIGTERM raises
    :class:`Terminated` (a ``KeyboardInterrupt``, so the same cleanup runs), and either sets a flag that
    :meth:`InterruptGuard.check` turns into the exception again at a safe point (outside the main
    thread, where no handler can be set, only the usual behaviour remains)."""
    import signal
    import threading

    guard = InterruptGuard()
    if threading.current_thread() is not threading.main_thread():
        yield guard
        return

    def handler(signum: int, frame: Any) -> None:
        guard.interrupted = Terminated if signum == signal.SIGTERM else KeyboardInterrupt
        raise guard.interrupted

    def unraisable(info: Any) -> None:  # the signal hit a __del__ or weakref callback: remembered, not shown
        if not (guard.interrupted and isinstance(info.exc_value, KeyboardInterrupt)):
            hook(info)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    hook, sys.unraisablehook = sys.unraisablehook, unraisable
    try:
        yield guard
    finally:
        sys.unraisablehook = hook
        for sig, old in previous.items():
            signal.signal(sig, old)


def os_error_line(err: OSError) -> str:
    """An ``OSError`` as one line: what failed and on which path(s), without a traceback."""
    what = err.strerror or (str(err).splitlines()[0] if str(err) else type(err).__name__)
    paths = [str(p) for p in (err.filename, err.filename2) if p is not None]
    return f"{what}: {' -> '.join(paths)}" if paths else what


def ignore_interrupts() -> None:
    """For worker processes: leave Ctrl-C to the parent, which stops the workers and cleans up; SIGTERM
    ends a worker at once (a forked worker would otherwise inherit the parent's handler)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def die_with_parent() -> None:
    """For worker processes: on Linux, have the kernel send this process SIGTERM when the process
    that started it ends, so a parent killed without cleanup (SIGTERM, SIGKILL, the OOM killer)
    leaves no worker computing on; a parent that is already gone ends the worker now. Elsewhere it
    does nothing (workers then stop when they next talk to their gone parent)."""
    import multiprocessing as mp
    import signal

    if sys.platform != "linux":
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    parent = mp.parent_process()
    if parent is not None and os.getppid() != parent.pid:  # it died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _serve_jobs(conn: Any, fn: Callable[[Any], Any]) -> None:
    ignore_interrupts()
    die_with_parent()
    while (job := conn.recv()) is not None:
        index, arg = job
        try:
            conn.send((index, True, fn(arg)))
        except Exception as err:  # noqa: BLE001 -- handed to the parent, which raises it
            try:
                conn.send((index, False, err))
            except Exception:  # noqa: BLE001 -- the error itself does not pickle
                conn.send((index, False, RuntimeError(f"{type(err).__name__}: {err}")))


def process_map(fn: Callable[[Any], Any], jobs: list[Any], num_workers: int) -> Iterator[Any]:
    """``map(fn, jobs)`` over ``num_workers`` processes, results in job order.

    Each worker has its own pipe and at most one job in flight, so at most ``num_workers`` results
    wait in memory. Workers ignore Ctrl-C; when the caller stops (Ctrl-C, an error, or closing the
    generator) they are killed at once. ``multiprocessing.Pool.terminate`` can hang for good when a
    worker is killed half-way through sending a large result; this cannot. A worker's exception is
    raised here; a worker that dies (e.g. killed for memory) is a one-line :class:`CswmError`.
    """
    import multiprocessing as mp
    from multiprocessing.connection import wait

    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    todo = iter(enumerate(jobs))
    workers, done, next_index = {}, {}, 0
    try:
        for _ in range(max(1, min(num_workers, len(jobs)))):
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(target=_serve_jobs, args=(theirs, fn), daemon=True)
            proc.start()
            theirs.close()
            workers[mine] = proc
        idle = list(workers)
        while next_index < len(jobs):
            while idle and (job := next(todo, None)) is not None:
                idle.pop().send(job)
            for ready in wait(list(workers)):  # a worker's pipe: a result, or end-of-file if it died
                try:
                    index, ok, value = ready.recv()
                except EOFError:
                    workers[ready].join(5)
                    raise CswmError(f"a worker process died (exit code {workers[ready].exitcode}), e.g. "
                                    "killed for lack of memory; try fewer workers") from None
                if not ok:
                    raise value
                done[index] = value
                idle.append(ready)
            while next_index in done:
                yield done.pop(next_index)
                next_index += 1
    finally:
        for conn, proc in workers.items():
            if proc.is_alive():
                proc.kill()
            proc.join()
            conn.close()


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(x: Any) -> Any:
    if isinstance(x, (np.integer, np.floating)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose usage errors are one line (``error: <prog>: <message> (see
    --help)``, exit 2) instead of the whole usage block followed by the message. Its subparsers are of
    the same class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see --help)\n")


#: what torch's zip writer says when the disk fills up under it (it raises RuntimeError, not OSError)
_WRITE_FAILURES = ("unexpected pos", "PytorchStreamWriter failed", "file write failed")


def is_write_failure(err: BaseException) -> bool:
    """Whether ``err`` is torch's ``RuntimeError`` for a write the file system refused (a full disk)."""
    return isinstance(err, RuntimeError) and any(s in str(err) for s in _WRITE_FAILURES)


def write_failure_line(err: BaseException) -> str:
    first = next((line.strip() for line in str(err).splitlines() if line.strip()), "")
    return (f"writing a file failed: no space left on device, or the file system refused the write "
            f"(torch: {first[-120:]})")


def cli_errors(main: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a command-line ``main``: a :class:`~cswm_lib.CswmError` becomes one line on stderr, exit 2;
    so does an ``OSError`` that no check caught before (disk full, permissions, a path that is a folder)
    and torch's ``RuntimeError`` for a write that failed (a full disk). SIGINT ends it with exit 130 and
    SIGTERM with 143, after the same cleanup (see :func:`interrupt_guard`)."""

    @functools.wraps(main)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with interrupt_guard() as guard:
                result = main(*args, **kwargs)
            guard.check()  # a Ctrl-C that something swallowed still ends the command as interrupted
            return result
        except CswmError as err:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from None
        except OSError as err:
            print(f"error: {os_error_line(err)}", file=sys.stderr)
            raise SystemExit(2) from None
        except RuntimeError as err:
            if not is_write_failure(err):
                raise
            print(f"error: {write_failure_line(err)}", file=sys.stderr)
            raise SystemExit(2) from None
        except Terminated:
            print("terminated", file=sys.stderr)
            raise SystemExit(143) from None
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise SystemExit(130) from None

    return wrapper
