"""The ``ray`` executor: :class:`RayExecutor` runs the jobs on a Ray cluster (resources per job,
datasets through the object store, results copied back into the driver's folders, retries). Ray is
imported only when a job runs."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import shutil
import tarfile
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from cswm_lib.errors import CswmError
from cswm_lib.executor.local import (
    Executor,
    Job,
    Progress,
    _describe,
    _safe,
    capture_output,
    record_failure,
)
from cswm_lib.utils import checkpoints_dir


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
