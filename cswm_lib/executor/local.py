"""Jobs and the local executors: :class:`Job`, the in-process :class:`Executor` (``local``) and
:class:`ProcessExecutor` (``local:N``), the progress line and the one-line failure report. The
package :mod:`cswm_lib.executor` describes the executors and picks one by name."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import re
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import wait as wait_any
from pathlib import Path
from typing import Any

from cswm_lib.errors import CswmError
from cswm_lib.utils import checkpoints_dir

#: Executor names :func:`~cswm_lib.executor.get_executor` knows (``local:N`` is ``local`` with N processes).
EXECUTORS = ("local", "ray")


@dataclass
class Job:
    """One independent run of the pipeline.

    Attributes:
        name: the run's name in progress and error lines, e.g. ``"4.1 Shapes immovable/baseline_s1"``.
        fn: a module-level function (it is pickled by reference into worker processes).
        args, kwargs: its arguments (plain values, dataclasses, paths).
        cpus: CPUs the job uses; ``None``: the executor's default (1 locally; ``cpus_per_job`` on
            Ray). A3C jobs ask for their worker count.
        gpu: whether the job can use a GPU (on Ray it then asks for one when the cluster has any).
        inputs: files or folders the job reads (sent to Ray workers that do not share the disk).
        outputs: files or folders the job writes (copied back to these paths from Ray workers).
    """

    name: str
    fn: Callable[..., Any]
    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    cpus: int | None = None
    gpu: bool = True
    inputs: Sequence[str | os.PathLike] = ()
    outputs: Sequence[str | os.PathLike] = ()

    def __call__(self) -> Any:
        return self.fn(*self.args, **self.kwargs)


class JobsFailed(CswmError):
    """Some jobs of a :meth:`Executor.map` failed. ``results`` holds the jobs that finished,
    ``failures`` maps each failed run's name to its one-line reason."""

    def __init__(self, failures: dict[str, str], results: dict[str, Any], total: int):
        self.failures, self.results = failures, results
        listed = "; ".join(f"{name}: {why}" for name, why in failures.items())
        super().__init__(f"{len(failures)} of {total} runs failed ({listed})")


class Progress:
    """Counts jobs done / running / queued and prints one line whenever a job starts or ends."""

    def __init__(self, total: int, label: str, enabled: bool = True):
        self.total, self.label, self.enabled = total, label, enabled
        self.done, self.running, self.failed = 0, 0, 0
        self.t0 = time.perf_counter()

    @property
    def queued(self) -> int:
        return self.total - self.done - self.failed - self.running

    def line(self, event: str, width: int = 80) -> str:
        """``[label] d/n done, r running, q queued | event``; the event goes on a second, indented
        line where one line would be wider than ``width`` (the book's text column)."""
        failed = f", {self.failed} failed" if self.failed else ""
        counts = (f"[{self.label}] {self.done}/{self.total} done{failed}, {self.running} running, "
                  f"{self.queued} queued")
        one = f"{counts} | {event}"
        if len(one) <= width:
            return one
        lines = []  # a long job name (<folder>/<run>) is folded after a slash
        while len(event) > width - 4 and "/" in event[: width - 4]:
            cut = event.rindex("/", 0, width - 4) + 1
            lines.append(event[:cut])
            event = event[cut:]
        return "\n    ".join([counts, *lines, event])

    def say(self, event: str) -> None:
        if self.enabled:
            print(self.line(event), flush=True)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", name).strip("_") or "job"


def record_failure(name: str, error: str, trace: str) -> str:
    """Write a failed job's traceback to ``<checkpoints>/failed/<run>.log``; return the one-line reason."""
    path = checkpoints_dir() / "failed" / f"{_safe(name)}.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"run: {name}\n{trace}")
        return f"{error} (traceback in {path})"
    except OSError:
        return error


def _describe(err: BaseException) -> str:
    text = str(err).splitlines()[0] if str(err) else ""
    return text if isinstance(err, CswmError) else f"{type(err).__name__}: {text}".rstrip(": ")


