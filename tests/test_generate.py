"""Random-policy data generation: determinism, worker independence, reuse, the CLI and its errors."""

import numpy as np
import pytest

from cswm_lib.data.generate import README_DATASETS, ensure_dataset, generate, main
from cswm_lib.data.hdf5 import load_episodes
from cswm_lib.errors import CswmError


def _gen(tmp_path, name, **kw):
    kw = {"env_id": "ShapesEval-v0", "num_episodes": 12, "seed": 1, "progress": False, **kw}
    return load_episodes(generate(fname=tmp_path / f"{name}.h5", **kw))


def _same(a, b):
    return (a.frames == b.frames).all() and (a.actions == b.actions).all() and (
        (a.state_ids is None and b.state_ids is None) or (a.state_ids == b.state_ids).all()
    )


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    a = _gen(tmp_path, "a", save_state_ids=True)
    b = _gen(tmp_path, "b", save_state_ids=True)
    c = _gen(tmp_path, "c", save_state_ids=True, seed=2)
    assert _same(a, b)
    assert not (a.actions == c.actions).all()
    assert a.frames.shape == (12, 11, 3, 50, 50) and a.state_ids.shape == (12, 11, 10)


@pytest.mark.parametrize(
    "env_id,kw",
    [("ShapesImmovableEval-v0", {}), ("PongDeterministic-v4", {"atari": True, "num_episodes": 4})],
)
def test_result_does_not_depend_on_the_number_of_workers(tmp_path, env_id, kw):
    one = _gen(tmp_path, "one", env_id=env_id, num_workers=1, save_state_ids=True, **kw)
    two = _gen(tmp_path, "two", env_id=env_id, num_workers=2, save_state_ids=True, **kw)
    assert _same(one, two)


def test_frames_match_state_ids_and_actions(tmp_path):
    from cswm_lib.envs.block_pushing import DIRECTIONS, render_shapes

    ep = _gen(tmp_path, "a", env_id="ShapesImmovableTrain-v0", num_episodes=3, save_state_ids=True)
    pos = ep.state_ids.reshape(3, 101, 5, 2)
    assert (render_shapes(pos) == ep.frames).all()
    assert (pos[:, :, :2] == pos[:, :1, :2]).all()  # immovable objects 0 and 1 stay put
    moved = (pos[:, 1:] != pos[:, :-1]).any(-1)  # [E, T, K]
    obj = ep.actions // 4
    assert not moved[ep.actions < 8].any()
    # whatever moved is the addressed object, by the addressed direction
    e, t = np.nonzero(moved.any(-1))
    assert (moved[e, t].sum(-1) == 1).all()
    k = obj[e, t]
    assert (pos[e, t + 1, k] - pos[e, t, k] == DIRECTIONS[ep.actions[e, t] % 4]).all()


def test_atari_dataset(tmp_path):
    env_id = "SpaceInvadersDeterministic-v4"
    ep = _gen(tmp_path, "p", env_id=env_id, atari=True, num_episodes=2, save_state_ids=True)
    assert ep.frames.shape == (2, 11, 6, 50, 50) and ep.state_ids.shape == (2, 11, 128)
    assert (ep.frames[:, 1:, :3] == ep.frames[:, :-1, 3:]).all()  # (previous, current)
    assert ep.attrs["frame_stack"] == "previous,current" and ep.attrs["warmup"] == 50
    assert ep.actions.max() < 6


def test_ensure_dataset_reuses_matching_files(tmp_path):
    path = tmp_path / "d.h5"
    ensure_dataset("ShapesEval-v0", path, 5, seed=1, progress=False)
    stamp = path.stat().st_mtime_ns
    ensure_dataset("ShapesEval-v0", path, 5, seed=1, progress=False)
    assert path.stat().st_mtime_ns == stamp
    ensure_dataset("ShapesEval-v0", path, 5, seed=2, progress=False)
    assert path.stat().st_mtime_ns != stamp and load_episodes(path).attrs["seed"] == 2
    path.write_text("corrupt")
    ensure_dataset("ShapesEval-v0", path, 5, seed=2, progress=False)
    assert load_episodes(path).num_episodes == 5


def test_every_readme_dataset_at_reduced_size(tmp_path):
    for name, spec in README_DATASETS.items():
        argv = ["--env-id", spec["env_id"], "--fname", str(tmp_path / f"{name}.h5"), "--num-episodes", "2",
                "--seed", str(spec["seed"]), "--no-progress"]
        argv += ["--atari"] * spec.get("atari", False)
        argv += ["--save-state-ids"] * spec.get("save_state_ids", False)
        main(argv)
        ep = load_episodes(tmp_path / f"{name}.h5")
        assert ep.num_episodes == 2 and ep.attrs["env_id"] == spec["env_id"]
        assert ep.episode_length == (100 if "Train" in spec["env_id"] else 10)
        assert (ep.state_ids is not None) == spec.get("save_state_ids", False)


