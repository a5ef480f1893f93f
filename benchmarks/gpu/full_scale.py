"""The paper's 4.2 and 4.1 at full scale on one GPU, in one call (issue 22); ``--tiny``: the same on a CPU.

Run through ``bash benchmarks/gpu/run.sh OUT_DIR [--tiny]`` (which installs what is missing first; see
README.md beside this file). Parts, in this order, each printed with its estimate before anything runs:

1. environment: versions, GPU, driver and memory (:mod:`cswm_lib.provenance`);
2. the device tests (``tests/test_cuda.py``, ``tests/test_provenance.py``) under pytest;
3. one training step on the device against the CPU, float64 and float32: relative errors of the loss
   and the gradients, failing above ``device_checks.TOLERANCE``;
4. training throughput at batch 1024, ours against the original's approach (``benchmarks/bench_train.py``),
   interleaved rounds in this process, the device named beside every number (``device_checks.py``);
5. data (the README files, plus a 1000-episode eval set per game for 4.2), on every core;
6. training waves through :mod:`cswm_lib.experiments` with the ``full`` parameters of chapters 09 and
   08 (``book/params/full.yaml``, specs built as the chapters build them): 4.2's first seed (the
   params' seed, 42), then 4.1 Shapes', then further seeds of both while the measured time of a wave
   fits the budget, then Cubes if its estimate fits. After every wave each chapter's record is
   rewritten, atomically, under ``OUT_DIR/results/<scale>/<chapter>.json``: today's results format
   plus ``provenance`` (``records.py``).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import os
import subprocess
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))  # device_checks, records
from device_checks import T0, check_steps, encoder_rates, say, throughput  # noqa: E402
from records import Recorder, keep_models, write_json_atomic  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

#: Chapter -> (parameter section, worlds of the chapter in priority order).
CHAPTERS = {"09_atari_time_aligned": ["Pong", "Space Invaders"],
            "08_immovable": ["Shapes immovable", "Cubes immovable"]}
TINY = dict(num_updates=4, eval_every=2, batch_size=16, hidden_dim=32, eval_episodes=20)


# ------------------------------------------------------------------ the chapters' own declarations
def chapter_defaults(chapter: str) -> dict[str, Any]:
    """The chapter's ``parameters`` cell (its small defaults) as values: every literal assignment
    between ``# %% tags=["parameters"]`` and the next cell."""
    text = (ROOT / "book" / "chapters" / f"{chapter}.py").read_text()
    cell = text.split('# %% tags=["parameters"]', 1)[1].split("\n# %%", 1)[0]
    return {t.id: ast.literal_eval(node.value) for node in ast.parse(cell).body
            if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)}


def chapter_claim(chapter: str) -> Any:
    """The declared claim (:class:`cswm_lib.verdict.Claim`) the chapter's Verdict section judges
    (the one of :data:`cswm_lib.verdict.CLAIMS` whose ``chapter`` it is)."""
    from cswm_lib.verdict import CLAIMS

    return next(claim for claim in CLAIMS.values() if claim.chapter == chapter)


def chapter_params(chapter: str, tiny: bool) -> tuple[str, dict[str, Any]]:
    """(scale, parameters) of a chapter: ``book/params/full.yaml``'s section, or with ``tiny`` the
    chapter's small defaults shrunk by :data:`TINY`."""
    if not tiny:
        spec = yaml.safe_load((ROOT / "book" / "params" / "full.yaml").read_text())
        return spec["scale"], dict(spec["chapters"][chapter])
    p = chapter_defaults(chapter)
    for world in ("shapes", "cubes"):
        if world in p:
            p[world] = {**p[world], **{k: v for k, v in TINY.items() if k in p[world]}}
    p.update({k: v for k, v in TINY.items() if k in p})
    p["seeds"] = p["seeds"][:1]
    return "tiny", p


