"""Run the pipeline's independent jobs: one after another, in N local processes, or on a Ray cluster.

A :class:`Job` is one run of the pipeline (a training run, a scoring pass, an A3C agent, a data
collection): a module-level function with its arguments, the CPUs it uses, the files it reads and
the files or folders it writes. An executor runs a list of jobs and returns their results by name::

    from cswm_lib.executor import Job, get_executor

    jobs = [Job(f"baseline_s{s}", train_run, (cfg(s),), inputs=[dataset], outputs=[cfg(s).folder()])
            for s in (1, 2, 3)]
    results = get_executor("local:2").map(jobs)    # {"baseline_s1": ..., ...}

Executors, chosen by name (``executor:`` in a parameter file, ``--executor`` on
``python -m cswm_lib.book run``, ``make full EXECUTOR=...``):

``local``
    the default: the jobs run one after another in this process (nothing changes, no Ray import).
``local:N``
    up to N jobs at a time, each in its own (spawned) process with ONE torch thread. On a small
    machine this beats one job with N threads: measured here, 2 threads are ~1.45x faster than 1
    on the Shapes model, so two single-thread jobs give ~1.3x the throughput. ``local:auto`` = one
    process per CPU core. A job that asks for several CPUs (A3C: its worker count) takes that many
    of the N slots.
``ray``
    a Ray cluster (``RAY_ADDRESS`` names it as Ray does; without it a local Ray instance is
    started). See :class:`RayExecutor`: resources per job, datasets through the object store,
    results copied back into the driver's folders, retries.

Whatever the executor, a failing job is reported as ONE line naming its run (the traceback goes
to ``<checkpoints>/failed/<run>.log``), the other jobs run to the end and keep their results, and
:meth:`Executor.map` then raises :class:`JobsFailed` (a :class:`~cswm_lib.CswmError`) listing the failures.
The same job gives bit-identical results in this process (with the same number of torch threads),
in a ``local:N`` process and on a Ray worker (tests/test_executor.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import multiprocessing as mp
import os
import re
import shutil
import tarfile
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import wait as wait_any
from pathlib import Path
from typing import Any

from cswm_lib.errors import CswmError
from cswm_lib.utils import checkpoints_dir

#: Executor names :func:`get_executor` knows (``local:N`` is ``local`` with N processes).
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
    (options of :class:`RayExecutor`) -> ``{"name": ..., **options}``; ``None`` reads ``CSWM_EXECUTOR``
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


def get_executor(spec: str | dict[str, Any] | Executor | None = None) -> Executor:
    """The executor named by ``spec`` (see :func:`parse_executor`); an :class:`Executor` is returned as is.
    Only ``ray`` imports Ray."""
    if isinstance(spec, Executor):
        return spec
    options = parse_executor(spec)
    name = options.pop("name")
    if name == "ray":
        return RayExecutor(**options)
    workers = int(options.pop("workers", 1))
    return Executor(**options) if workers == 1 else ProcessExecutor(workers, **options)


def capture_output(path: Path) -> contextlib.ExitStack:
    """Send this process's Python-level stdout and stderr to ``path`` (appended) inside a ``with``."""
    stack = contextlib.ExitStack()
    path.parent.mkdir(parents=True, exist_ok=True)
    log = stack.enter_context(open(path, "a"))  # noqa: SIM115
    stack.enter_context(contextlib.redirect_stdout(log))
    stack.enter_context(contextlib.redirect_stderr(log))
    return stack


# ------------------------------------------------------------------------------------------------ ray