@pytest.mark.parametrize(
    "argv,match",
    [
        (["--env-id", "Shapes-v0"], "unknown env id 'Shapes-v0': known ids are"),
        (["--env-id", "PongDeterministic-v4"], "is an Atari game: pass --atari"),
        (["--env-id", "ShapesTrain-v0", "--atari"], "is not an Atari game"),
        (["--env-id", "ShapesTrain-v0", "--num-episodes", "0"], "--num-episodes must be >= 1"),
        (["--env-id", "ShapesTrain-v0", "--num-workers", "0"], "--num-workers must be >= 1"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, capsys, argv, match):
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--fname", str(tmp_path / "x.h5"), "--no-progress"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and match in err and "\n" not in err
    assert not (tmp_path / "x.h5").exists()


def test_library_errors(tmp_path):
    with pytest.raises(CswmError, match="unknown env id"):
        ensure_dataset("Nope-v0", tmp_path / "x.h5", 1, 0)


def test_readme_dataset_reduced_copy(tmp_path, monkeypatch):
    from cswm_lib.data.generate import readme_dataset

    monkeypatch.setenv("CSWM_DATA", str(tmp_path))
    path = readme_dataset("shapes_imm_eval", divisor=1000, progress=False)
    assert path == tmp_path / "shapes_imm_eval_div1000.h5"
    ep = load_episodes(path)
    assert ep.num_episodes == 10 and ep.attrs["seed"] == 2 and ep.state_ids is not None
    with pytest.raises(CswmError, match="unknown dataset"):
        readme_dataset("shapes", divisor=10)


def test_shape_rule_is_a_dataset_parameter(tmp_path):
    """Shapes files record which pixels they hold (published 0.15 by default); a file of the other rule
    is regenerated, same positions, other frames."""
    from cswm_lib.envs.block_pushing import render_shapes

    path = tmp_path / "s.h5"
    ensure_dataset("ShapesEval-v0", path, 3, seed=1, save_state_ids=True, progress=False)
    old = load_episodes(path)
    assert old.attrs["shape_rule"] == "skimage-0.15"
    pos = old.state_ids.reshape(3, 11, 5, 2)
    assert (render_shapes(pos) == old.frames).all()
    ensure_dataset("ShapesEval-v0", path, 3, seed=1, save_state_ids=True, shape_rule="skimage-current",
                   progress=False)
    new = load_episodes(path)
    assert new.attrs["shape_rule"] == "skimage-current" and (new.state_ids == old.state_ids).all()
    assert (render_shapes(pos, "skimage-current") == new.frames).all() and (new.frames != old.frames).any()
    with pytest.raises(CswmError, match="Shapes ids only"):
        ensure_dataset("CubesEval-v0", tmp_path / "c.h5", 1, seed=1, shape_rule="skimage-0.15")


# ------------------------------------------------------------------------------------------------
# process_map: the worker pool generation runs on


def _square_slowly(x):
    import time

    time.sleep(0.02 * (x % 3))  # results arrive out of order
    if x == -1:
        raise CswmError("job -1 is bad")
    if x == -2:
        import os

        os._exit(9)  # a worker killed mid-job (as the kernel's OOM killer would)
    return x * x, np.full(100_000, x)  # large enough that a result spans many pipe writes


def test_process_map_keeps_job_order_and_raises_worker_errors():
    from cswm_lib.utils import process_map

    out = list(process_map(_square_slowly, list(range(10)), num_workers=3))
    assert [sq for sq, _ in out] == [x * x for x in range(10)]
    assert all((arr == x).all() for x, (_, arr) in enumerate(out))
    with pytest.raises(CswmError, match="job -1 is bad"):
        list(process_map(_square_slowly, [1, 2, -1, 3], num_workers=2))
    with pytest.raises(CswmError, match=r"a worker process died \(exit code 9\)"):
        list(process_map(_square_slowly, [1, -2, 2, 3], num_workers=2))


def test_process_map_kills_its_workers_when_the_caller_stops():
    import multiprocessing as mp

    from cswm_lib.utils import process_map

    results = process_map(_square_slowly, list(range(50)), num_workers=2)
    next(results)
    assert len(mp.active_children()) == 2
    results.close()  # what a Ctrl-C in the consuming loop does (generate closes it on the way out)
    assert mp.active_children() == []


def test_a_larger_readme_set_begins_with_the_smaller_one(tmp_path, monkeypatch):
    from cswm_lib.data.generate import readme_dataset

    monkeypatch.setenv("CSWM_DATA", str(tmp_path))
    small = load_episodes(readme_dataset("shapes_imm_eval", divisor=2000, progress=False))  # 5 episodes
    large = load_episodes(readme_dataset("shapes_imm_eval", episodes=12, progress=False))
    assert (small.num_episodes, large.num_episodes) == (5, 12)
    path = readme_dataset("shapes_imm_eval", episodes=12, progress=False)
    assert path == tmp_path / "shapes_imm_eval_n12.h5"
    assert np.array_equal(small.frames, large.frames[:5]) and np.array_equal(small.actions, large.actions[:5])
    assert np.array_equal(small.state_ids, large.state_ids[:5])
    with pytest.raises(CswmError, match="not both"):
        readme_dataset("shapes_imm_eval", divisor=10, episodes=12)
    with pytest.raises(CswmError, match="whole number"):
        readme_dataset("shapes_imm_eval", episodes=1.5)