def build_specs(chapter: str, p: dict[str, Any], scale: str) -> dict[str, Any]:
    """The chapter's :class:`~cswm_lib.experiments.Experiment` per world, as the chapter builds them:
    the parameters that are Experiment fields, the README model with the chapter's ``hidden_dim``."""
    from cswm_lib import experiments as ex

    fields = {f.name for f in dataclasses.fields(ex.Experiment)}
    common = {k: v for k, v in p.items() if k in fields}
    common.update(scale=scale, device=None)
    if chapter == "09_atari_time_aligned":
        worlds = {"Pong": ("pong", {}), "Space Invaders": ("spaceinvaders", {})}
        section = "4.2"
    else:
        worlds = {f"{w.capitalize()} immovable": (w, p[w]) for w in ("shapes", "cubes")}
        section = "4.1"
    return {name: ex.Experiment(
        experiment=section, dataset=name, train_data=f"{w}_train" if section == "4.2" else f"{w}_imm_train",
        eval_data=f"{w}_eval" if section == "4.2" else f"{w}_imm_eval",
        model=ex.readme_model(w, hidden_dim=p["hidden_dim"]), **{**common, **budget})
        for name, (w, budget) in worlds.items()}


# ------------------------------------------------------------------ 5-6. data, plan, waves
def ensure_data(spec: Any, workers: int) -> tuple[Path, Path]:
    from cswm_lib.data.generate import readme_dataset

    kw = dict(min_episodes=spec.min_episodes, progress=False, num_workers=workers)
    return (readme_dataset(spec.train_data, spec.train_divisor, **kw),
            readme_dataset(spec.eval_data, spec.eval_divisor, **kw))


def data_process(spec: Any, workers: int) -> subprocess.Popen:
    """:func:`ensure_data` in a process of its own (started now, waited for later): it forks its
    generation workers from a fresh process, not from this one, which holds CUDA and threads."""
    code = ("import sys; from cswm_lib.data.generate import readme_dataset\n"
            "for a in sys.argv[1:]:\n"
            "    name, div, low, w = a.split(',')\n"
            "    readme_dataset(name, int(div), min_episodes=int(low), progress=False, num_workers=int(w))")
    files = [f"{spec.train_data},{spec.train_divisor},{spec.min_episodes},{workers}",
             f"{spec.eval_data},{spec.eval_divisor},{spec.min_episodes},{workers}"]
    return subprocess.Popen([sys.executable, "-c", code, *files], cwd=ROOT)


def wait_for(proc: subprocess.Popen) -> None:
    if proc.wait() != 0:
        raise RuntimeError(f"data generation failed (exit {proc.returncode})")


def big_eval(spec: Any, episodes: int, workers: int) -> Path:
    """A larger eval set generated as the README's (same env and seed: its first episodes are the
    README set's)."""
    from cswm_lib.data.generate import README_DATASETS, ensure_dataset
    from cswm_lib.utils import data_dir

    kw = {**README_DATASETS[spec.eval_data], "num_episodes": episodes}
    return ensure_dataset(fname=data_dir() / f"{spec.eval_data}_{episodes}.h5", progress=False,
                          num_workers=workers, **kw)


def run_seconds(spec: Any, label: str, rates: dict[str, float], n_train: int) -> float:
    """Estimated seconds of one run: counted FLOPs per update (cost.update_cost) over the encoder's
    measured rate, x updates, plus 10 % for curve points and 5 s to start."""
    from cswm_lib.cost import OBS_SHAPE, update_cost
    from cswm_lib.train import TrainConfig, total_updates

    shape = OBS_SHAPE["atari" if spec.model.get("copy_action") else "block_pushing"]
    flops = update_cost(spec.model, spec.strategies[label], shape, batch=2, repeats=1)["flops"] / 2
    updates = total_updates(TrainConfig(**{**spec.model, **spec.strategies[label]}, epochs=spec.epochs,
                                        num_updates=spec.num_updates, batch_size=spec.batch_size), n_train)
    return 1.1 * updates * flops * spec.batch_size / rates[spec.model["encoder"]] + 5.0


