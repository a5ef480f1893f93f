"""The ``ray`` executor on a local Ray instance with 2 CPUs: a tiny sweep (2 strategies x 2 seeds) gives
bit-identical weights and logs to the local executor, resumes a run the driver holds, and a job whose
worker dies is retried. (Budget: ~60 s on 2 cores, most of it ``ray.init``.)"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import pytest
import torch

ray = pytest.importorskip("ray", reason="the cluster extra (ray) is not installed")

from test_executor import NAMES, assert_same_runs, tiny_config  # noqa: E402
from tiny_worlds import tiny_episodes  # noqa: E402

from cswm_lib.data.hdf5 import save_episodes  # noqa: E402
from cswm_lib.executor import Job, JobsFailed, ProcessExecutor, RayExecutor, get_executor  # noqa: E402
from cswm_lib.experiments import train_run  # noqa: E402
from cswm_lib.train import read_log  # noqa: E402

# this module's helpers travel to the Ray workers by value (tests/ is not on their path)
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def loopback_only() -> None:
    """Keep the test's Ray instance on 127.0.0.1: by default a Ray head advertises (and serves on) the
    network interface's address, and ray.init turns a given 127.0.0.1 back into it, unless Ray is
    told that it runs no multi-machine cluster (as it assumes on macOS and Windows). That switch
    is an environment variable Ray reads on import (for the processes it starts) and a constant (for
    this one, where ray is already imported)."""
    import ray._private.ray_constants as ray_constants

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False


def start_ray() -> None:
    """``ray.init`` with 2 CPUs on loopback only (see :func:`loopback_only`); once more if it runs out
    of Ray's fixed 30 s wait for its raylet (seen on this 2-core machine at load average > 10), after
    removing what the failed start left running."""
    import psutil

    for attempt in (1, 2):
        try:
            loopback_only()
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
            return
        except Exception:
            ray.shutdown()
            for proc in psutil.Process().children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    cmd = " ".join(proc.cmdline())
                    if "/ray/" in cmd or cmd.startswith("ray::"):  # Ray's binaries, scripts and workers
                        proc.kill()
            if attempt == 2:
                raise


def test_the_test_cluster_listens_on_loopback_only(cluster):
    assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}
    assert ray.get_runtime_context().gcs_address.startswith("127.0.0.1:")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    os.environ["CSWM_RAY_SCRATCH"] = str(tmp_path_factory.mktemp("scratch"))
    start_ray()
    yield
    ray.shutdown()
    os.environ.pop("CSWM_RAY_SCRATCH", None)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return save_episodes(tiny_episodes(E=6, T=8, K=2, seed=0), tmp_path_factory.mktemp("data") / "tiny.h5")


def sweep(dataset, folder, epochs=2) -> list[Job]:
    jobs = []
    for label in ("baseline", "episodic"):
        for seed in (1, 2):
            cfg = tiny_config(dataset, folder, label, seed)
            cfg.epochs = epochs
            jobs.append(Job(f"tiny/{cfg.name}", train_run, (cfg,), inputs=[dataset], outputs=[cfg.folder()]))
    return jobs


def test_ray_sweep_is_bit_identical_to_local(cluster, dataset, tmp_path, capsys):
    local = ProcessExecutor(2, progress=False).map(sweep(dataset, tmp_path / "local"))
    # one run already half done on the driver: the Ray worker must resume it, not start over
    half = sweep(dataset, tmp_path / "ray", epochs=1)[0]
    ProcessExecutor(1, progress=False).map([half])
    first_epoch = read_log(tmp_path / "ray" / "baseline_s1")
    on_ray = get_executor("ray").map(sweep(dataset, tmp_path / "ray"), label="ray")
    assert list(on_ray) == list(local)
    assert on_ray["tiny/baseline_s1"] == tmp_path / "ray" / "baseline_s1"  # paths mapped back
    assert_same_runs(tmp_path / "local", tmp_path / "ray", NAMES)
    log = (tmp_path / "ray" / "baseline_s1" / "job.log").read_text()  # the job's output came back
    assert "trained baseline_s1" in log
    assert read_log(tmp_path / "ray" / "baseline_s1")[:1] == first_epoch  # resumed: epoch 1 kept as it was
    scratch = Path(os.environ["CSWM_RAY_SCRATCH"])
    assert list((scratch / "inputs").iterdir())  # the dataset reached the worker through the object store
    assert not list((scratch / "runs").iterdir())  # finished runs leave no scratch copy behind
    out = capsys.readouterr().out
    assert "[ray] 4/4 done, 0 running, 0 queued | finished tiny/" in out
    assert "queued | started tiny/" in out  # a line when a job begins on a worker


def crash_once(marker: str) -> str:
    """Kill this worker process on the first attempt (the marker file remembers it), succeed after."""
    if not Path(marker).exists():
        Path(marker).touch()
        os._exit(1)
    return "second attempt"


def always_crash() -> None:
    os._exit(1)


def raises() -> None:
    raise ValueError("bad value")


def test_a_killed_worker_is_retried_and_failures_are_one_line(cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("CSWM_CHECKPOINTS", str(tmp_path))
    jobs = [
        Job("crashes once", crash_once, (str(tmp_path / "marker"),)),
        Job("always crashes", always_crash),
        Job("raises", raises),
        Job("fine", sorted, ([2, 1],)),
    ]
    with pytest.raises(JobsFailed) as info:
        RayExecutor(max_retries=1, progress=False).map(jobs)
    err = info.value
    assert err.results == {"crashes once": "second attempt", "fine": [1, 2]}
    assert sorted(err.failures) == ["always crashes", "raises"]
    assert err.failures["always crashes"].startswith("its Ray worker died (1 retries used)")
    assert err.failures["raises"].startswith("ValueError: bad value (traceback in ")
    assert "\n" not in str(err)


def where_and_what(path: str) -> tuple:
    """The folder this job read ``path`` from, its text, its CPUs on Ray and its torch threads."""
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
    return os.path.dirname(path), Path(path).read_text(), cpus, torch.get_num_threads()


def test_resources_and_a_shared_path(cluster, tmp_path):
    """A job gets the CPUs it asks for (and as many torch threads); with ``shared_path`` its input is
    copied there once and read in place (not through the object store)."""
    src = tmp_path / "data" / "in.txt"
    src.parent.mkdir()
    src.write_text("hello")
    shared = tmp_path / "shared"
    jobs = [Job("one cpu", where_and_what, (str(src),), inputs=[src]),
            Job("two cpus", where_and_what, (str(src),), cpus=2, inputs=[src])]
    out = RayExecutor(shared_path=str(shared), progress=False).map(jobs)
    (copy,) = shared.glob("inputs/*/in.txt")
    assert out["one cpu"] == (str(copy.parent), "hello", 1.0, 1)
    assert out["two cpus"] == (str(copy.parent), "hello", 2.0, 2)


def test_remap_rewrites_paths_inside_configs(dataset, tmp_path):
    from cswm_lib.executor import remap

    cfg = tiny_config(dataset, tmp_path / "ck", "baseline", 1)
    moved = remap(cfg, {str(tmp_path / "ck"): "/scratch/0", str(dataset): "/cache/tiny.h5"})
    assert (moved.save_folder, moved.dataset, moved.name) == ("/scratch/0", "/cache/tiny.h5", "baseline_s1")
    assert remap([Path(tmp_path / "ck" / "x")], {str(tmp_path / "ck"): "/s"}) == [Path("/s/x")]
    assert remap(str(tmp_path / "ckpt"), {str(tmp_path / "ck"): "/s"}) == str(tmp_path / "ckpt")
    assert torch.equal(remap(torch.ones(1), {}), torch.ones(1))