def _check_names(jobs: Sequence[Job]) -> None:
    seen: set[str] = set()
    for job in jobs:
        if job.name in seen:
            raise CswmError(f"two jobs are named {job.name!r}: every run needs its own name")
        seen.add(job.name)


class Executor:
    """Runs independent jobs; see the module docstring. Subclasses implement ``_run``."""

    name = "local"

    def __init__(self, progress: bool = True):
        self.progress = progress

    def map(self, jobs: Sequence[Job], label: str = "jobs") -> dict[str, Any]:
        """Run every job; return ``{job name: return value}``. Raises :class:`JobsFailed` after all
        jobs ended when some failed (each failure was printed as one line when it happened)."""
        jobs = list(jobs)
        _check_names(jobs)
        if not jobs:
            return {}
        progress = Progress(len(jobs), label, self.progress)
        results: dict[str, Any] = {}
        failures: dict[str, str] = {}
        self._run(jobs, progress, results, failures)
        if failures:
            raise JobsFailed(failures, results, len(jobs))
        return {job.name: results[job.name] for job in jobs}

    def _run(self, jobs: list[Job], progress: Progress, results: dict, failures: dict) -> None:
        """Sequential, in this process."""
        for job in jobs:
            progress.running = 1
            progress.say(f"started {job.name}")
            t0 = time.perf_counter()
            try:
                results[job.name] = job()
            except Exception as err:  # one line per failed run; the others go on
                progress.running, progress.failed = 0, progress.failed + 1
                failures[job.name] = record_failure(job.name, _describe(err), traceback.format_exc())
                progress.say(f"FAILED {job.name}: {failures[job.name]}")
                continue
            progress.running, progress.done = 0, progress.done + 1
            progress.say(f"finished {job.name} in {time.perf_counter() - t0:.0f} s")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class ProcessExecutor(Executor):
    """Up to ``workers`` jobs at a time in spawned worker processes, each job with one torch thread
    per CPU it asked for (``Job.cpus``, default 1); a job's CPUs count against the ``workers`` slots.
    The worker processes are started once per :meth:`Executor.map` and run one job after another (importing
    torch in a fresh process takes seconds on a loaded machine); one that dies is replaced."""

    def __init__(self, workers: int, progress: bool = True):
        super().__init__(progress)
        if workers < 1:
            raise CswmError(f"local executor: need at least 1 process, got {workers}")
        self.workers = workers
        self.name = f"local:{workers}"

    def _slots(self, job: Job) -> int:
        return min(max(1, job.cpus or 1), self.workers)

    def _run(self, jobs: list[Job], progress: Progress, results: dict, failures: dict) -> None:
        ctx = mp.get_context("spawn")  # never fork a process that holds torch threads
        queue = list(jobs)
        idle: list[tuple[Any, Any]] = []  # (process, pipe end)
        busy: dict[Any, tuple[Any, Job, float]] = {}  # pipe end -> (process, job, start time)

        def worker() -> tuple[Any, Any]:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_serve, args=(child,), name="cswm-executor")
            proc.start()
            child.close()
            return proc, parent

        try:
            while queue or busy:
                free = self.workers - sum(self._slots(j) for _, j, _ in busy.values())
                while queue and (not busy or self._slots(queue[0]) <= free):
                    job = queue.pop(0)
                    proc, conn = idle.pop() if idle else worker()
                    conn.send((job, self._slots(job)))
                    busy[conn] = (proc, job, time.perf_counter())
                    free -= self._slots(job)
                    progress.running += 1
                    progress.say(f"started {job.name}")
                ready = wait_any(list(busy) + [p.sentinel for p, _, _ in busy.values()])
                for conn in list(busy):
                    proc, job, t0 = busy[conn]
                    if conn not in ready and proc.sentinel not in ready:
                        continue
                    try:
                        status, value = conn.recv() if conn.poll() else ("died", None)
                    except (EOFError, OSError):
                        status, value = "died", None
                    del busy[conn]
                    progress.running -= 1
                    if status == "died":
                        proc.join()
                        conn.close()
                    else:
                        idle.append((proc, conn))
                    if status == "ok":
                        results[job.name] = value
                        progress.done += 1
                        progress.say(f"finished {job.name} in {time.perf_counter() - t0:.0f} s")
                        continue
                    progress.failed += 1
                    if status == "died":
                        failures[job.name] = f"its process died (exit code {proc.exitcode})"
                    else:
                        error, trace = value
                        failures[job.name] = record_failure(job.name, error, trace)
                    progress.say(f"FAILED {job.name}: {failures[job.name]}")
        finally:  # done, Ctrl-C or an error here: stop the workers (a stopped run resumes later)
            for _proc, conn in idle:
                with contextlib.suppress(OSError):
                    conn.send(None)
            for proc, _, _ in busy.values():
                if proc.is_alive():
                    proc.terminate()
            for proc, _ in idle:
                proc.join(timeout=10)
                if proc.is_alive():
                    proc.terminate()
            for proc, _, _ in busy.values():
                proc.join(timeout=10)