def origin(cfg: Any) -> str:
    from cswm_lib.experiments import _finished

    return "reused" if _finished(cfg) else "resumed" if (cfg.folder() / "state.pt").exists() else "trained"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--tiny", action="store_true", help="tiny scale on any device (CI)")
    p.add_argument("--budget", type=float, default=None, help="seconds from the start (default 530; tiny 75)")
    p.add_argument("--work", type=Path, default=None, help="data and checkpoints (default: a temp folder)")
    p.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    p.add_argument("--processes", type=int, default=None,
                   help="training processes per wave (default 6; tiny 2)")
    p.add_argument("--max-seeds", type=int, default=None,
                   help="seeds per strategy at most (default 5; tiny 2)")
    p.add_argument("--big-eval", type=int, default=None, help="episodes of the larger 4.2 eval set (1000)")
    p.add_argument("--cores", type=int, default=None,
                   help="cores for data generation (default: all; with --plan-only: the GPU machine's 16)")
    p.add_argument("--plan-only", action="store_true",
                   help="print the plan (a GPU at cost.py's assumed rate) and stop; needs no GPU")
    p.add_argument("--sequential", action="store_true",
                   help="one group's wave at a time (default: 4.2 and 4.1 Shapes waves run at once)")
    p.add_argument("--skip", nargs="*", default=[], choices=["tests", "steps", "throughput", "cubes"])
    a = p.parse_args(argv)
    a.budget = a.budget or (75.0 if a.tiny else 530.0)
    a.processes = a.processes or (2 if a.tiny else 6)
    a.max_seeds = a.max_seeds or (2 if a.tiny else 5)
    a.big_eval = a.big_eval or (40 if a.tiny else 1000)
    return a


