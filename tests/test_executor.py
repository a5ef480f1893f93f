"""The local executors: same results in this process and in single-thread worker processes, one line
per failed run without losing the others, executor names. (Budget: ~10 s on 2 cores.)"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from tiny_worlds import tiny_episodes

from cswm_lib.data.hdf5 import save_episodes
from cswm_lib.errors import CswmError
from cswm_lib.executor import (
    Executor,
    Job,
    JobsFailed,
    ProcessExecutor,
    get_executor,
    parse_executor,
)
from cswm_lib.experiments import strategy_config
from cswm_lib.train import TrainConfig, read_log, train
from cswm_lib.utils import torch_threads


def tiny_config(dataset, folder, strategy: str, seed: int) -> TrainConfig:
    return TrainConfig(dataset=str(dataset), name=f"{strategy}_s{seed}", save_folder=str(folder), epochs=2,
                       batch_size=16, hidden_dim=16, num_objects=2, action_dim=4, seed=seed, progress=False,
                       device="cpu", **strategy_config(strategy, {}))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return save_episodes(tiny_episodes(E=6, T=8, K=2, seed=0), tmp_path_factory.mktemp("data") / "tiny.h5")


def sweep(dataset, folder) -> list[Job]:
    """2 strategies x 2 seeds, 2 epochs of 3 updates each."""
    jobs = []
    for label in ("baseline", "episodic"):
        for seed in (1, 2):
            cfg = tiny_config(dataset, folder, label, seed)
            jobs.append(Job(f"tiny/{cfg.name}", train, (cfg,), inputs=[dataset], outputs=[cfg.folder()]))
    return jobs


def weights(folder) -> dict[str, torch.Tensor]:
    return torch.load(folder / "model.pt", weights_only=True)


def assert_same_runs(a, b, names) -> None:
    for name in names:
        wa, wb = weights(a / name), weights(b / name)
        assert wa.keys() == wb.keys()
        assert all(torch.equal(wa[k], wb[k]) for k in wa), name
        la, lb = read_log(a / name), read_log(b / name)
        assert [(r["loss"], r["pos"], r["neg"]) for r in la] == [(r["loss"], r["pos"], r["neg"]) for r in lb]


NAMES = ["baseline_s1", "baseline_s2", "episodic_s1", "episodic_s2"]


def test_processes_match_in_process_bit_for_bit(dataset, tmp_path, capsys):
    with torch_threads(1):
        inline = Executor().map(sweep(dataset, tmp_path / "inline"), label="inline")
    parallel = ProcessExecutor(2).map(sweep(dataset, tmp_path / "procs"), label="procs")
    assert list(parallel) == [f"tiny/{n}" for n in NAMES]
    assert parallel["tiny/baseline_s1"] == tmp_path / "procs" / "baseline_s1"
    assert_same_runs(tmp_path / "inline", tmp_path / "procs", NAMES)
    assert inline.keys() == parallel.keys()
    # different seeds really train different models (the comparison above could not pass by accident)
    assert not torch.equal(weights(tmp_path / "procs" / "baseline_s1")["obj_encoder.fc1.weight"],
                           weights(tmp_path / "procs" / "baseline_s2")["obj_encoder.fc1.weight"])
    out = capsys.readouterr().out
    assert "[procs] 4/4 done, 0 running, 0 queued | finished tiny/" in out
    assert "[procs] 0/4 done, 2 running, 2 queued | started tiny/baseline_s2" in out


@pytest.mark.parametrize("executor", ["local", "local:2"])
def test_a_failed_run_is_one_line_and_the_others_finish(dataset, tmp_path, executor, capsys, monkeypatch):
    monkeypatch.setenv("CSWM_CHECKPOINTS", str(tmp_path / "ckpt"))
    jobs = sweep(dataset, tmp_path)[:2]
    bad = tiny_config(tmp_path / "missing.h5", tmp_path, "baseline", 3)
    jobs.insert(1, Job("tiny/broken", train, (bad,)))
    with pytest.raises(JobsFailed) as info:
        get_executor(executor).map(jobs, label="sweep")
    err = info.value
    assert list(err.failures) == ["tiny/broken"]
    assert str(err).startswith("1 of 3 runs failed (tiny/broken: dataset not found: ")
    assert "\n" not in str(err)
    assert sorted(err.results) == ["tiny/baseline_s1", "tiny/baseline_s2"]
    for name in ("baseline_s1", "baseline_s2"):
        assert len(read_log(tmp_path / name)) == 2
    assert (tmp_path / "ckpt" / "failed" / "tiny_broken.log").read_text().startswith("run: tiny/broken\n")
    failed = [line for line in capsys.readouterr().out.splitlines() if "FAILED" in line]
    assert len(failed) == 1 and "tiny/broken: dataset not found" in failed[0]


def test_a_dying_process_is_reported_not_hung(tmp_path, monkeypatch):
    monkeypatch.setenv("CSWM_CHECKPOINTS", str(tmp_path))
    jobs = [Job("dies", sys.exit, (3,)), Job("fine", sorted, ([3, 1, 2],))]
    with pytest.raises(JobsFailed) as info:
        ProcessExecutor(2, progress=False).map(jobs)
    assert info.value.results == {"fine": [1, 2, 3]}
    assert "dies" in info.value.failures


def test_executor_names():
    assert parse_executor("local") == {"name": "local"}
    assert parse_executor("local:3") == {"name": "local", "workers": 3}
    assert parse_executor({"name": "ray", "cpus_per_job": 4}) == {"name": "ray", "cpus_per_job": 4}
    assert isinstance(get_executor("local:1"), Executor) and get_executor("local:2").workers == 2
    for bad in ("dask", "local:0", "local:x", "ray:2"):
        with pytest.raises(CswmError, match="executor"):
            parse_executor(bad)
    with pytest.raises(CswmError, match="two jobs are named"):
        Executor().map([Job("a", sorted, ([],)), Job("a", sorted, ([],))])


def test_ray_resources_per_job():
    """1 GPU for a GPU-capable job when the cluster has one, else ``cpus_per_job`` CPUs; a job with its
    own CPU count (A3C: its workers) asks for those, capped at the largest node. (No Ray needed.)"""
    from cswm_lib.executor import RayExecutor

    ex, run, a3c = RayExecutor(cpus_per_job=3, progress=False), Job("run", sorted), Job("a3c", sorted, cpus=4)
    assert ex._resources(None, run, has_gpu=True, largest=8) == {"num_gpus": 1, "num_cpus": 1}
    assert ex._resources(None, run, has_gpu=False, largest=8) == {"num_cpus": 3}
    assert ex._resources(None, Job("cpu only", sorted, gpu=False), has_gpu=True, largest=8) == {"num_cpus": 3}
    assert ex._resources(None, a3c, has_gpu=True, largest=8) == {"num_cpus": 4}
    assert ex._resources(None, a3c, has_gpu=False, largest=2) == {"num_cpus": 2}


def test_the_local_path_never_imports_ray(dataset, tmp_path):
    """The default commands neither import nor need Ray: a local sweep in a fresh interpreter."""
    code = (
        "import sys, cswm_lib.executor as ex, cswm_lib.experiments, cswm_lib.book\n"
        "from cswm_lib.train import TrainConfig, train\n"
        f"cfg = TrainConfig(dataset={str(dataset)!r}, save_folder={str(tmp_path)!r}, epochs=1, batch_size=16,"
        " hidden_dim=16, num_objects=2, action_dim=4, progress=False, device='cpu')\n"
        "ex.get_executor('local:2').map([ex.Job('a', train, (cfg,))], label='t')\n"
        "assert 'ray' not in sys.modules, 'ray was imported'\n"
        "print('no ray')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "no ray" in out.stdout


def test_book_runner_passes_the_executor_to_chapters_that_declare_it(tmp_path):
    from cswm_lib.book import chapter_params, run
    from cswm_lib.utils import project_root

    chapters = project_root() / "book" / "chapters"
    spec = {"scale": "cpu", "defaults": {"executor": "local"}, "chapters": {}}
    assert chapter_params(spec, chapters / "08_immovable.py", "local:2")["executor"] == "local:2"
    assert chapter_params(spec, chapters / "08_immovable.py")["executor"] == "local"
    assert "executor" not in chapter_params(spec, chapters / "04_model.py", "ray")
    params = tmp_path / "p.yaml"
    params.write_text("scale: cpu\n")
    with pytest.raises(CswmError, match="unknown executor 'slurm'"):
        run(params, tmp_path / "out", ["04_model"], executor="slurm")


def test_progress_lines_fit_the_book_column():
    from cswm_lib.executor import Progress

    p = Progress(4, "procs")
    p.running = 2
    line = p.line("started tiny/baseline_s2")
    assert line == "[procs] 0/4 done, 2 running, 2 queued | started tiny/baseline_s2"
    long = "started score 4.3_pong_a3c_train_6ep_eps_0_5_u20_f65bf833/episodic+out-of-episode_s0"
    lines = p.line(long).split("\n")
    assert lines[0] == "[procs] 0/4 done, 2 running, 2 queued"
    assert all(len(x) <= 80 for x in lines)
    assert "".join(x.removeprefix("    ") for x in lines[1:]) == long  # nothing lost, folded after "/"


def _alive(proc) -> bool:
    """Still computing: a process that exists and is not a zombie."""
    import psutil

    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


KILLED_PARENTS = {
    "local:1 executor worker": "from cswm_lib.executor import Job, ProcessExecutor\n"
    "ProcessExecutor(1, progress=False).map([Job('sleep', time.sleep, (120,))])",
    "generation worker (process_map)": "from cswm_lib.utils import process_map\n"
    "list(process_map(time.sleep, [120, 120], 2))",
    "A3C training worker": "import tempfile\nfrom cswm_lib.a3c.train import A3CConfig, train\n"
    "train(A3CConfig(env_id='CartPole-v1', num_workers=2, max_frames=10**9, start_method='fork', "
    "folder=tempfile.mkdtemp(), progress=False))",
}


@pytest.mark.skipif(sys.platform != "linux", reason="the kernel's parent-death signal is Linux's")
@pytest.mark.parametrize("name", KILLED_PARENTS)
def test_workers_end_when_their_parent_is_killed(name):
    """A runner killed without cleanup (SIGKILL here; SIGTERM or the OOM killer alike) must not leave
    its worker processes computing."""
    import signal
    import subprocess
    import time

    import psutil

    parent = subprocess.Popen([sys.executable, "-c", "import time\n" + KILLED_PARENTS[name]])
    kids: list = []
    try:
        end = time.monotonic() + 60
        while not kids and time.monotonic() < end:
            time.sleep(0.1)
            kids = [p for p in psutil.Process(parent.pid).children()
                    if "resource_tracker" not in " ".join(p.cmdline())]
        assert kids, "no worker process started"
        time.sleep(1.0)  # past the worker's start-up
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        end = time.monotonic() + 15
        while any(map(_alive, kids)) and time.monotonic() < end:
            time.sleep(0.1)
        assert not any(map(_alive, kids)), f"workers {kids} still running after their parent was killed"
    finally:
        parent.kill()
        for proc in kids:
            if _alive(proc):
                proc.kill()