def _serve(conn: Any) -> None:
    """Body of a ``local:N`` worker process: run the jobs it is sent, one at a time, until ``None``
    (or until the process that started it ends: :func:`cswm_lib.utils.die_with_parent`)."""
    from cswm_lib.utils import die_with_parent

    die_with_parent()
    import torch

    try:
        while (message := conn.recv()) is not None:
            job, threads = message
            torch.set_num_threads(threads)
            try:
                value = job()
            except Exception as err:
                conn.send(("error", (_describe(err), traceback.format_exc())))
                continue
            try:
                conn.send(("ok", value))
            except Exception as err:  # an unpicklable result
                conn.send(("error", (f"its result cannot be sent back: {_describe(err)}", "")))
    except (KeyboardInterrupt, EOFError):
        pass
    finally:
        conn.close()


def parse_executor(spec: str | dict[str, Any] | None) -> dict[str, Any]:
    """``"local"``, ``"local:N"``, ``"local:auto"``, ``"ray"`` or a dict ``{"name": "ray", ...options}``
    (options of :class:`~cswm_lib.executor.ray_cluster.RayExecutor`) -> ``{"name": ..., **options}``;
    ``None`` reads ``CSWM_EXECUTOR``
    (default ``local``)."""
    if spec is None:
        spec = os.environ.get("CSWM_EXECUTOR") or "local"
    if isinstance(spec, dict):
        options = dict(spec)
        name = str(options.pop("name", "local"))
    else:
        name, options = str(spec).strip(), {}
    base, _, count = name.partition(":")
    if base not in EXECUTORS or (base == "ray" and count):
        raise CswmError(
            f"unknown executor {name!r}: expected local, local:N (N processes), local:auto or ray"
        )
    if base == "local":
        if count == "auto":
            options["workers"] = os.cpu_count() or 1
        elif count:
            if not count.isdigit() or int(count) < 1:
                raise CswmError(f"executor {name!r}: N in local:N must be a whole number >= 1")
            options["workers"] = int(count)
        unknown = set(options) - {"workers", "progress"}
        if unknown:
            raise CswmError(f"executor local takes no option(s) {sorted(unknown)} (only workers, progress)")
    return {"name": base, **options}


def capture_output(path: Path) -> contextlib.ExitStack:
    """Send this process's Python-level stdout and stderr to ``path`` (appended) inside a ``with``."""
    stack = contextlib.ExitStack()
    path.parent.mkdir(parents=True, exist_ok=True)
    log = stack.enter_context(open(path, "a"))  # noqa: SIM115
    stack.enter_context(contextlib.redirect_stdout(log))
    stack.enter_context(contextlib.redirect_stderr(log))
    return stack