def readme_transitions(name: str, divisor: int, min_episodes: int) -> tuple[int, int]:
    """(episodes, transitions) of a README dataset at ``divisor``, as ``readme_dataset`` sizes it."""
    from cswm_lib.data.generate import ATARI_STEPS, README_DATASETS

    spec = README_DATASETS[name]
    e = min(spec["num_episodes"], max(min_episodes, spec["num_episodes"] // int(divisor)))
    steps = ATARI_STEPS if spec.get("atari") else (100 if "Train" in spec["env_id"] else 10)
    return e, e * steps


def data_seconds(specs: list[Any], big: int, workers: int) -> float:
    """Estimated generation time of the specs' data: env steps (Atari: 60 warm-up steps per episode)
    at the rates of benchmarks/README.md (Atari 1,600, Shapes 33,000, Cubes 11,000 steps/s per
    core) on ``workers`` cores, plus writing (one gzip stream) at ~150 MB/s of raw frames."""
    total = 0.0
    for spec in specs:
        atari = spec.experiment == "4.2"
        files = [(spec.train_data, spec.train_divisor), (spec.eval_data, spec.eval_divisor)]
        for name, div in files:
            e, n = readme_transitions(name, div, spec.min_episodes)
            rate = 1600 if atari else 11000 if name.startswith("cubes") else 33000
            frames = e * (11 if atari else 101 if "train" in name else 11)
            total += (n + (60 * e if atari else 0)) / (rate * workers)
            total += frames * (6 if atari else 3) * 2500 / 150e6
        if atari:
            total += big * 70 / (1600 * workers) + big * 11 * 6 * 2500 / 150e6
    return total


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    out = a.out.resolve()
    work = (a.work or Path(os.environ.get("TMPDIR", "/tmp")) / "cswm-gpu-work").resolve()
    os.environ.update(CSWM_DATA=str(work / "data"), CSWM_CHECKPOINTS=str(work / "checkpoints"))
    os.chdir(ROOT)
    from cswm_lib import experiments as ex
    from cswm_lib.executor import get_executor
    from cswm_lib.provenance import provenance
    from cswm_lib.utils import get_device

    device = str(get_device(a.device))
    cuda = device.startswith("cuda") or a.plan_only
    deadline = T0 + a.budget
    # data generation: tiny needs no worker processes; a plan is made for the GPU machine's 16 cores
    workers = a.cores or (1 if a.tiny else 16 if a.plan_only else os.cpu_count() or 1)
    prov = provenance(executor=f"local:{a.processes}", threads_per_run=1)
    gpu = prov["cuda"]["name"] if prov["cuda"] and cuda else f"CPU ({prov['cpu_model']})"
    # 1. environment
    say(f"versions {prov['versions']}; commit {prov['commit']} dirty {prov['dirty']} "
        f"{prov['git_note'] or ''}")
    say(f"device {device}: {gpu}; CUDA {json.dumps(prov['cuda'])}; {os.cpu_count()} cores; "
        f"load {prov['load']}")
    checks: dict[str, Any] = {"device": gpu, "provenance": prov}
    failed: list[str] = []
    # the plan, before anything runs: the runs' FLOPs at an assumed rate (cost.py's 60 TFLOP/s x 30 %
    # on a GPU), replaced by the rates measured in part 4
    specs, params, n_train = {}, {}, {}
    for chapter in CHAPTERS:
        scale, params[chapter] = chapter_params(chapter, a.tiny)
        specs[chapter] = build_specs(chapter, params[chapter], scale)
        for name, spec in specs[chapter].items():
            n_train[name] = readme_transitions(spec.train_data, spec.train_divisor, spec.min_episodes)[1]
    groups = [("4.2", [("09_atari_time_aligned", n) for n in CHAPTERS["09_atari_time_aligned"]]),
              ("4.1 Shapes", [("08_immovable", "Shapes immovable")])]
    cubes = ("4.1 Cubes", [("08_immovable", "Cubes immovable")])
    seeds = {g: list(params[grp[0][0]]["seeds"]) for g, grp in (*groups, cubes)}
    for g in seeds:
        while len(seeds[g]) < a.max_seeds:
            seeds[g].append(seeds[g][-1] + 1)
    rates = dict.fromkeys(("small", "medium", "large"), 18e12 if cuda else 2e10)

    def estimate(group: list[tuple[str, str]]) -> float:
        jobs = [run_seconds(specs[c][n], lab, rates, n_train[n]) for c, n in group
                for lab in specs[c][n].strategies]
        parallel = 1 if cuda else min(a.processes, workers, len(jobs))
        return sum(jobs) / parallel + (10.0 if cuda else 5.0)  # + scoring

    fixed = {"tests": 30.0, "steps": 20.0, "throughput": 60.0} if cuda else \
        {"tests": 10.0, "steps": 3.0, "throughput": 8.0}
    fixed = {k: v for k, v in fixed.items() if k not in a.skip}
    fixed["data (4.2)"] = data_seconds(list(specs["09_atari_time_aligned"].values()), a.big_eval, workers)

    def plan() -> dict[str, float]:
        est = {g: estimate(grp) for g, grp in (*groups, cubes)}
        left = deadline - time.time() - sum(fixed.values())
        say(f"plan ({a.budget:.0f} s budget from the start, {deadline - time.time():.0f} s left; rates "
            + ", ".join(f"{k} {v / 1e12:.2f}" for k, v in rates.items()) + " TFLOP/s; the waves of one "
            "seed run at once unless --sequential, so their sum is an upper bound):")
        for k, v in fixed.items():
            say(f"    {k:12s} ~{v:5.0f} s")
        for i in range(a.max_seeds):
            for g, _ in groups if i else (*groups,):
                fits = "" if left >= est[g] or i == 0 else "  (does not fit: not scheduled)"
                say(f"    {g:12s} seed {seeds[g][i]:3d} ~{est[g]:5.0f} s{fits}")
                left -= est[g] if (left >= est[g] or i == 0) else 0
        say(f"    {cubes[0]:12s} seed {seeds[cubes[0]][0]:3d} ~{est[cubes[0]]:5.0f} s"
            + ("" if left >= est[cubes[0]] and "cubes" not in a.skip else "  (does not fit: not scheduled)"))
        return est

    plan()
    if a.plan_only:
        return 0
    # 2. device tests
    if "tests" not in a.skip:
        cmd = [sys.executable, "-m", "pytest", "--noconftest", "-q", "-p", "no:cacheprovider",
               "tests/test_cuda.py", "tests/test_provenance.py"]
        cmd += ["-k", "cpu and not step and not train"] if a.tiny else []
        say("tests: " + " ".join(cmd[1:]))
        t = time.time()
        try:
            rc = subprocess.run(cmd, cwd=ROOT, timeout=240).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout (240 s)"
        checks["tests"] = {"returncode": rc, "seconds": round(time.time() - t, 1)}
        say(f"tests: {'passed' if rc == 0 else f'FAILED (exit {rc})'} in {time.time() - t:.0f} s")
        failed += ["tests"] if rc else []
    # 3. device vs CPU step
    if "steps" not in a.skip:
        try:
            checks["steps"] = check_steps(device, ("shapes",) if a.tiny else ("shapes", "cubes", "pong"),
                                          hidden_dim=32 if a.tiny else None)
            failed += ["steps"] if not all(r["ok"] for r in checks["steps"]) else []
        except Exception:  # noqa: BLE001 - report, and go on to the runs
            checks["steps"] = traceback.format_exc()
            traceback.print_exc()
            failed.append("steps (error)")
    # 4. throughput (its rates also price the plan)
    if "throughput" not in a.skip:
        batch = 8 if a.tiny else 1024
        eps = {"shapes_small": 1, "cubes_large": 1, "atari_medium": 2} if a.tiny else \
            {"shapes_small": 256, "cubes_large": 256, "atari_medium": 512}
        try:
            rows = throughput(device, batch, 2 if a.tiny else 3, 1 if a.tiny else 5, eps, gpu)
            checks["throughput"] = rows
            rates = encoder_rates(rows, batch)
        except Exception:  # noqa: BLE001 - the plan keeps its assumed rates
            checks["throughput"] = traceback.format_exc()
            traceback.print_exc()
            failed.append("throughput (error)")
    write_json_atomic(out / "results" / "checks.json", checks)
    # 5. data: 4.2's now; 4.1 Shapes' in a background process while 4.2 trains (the training
    # processes use one CPU thread each); Cubes' just before its wave
    t = time.time()
    for spec in specs["09_atari_time_aligned"].values():
        ensure_data(spec, workers)
    bigs = {name: dataclasses.replace(spec, eval_data=str(big_eval(spec, a.big_eval, workers)))
            for name, spec in specs["09_atari_time_aligned"].items()}
    say(f"4.2 data ready in {time.time() - t:.0f} s ({workers} workers; "
        f"estimate {fixed['data (4.2)']:.0f} s)")
    shapes_data = data_process(specs["08_immovable"]["Shapes immovable"], max(1, workers - a.processes))
    fixed = {}
    est = plan()
    command = "bash benchmarks/gpu/run.sh OUT_DIR" + (" --tiny" if a.tiny else "")
    note = (f"made by benchmarks/gpu/full_scale.py on {gpu}: the chapter's {'small' if a.tiny else 'full'}"
            " parameters, specs built as the chapter builds them; seeds added wave by wave while the "
            "measured time fitted the budget")
    recorders = {c: Recorder(c, chapter_params(c, a.tiny)[0], out, prov, command, note, n_train,
                          chapter_claim(c))
                 for c in CHAPTERS}
    measured: dict[str, float] = {}

    def wave(gname: str, group: list[tuple[str, str]], seed: int) -> None:
        wspecs = {f"{c}|{n}": dataclasses.replace(specs[c][n], seeds=[seed]) for c, n in group}
        origins = {}
        for key, spec in wspecs.items():
            for label in spec.strategies:
                cfg = spec.train_config(label, seed, *ex.datasets(spec))
                origins[key, label] = origin(cfg)
        n_jobs = sum(len(s.strategies) for s in wspecs.values())
        executor = get_executor(f"local:{min(a.processes, n_jobs)}" if n_jobs > 1 else "local")
        t = time.time()
        folders = ex.train_specs(wspecs, executor)
        train_s = time.time() - t
        for key, spec in wspecs.items():
            c, n = key.split("|")
            rec = recorders[c]
            prev = rec.specs[n].seeds if n in rec.specs else []
            rec.specs[n] = dataclasses.replace(specs[c][n], seeds=sorted({*prev, seed}))
            rec.folders.setdefault(n, {}).update(folders[key])
            rec.records.setdefault(n, []).extend(ex.evaluate_all(spec, folders[key]))
            if n in bigs:
                rec.big[n] = dataclasses.replace(bigs[n], seeds=rec.specs[n].seeds)
                rec.big_records.setdefault(n, []).extend(
                    ex.evaluate_all(dataclasses.replace(bigs[n], seeds=[seed]), folders[key]))
            for label in spec.strategies:
                rec.runs[f"{n}/{label}_s{seed}"] = {"origin": origins[key, label], "wave": gname,
                                                    "wave_train_seconds": round(train_s, 1)}
        for c in {k.split("|")[0] for k in wspecs}:
            say(f"recorded {recorders[c].write().relative_to(out)}")
            keep_models(recorders[c], out)
        measured[gname] = time.time() - t
        say(f"{gname} seed {seed}: {measured[gname]:.0f} s (estimate {est[gname]:.0f} s)")

    def fits(gname: str) -> bool:
        need = 1.1 * measured.get(gname, est[gname])
        left = deadline - time.time()
        if need > left:
            say(f"{gname}: not scheduled (needs ~{need:.0f} s, {left:.0f} s left)")
        return need <= left

    def attempt(gname: str, group: list[tuple[str, str]], seed: int, before: Any = None) -> None:
        """One wave; a failure is printed and listed, and the next part still runs."""
        try:
            if before is not None:
                t = time.time()
                before()
                say(f"{gname} data ready (waited {time.time() - t:.0f} s)")
            wave(gname, group, seed)
        except Exception:  # noqa: BLE001 - one failed wave must not cost the others
            traceback.print_exc()
            failed.append(f"{gname} seed {seed}")
            measured[gname] = float("inf")  # no more seeds of a group that failed

    def round_of(waves: list[tuple]) -> None:
        """Waves of different groups at once (threads, each with its own executor): 4.2's runs keep
        the GPU busy while Shapes' small model mostly waits on Python; ``--sequential``: one by one."""
        if a.sequential or len(waves) < 2:
            for w in waves:
                attempt(*w)
            return
        with ThreadPoolExecutor(len(waves)) as pool:
            list(pool.map(lambda w: attempt(*w), waves))

    # first seed of 4.2 and 4.1 Shapes always (cut seeds, not parts), then more seeds while they fit
    round_of([(g, grp, seeds[g][0], (lambda: wait_for(shapes_data)) if g == "4.1 Shapes" else None)
              for g, grp in groups])
    for i in range(1, a.max_seeds):
        round_of([(g, grp, seeds[g][i]) for g, grp in groups if fits(g)])
    if "cubes" not in a.skip and fits(cubes[0]):
        attempt(cubes[0], cubes[1], seeds[cubes[0]][0],
                lambda: ensure_data(specs["08_immovable"]["Cubes immovable"], workers))
    else:
        recorders["08_immovable"].skipped["Cubes immovable"] = (
            "skipped (--skip cubes)" if "cubes" in a.skip else
            f"not run: its estimate (~{est[cubes[0]]:.0f} s) did not fit the time left of the budget")
        say(f"recorded {recorders['08_immovable'].write().relative_to(out)}")
    checks["failed"] = failed
    write_json_atomic(out / "results" / "checks.json", checks)
    say(f"done in {time.time() - T0:.0f} s (budget {a.budget:.0f} s); failed checks: {failed or 'none'}")
    return 1 if failed else 0




if __name__ == "__main__":
    sys.exit(main())
