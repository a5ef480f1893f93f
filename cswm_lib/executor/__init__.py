"""Run the pipeline's independent jobs: one after another, in N local processes, or on a Ray cluster.

A :class:`~cswm_lib.executor.local.Job` is one run of the pipeline (a training run, a scoring pass,
an A3C agent, a data collection): a module-level function with its arguments, the CPUs it uses,
the files it reads and the files or folders it writes. An executor runs a list of jobs and returns
their results by name::

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
    started). See :class:`~cswm_lib.executor.ray_cluster.RayExecutor`: resources per job, datasets through
    the object store,
    results copied back into the driver's folders, retries.

Whatever the executor, a failing job is reported as ONE line naming its run (the traceback goes
to ``<checkpoints>/failed/<run>.log``), the other jobs run to the end and keep their results, and
:meth:`~cswm_lib.executor.local.Executor.map` then raises :class:`~cswm_lib.executor.local.JobsFailed` (a
:class:`~cswm_lib.CswmError`) listing the failures.
The same job gives bit-identical results in this process (with the same number of torch threads),
in a ``local:N`` process and on a Ray worker (tests/test_executor.py).
"""

from __future__ import annotations

from typing import Any

from cswm_lib.executor.local import (
    EXECUTORS,
    Executor,
    Job,
    JobsFailed,
    ProcessExecutor,
    Progress,
    capture_output,
    parse_executor,
    record_failure,
)
from cswm_lib.executor.ray_cluster import RayExecutor, remap


def get_executor(spec: str | dict[str, Any] | Executor | None = None) -> Executor:
    """The executor named by ``spec`` (see :func:`~cswm_lib.executor.local.parse_executor`); an
    :class:`~cswm_lib.executor.local.Executor` is returned as is.
    Only ``ray`` imports Ray."""
    if isinstance(spec, Executor):
        return spec
    options = parse_executor(spec)
    name = options.pop("name")
    if name == "ray":
        return RayExecutor(**options)
    workers = int(options.pop("workers", 1))
    return Executor(**options) if workers == 1 else ProcessExecutor(workers, **options)


__all__ = [
    "EXECUTORS", "Executor", "Job", "JobsFailed", "ProcessExecutor", "Progress", "RayExecutor",
    "capture_output", "get_executor", "parse_executor", "record_failure", "remap",
]
