"""Provenance of a recorded run: which code, on which software and hardware, how long, under what load.

:func:`provenance` returns one plain dict that a results file carries beside its numbers (issue 19,
"Provenance in every record")::

    prov = provenance(executor="local:4", threads_per_run=1)
    with timed() as t:
        ...                       # the work
    record = {"results": ..., "wall_seconds": t["wall_s"], "provenance": prov}

Fields: ``commit`` (40 hex digits) and ``dirty`` from ``git`` in the project (both ``None``, with the
reason in ``git_note``, where there is no git or no repository), ``library_hash`` (sha256 over the
library's ``.py`` files, path and content), ``versions`` (python, torch, numpy, gymnasium, ale-py,
h5py; ``None`` for one not installed), ``cpu_model``, ``logical_cores``, ``threads_per_run``,
``executor``, ``cuda`` (device name, driver, memory, compute capability and CUDA version, or ``None``
without CUDA), ``load`` (1/5/15-minute load average). The host name is deliberately absent: pages
never name the machine that made them.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import os
import platform
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: Distributions whose versions every record names (import name differs for ale-py).
PACKAGES = ("torch", "numpy", "gymnasium", "ale-py", "h5py")
#: The keys :func:`provenance` always returns (a record check can require them).
FIELDS = ("commit", "dirty", "git_note", "library_hash", "versions", "cpu_model", "logical_cores",
          "threads_per_run", "executor", "cuda", "load")


def _git(root: Path, *args: str) -> str:
    """``git -C root args`` (its output); RuntimeError with git's last line when it fails,
    FileNotFoundError without git."""
    out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "git failed")
    return out.stdout


def git_state(root: str | Path | None = None) -> dict[str, Any]:
    """``{"commit", "dirty", "git_note"}`` of the repository holding ``root`` (default: the project).

    ``commit`` is the 40-hex HEAD and ``dirty`` whether tracked files differ from it (untracked files
    do not count); where git or the repository is missing both are ``None`` and ``git_note`` says why,
    unless ``CSWM_GIT_COMMIT`` (and ``CSWM_GIT_DIRTY``: 0/1) give them, as for a copy of the working
    tree without ``.git`` run on another machine (``git_note`` then says so; ``library_hash`` lets a
    reader check that the copy is that commit's code).
    """
    root = Path(root) if root is not None else Path(__file__).resolve().parent.parent
    try:
        commit = _git(root, "rev-parse", "HEAD").strip()
        dirty = bool(_git(root, "status", "--porcelain", "--untracked-files=no").strip())
    except FileNotFoundError:
        return _from_environment("git is not installed on this machine")
    except (RuntimeError, subprocess.TimeoutExpired) as err:
        return _from_environment(f"no git repository here ({err})")
    if not re.fullmatch(r"[0-9a-f]{40}", commit):
        return {"commit": None, "dirty": None, "git_note": f"unexpected HEAD {commit!r}"}
    return {"commit": commit, "dirty": dirty, "git_note": None}


def _from_environment(why: str) -> dict[str, Any]:
    commit = os.environ.get("CSWM_GIT_COMMIT", "").strip().lower()
    if not re.fullmatch(r"[0-9a-f]{40}", commit):
        return {"commit": None, "dirty": None, "git_note": why}
    dirty = {"0": False, "1": True}.get(os.environ.get("CSWM_GIT_DIRTY", "").strip())
    return {"commit": commit, "dirty": dirty,
            "git_note": f"{why}; commit from CSWM_GIT_COMMIT, dirty from CSWM_GIT_DIRTY "
                        "(set where the copy was made)"}


def library_hash(package_dir: str | Path | None = None) -> str:
    """sha256 (hex) over every ``.py`` file of the library (default: ``cswm_lib``), in path order,
    each as its path relative to the package and its bytes: any edit, new or renamed file changes it."""
    package_dir = Path(package_dir) if package_dir is not None else Path(__file__).resolve().parent
    h = hashlib.sha256()
    for f in sorted(package_dir.rglob("*.py")):
        if "__pycache__" in f.parts:
            continue
        rel = f.relative_to(package_dir).as_posix().encode()
        data = f.read_bytes()
        h.update(len(rel).to_bytes(8, "little") + rel + len(data).to_bytes(8, "little") + data)
    return h.hexdigest()


def versions() -> dict[str, str | None]:
    """Python and :data:`PACKAGES` versions (``None`` for a package that is not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def cpu_model() -> str | None:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or None


def cuda_info() -> dict[str, Any] | None:
    """The first CUDA device: ``name``, ``memory_gib``, ``capability``, ``cuda`` (the CUDA version torch
    was built with), ``driver`` (from ``nvidia-smi``, ``None`` where it is missing); ``None`` without
    CUDA."""
    import torch

    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    driver = None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
        driver = out.stdout.strip().splitlines()[0].strip() if out.returncode == 0 and out.stdout else None
    return {"name": props.name, "memory_gib": round(props.total_memory / 2**30, 1),
            "capability": f"{props.major}.{props.minor}", "cuda": torch.version.cuda, "driver": driver,
            "device_count": torch.cuda.device_count()}


def load_average() -> list[float] | None:
    """The 1, 5 and 15-minute load averages (``None`` where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def provenance(executor: str, threads_per_run: int | None = None,
               root: str | Path | None = None) -> dict[str, Any]:
    """Every field of :data:`FIELDS` for a run made through ``executor`` (e.g. ``"local:4"``) with
    ``threads_per_run`` torch threads per training process (default: this process's count)."""
    import torch

    return {
        **git_state(root),
        "library_hash": library_hash(),
        "versions": versions(),
        "cpu_model": cpu_model(),
        "logical_cores": os.cpu_count(),
        "threads_per_run": int(threads_per_run if threads_per_run is not None else torch.get_num_threads()),
        "executor": str(executor),
        "cuda": cuda_info(),
        "load": load_average(),
    }


def declaration(params_file: Path) -> dict[str, Any]:
    """What a record names of its declaration: the parameter file (relative to the project), the last
    commit that changed it and whether it differs from that commit ("declare, then run": budgets,
    seeds and rule are committed before the run that a verdict judges)."""
    from cswm_lib.utils import project_relative, project_root

    root = project_root()
    resolved = params_file.resolve()
    shown = project_relative(resolved, root) or resolved.name

    try:
        commit = _git(root, "log", "-1", "--format=%H", "--", str(params_file.resolve())).strip() or None
        dirty = bool(_git(root, "status", "--porcelain", "--", str(params_file.resolve())).strip())
    except (OSError, RuntimeError, subprocess.TimeoutExpired):  # no git, or not a repository
        commit, dirty = None, None
    return {"params": shown, "params_commit": commit, "params_dirty": dirty}


@contextlib.contextmanager
def timed() -> Iterator[dict[str, float]]:
    """Time a block: yields a dict whose ``wall_s`` (seconds, ``time.perf_counter``) is set when the
    block ends, also when it raises."""
    out: dict[str, float] = {"wall_s": float("nan")}
    t0 = time.perf_counter()
    try:
        yield out
    finally:
        out["wall_s"] = time.perf_counter() - t0