class RayExecutor(Executor):
    """Jobs as Ray tasks on a cluster (``RAY_ADDRESS``, or ``address``; none: a local Ray instance).

    - **Resources**: a job that can use a GPU asks for 1 GPU when the cluster has any GPU, else for
      ``cpus_per_job`` CPUs; a job with its own ``cpus`` (A3C: its worker count) asks for those
      (capped at the largest node, with a note). The task runs with as many torch threads as CPUs.
    - **Data**: the files a job reads (``Job.inputs``) go through Ray's object store once per file
      and are cached on each node (``<tmp>/cswm-ray/inputs``), or, with ``shared_path`` (a folder
      every node mounts at the same path), are copied there once and read in place.
    - **Results**: a job writes into a node-local scratch copy of its ``outputs``, seeded with the
      driver's current contents (so a half-finished run resumes); the finished outputs and the job's
      log (``job.log``) come back into the driver's folders. A retried attempt on the same node
      continues from that node's scratch copy.
    - **Failures**: a worker that dies (a crash, a lost node) is retried ``max_retries`` times by
      Ray; an exception in the job is not retried (it would fail again) and, like a job that
      exhausted its retries, is reported in one line naming the run, the others running on.
    """

    name = "ray"

    def __init__(self, address: str | None = None, cpus_per_job: int = 1, max_retries: int = 2,
                 shared_path: str | None = None, progress: bool = True, init: dict[str, Any] | None = None):
        super().__init__(progress)
        self.address, self.cpus_per_job, self.max_retries = address, int(cpus_per_job), int(max_retries)
        self.shared_path = shared_path or os.environ.get("CSWM_SHARED_PATH") or None
        self.init = dict(init or {})

    def _ray(self) -> Any:
        try:
            import ray
        except ImportError:
            raise CswmError(
                "executor ray needs Ray: pip install -e \".[cluster]\" (or make full EXECUTOR=ray)"
            ) from None
        if not ray.is_initialized():
            kw = dict(self.init)
            address = self.address or os.environ.get("RAY_ADDRESS")
            if address:  # a cluster: ship this checkout's library with the job (nodes hold the deps)
                import cswm_lib

                kw.setdefault("runtime_env", {"py_modules": [str(Path(cswm_lib.__file__).parent)]})
            ray.init(address=address, **kw)
        return ray

    def _resources(self, ray: Any, job: Job, has_gpu: bool, largest: float) -> dict[str, Any]:
        if job.gpu and has_gpu and job.cpus is None:
            return {"num_gpus": 1, "num_cpus": 1}
        cpus = job.cpus or self.cpus_per_job
        if largest and cpus > largest:
            print(f"[ray] {job.name} asks for {cpus} CPUs; the largest node has {largest:g}: using that",
                  flush=True)
            cpus = int(largest)
        return {"num_cpus": cpus}

    def _ship_input(self, ray: Any, path: Path, cache: dict[str, Any]) -> tuple[str, str, Any]:
        key = _fingerprint(path)
        if key not in cache:
            if self.shared_path:
                target = Path(self.shared_path) / "inputs" / key / path.name
                if not target.exists():
                    _unpack(_pack(path), target)
                cache[key] = ("shared", str(target))
            else:
                cache[key] = ("ref", [ray.put(_pack(path))])
        return key, cache[key]

    def _run(self, jobs: list[Job], progress: Progress, results: dict, failures: dict) -> None:
        ray = self._ray()
        has_gpu = ray.cluster_resources().get("GPU", 0) >= 1
        largest = max((n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")), default=0)
        tracker = ray.remote(_Tracker).options(num_cpus=0).remote()
        task = ray.remote(_ray_task)
        cache: dict[str, Any] = {}
        pending: dict[Any, tuple[Job, float]] = {}
        for job in jobs:
            try:
                inputs = [(_aliases(p), *self._ship_input(ray, Path(p).resolve(), cache)) for p in job.inputs]
            except OSError as err:
                progress.failed += 1
                failures[job.name] = f"cannot send its input: {_describe(err)}"
                progress.say(f"FAILED {job.name}: {failures[job.name]}")
                continue
            outputs = [(_aliases(o), _pack(Path(o)) if Path(o).exists() else None) for o in job.outputs]
            res = self._resources(ray, job, has_gpu, largest)
            threads = int(res["num_cpus"])
            ref = task.options(max_retries=self.max_retries, retry_exceptions=False, **res).remote(
                job, inputs, outputs, threads, tracker)
            pending[ref] = (job, time.perf_counter())
        progress.say(f"submitted {len(pending)} jobs")
        seen: set[str] = set()
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=5.0)
                started = ray.get(tracker.started.remote())
                waiting = {job.name for job, _ in pending.values()}
                progress.running = len(waiting.intersection(started))
                for name in started:  # a job that began on a worker since the last look
                    if name not in seen and name in waiting:
                        seen.add(name)
                        progress.say(f"started {name}")
                for ref in ready:
                    job, t0 = pending.pop(ref)
                    try:
                        status, value, outs, log = ray.get(ref)
                    except Exception as err:  # the worker died on every attempt (or the task was lost)
                        status, value, outs, log = "died", (_ray_reason(err, self.max_retries), ""), [], ""
                    for driver_path, packed in zip(job.outputs, outs, strict=False):
                        if packed is not None:
                            _unpack(packed, Path(driver_path).resolve())
                    _write_log(job, log)
                    progress.running = len({j.name for j, _ in pending.values()}.intersection(started))
                    if status == "ok":
                        results[job.name] = value
                        progress.done += 1
                        progress.say(f"finished {job.name} in {time.perf_counter() - t0:.0f} s")
                    else:
                        progress.failed += 1
                        error, trace = value
                        failures[job.name] = record_failure(job.name, error, trace) if trace else error
                        progress.say(f"FAILED {job.name}: {failures[job.name]}")
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        finally:
            ray.kill(tracker)


def _aliases(path: str | os.PathLike) -> list[str]:
    """The forms a path may take in a job's arguments: as given and absolute (first)."""
    return list(dict.fromkeys([str(Path(path).resolve()), str(path), os.fspath(path)]))


def _ray_reason(err: BaseException, retries: int) -> str:
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return f"its Ray worker died ({retries} retries used): {type(err).__name__}: {first[:200]}"


class _Tracker:
    """A Ray actor (no CPU) the tasks tell when they start: the driver's 'running' count."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def start(self, name: str) -> None:
        self.names.add(name)

    def started(self) -> list[str]:
        return sorted(self.names)


def _fingerprint(path: Path) -> str:
    """A key that changes whenever the file (or any file of the folder) changes: path, sizes, mtimes."""
    h = hashlib.sha1(str(path).encode())
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(path) if f != path else ''}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:20]


def _pack(path: Path) -> tuple[str, bytes]:
    """A file's bytes, or a folder as an uncompressed tar (sorted, no owners): ``(kind, bytes)``."""
    if path.is_file():
        return "file", path.read_bytes()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for f in sorted(path.rglob("*")):
            if f.is_file() and not f.name.startswith("."):  # (dot files: temporaries of atomic writes)
                tar.add(f, arcname=str(f.relative_to(path)), recursive=False)
    return "dir", buf.getvalue()


def _unpack(packed: tuple[str, bytes], target: Path) -> None:
    """Write a :func:`_pack` result at ``target`` atomically (a folder replaces the old one)."""
    kind, data = packed
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        if kind == "file":
            (tmp / "f").write_bytes(data)
            os.replace(tmp / "f", target)
            return
        with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
            tar.extractall(tmp / "d", filter="data")
        (tmp / "d").mkdir(exist_ok=True)
        if target.exists():
            os.replace(target, tmp / "old")
        os.replace(tmp / "d", target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_log(job: Job, log: str) -> None:
    if not log:
        return
    folders = [Path(o) for o in job.outputs if Path(o).is_dir()]
    path = folders[0] / "job.log" if folders else checkpoints_dir() / "logs" / f"{_safe(job.name)}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fh.write(log)


def remap(obj: Any, mapping: dict[str, str]) -> Any:
    """``obj`` with every path string (str or Path, also inside tuples, lists, dicts and dataclasses)
    that equals a key of ``mapping`` or lies under it rewritten to the value (longest key wins)."""
    keys = sorted(mapping, key=len, reverse=True)

    def one(s: str) -> str:
        for k in keys:
            if s == k or s.startswith(k.rstrip(os.sep) + os.sep):
                return mapping[k] + s[len(k):]
        return s

    def walk(x: Any) -> Any:
        if isinstance(x, str):
            return one(x)
        if isinstance(x, Path):
            return Path(one(str(x)))
        if isinstance(x, (list, tuple)):
            return type(x)(walk(v) for v in x)
        if isinstance(x, dict):
            return {k: walk(v) for k, v in x.items()}
        if dataclasses.is_dataclass(x) and not isinstance(x, type):
            changes = {f.name: walk(getattr(x, f.name)) for f in dataclasses.fields(x) if f.init}
            return dataclasses.replace(x, **changes)
        return x

    return walk(obj)


def _scratch_root() -> Path:
    return Path(os.environ.get("CSWM_RAY_SCRATCH") or Path(tempfile.gettempdir()) / "cswm-ray")


def _ray_task(job: Job, inputs: list, outputs: list, threads: int, tracker: Any) -> tuple:
    """Body of a Ray task: fetch inputs into the node cache, seed the scratch outputs, run the job
    with its paths rewritten, return ``(status, value, packed outputs, log)``."""
    import ray
    import torch

    tracker.start.remote(job.name)
    root = _scratch_root()
    mapping: dict[str, str] = {}
    for names, key, (how, where) in inputs:
        local = Path(where) if how == "shared" else root / "inputs" / key / Path(names[0]).name
        if how == "shared" and not local.exists():
            raise CswmError(f"shared path {where} is not visible on this node (check shared_path)")
        if not local.exists():
            _unpack(ray.get(where[0]), local)
        mapping.update(dict.fromkeys(names, str(local)))
    run_dir = root / "runs" / hashlib.sha1(job.name.encode()).hexdigest()[:16]
    local_outputs = []
    for i, (names, packed) in enumerate(outputs):
        base = hashlib.sha1(packed[1] if packed else b"").hexdigest()
        parent = run_dir / str(i)
        local = parent / Path(names[0]).name
        marker = run_dir / f"{i}.base"
        if not (marker.is_file() and marker.read_text() == base):  # else: resume this node's copy
            shutil.rmtree(parent, ignore_errors=True)
            parent.mkdir(parents=True)
            if packed is not None:
                _unpack(packed, local)
            marker.write_text(base)
        for name in names:
            mapping[str(Path(name).parent)] = str(parent)
            mapping[name] = str(local)
        local_outputs.append(local)
    back = {}
    for k, v in mapping.items():
        back.setdefault(v, k)  # the absolute form comes first
    log_path = run_dir / "job.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = log_path.stat().st_size if log_path.exists() else 0
    torch.set_num_threads(max(1, threads))
    try:
        with capture_output(log_path):
            value = remap(job.fn(*remap(job.args, mapping), **remap(job.kwargs, mapping)), back)
        status, payload = "ok", value
    except Exception as err:
        status, payload = "error", (_describe(err), traceback.format_exc())
    packed_out = [_pack(p) if p.exists() else None for p in local_outputs]
    with open(log_path) as fh:
        fh.seek(start)
        log = fh.read()
    if status == "ok":  # the driver gets everything back; a failed run's copy stays for a retry here
        shutil.rmtree(run_dir, ignore_errors=True)
    return status, payload, packed_out, log


__all__ = [
    "EXECUTORS", "Executor", "Job", "JobsFailed", "ProcessExecutor", "Progress", "RayExecutor",
    "capture_output", "get_executor", "parse_executor", "record_failure", "remap",
]
