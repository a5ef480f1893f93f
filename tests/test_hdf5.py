"""HDF5 format v1 round trip, the original layout, and one-line errors on bad files."""

from pathlib import Path

import h5py
import numpy as np
import pytest

from cswm_lib.data.episodes import Episodes
from cswm_lib.data.hdf5 import (
    FORMAT,
    FORMAT_VERSION,
    EpisodeWriter,
    load_episodes,
    load_episodes_cached,
    read_attrs,
    save_episodes,
)
from cswm_lib.errors import CswmError

SAMPLE = Path(__file__).parent / "data" / "original" / "sample_original_layout.h5"  # see its README.md


def _episodes(E=4, T=5, C=3, ids=True, seed=0):
    rng = np.random.default_rng(seed)
    return Episodes(
        rng.integers(0, 256, (E, T + 1, C, 50, 50), dtype=np.uint8),
        rng.integers(0, 20, (E, T)),
        rng.integers(0, 5, (E, T + 1, 10)) if ids else None,
        {"env_id": "ShapesTrain-v0", "seed": 3, "atari": False},
    )


def _one_line_error(path, match):
    with pytest.raises(CswmError, match=match) as err:
        load_episodes(path)
    assert "\n" not in str(err.value)
    return str(err.value)


@pytest.mark.parametrize("ids", [True, False])
def test_round_trip(tmp_path, ids):
    ep = _episodes(ids=ids)
    save_episodes(ep, tmp_path / "d.h5")
    back = load_episodes(tmp_path / "d.h5")
    assert (back.frames == ep.frames).all() and (back.actions == ep.actions).all()
    assert back.actions.dtype == np.int64
    assert (back.state_ids is None) == (not ids)
    if ids:
        assert (back.state_ids == ep.state_ids).all()
    assert back.attrs["format"] == FORMAT and back.attrs["format_version"] == FORMAT_VERSION
    assert back.attrs["seed"] == 3 and back.attrs["atari"] is False
    assert read_attrs(tmp_path / "d.h5")["env_id"] == "ShapesTrain-v0"
    with h5py.File(tmp_path / "d.h5") as f:
        assert f["frames"].chunks == (1, 6, 3, 50, 50) and f["frames"].compression is not None


def test_cached_loader_shares_one_copy_until_the_file_changes(tmp_path):
    load_episodes_cached.cache_clear()
    save_episodes(_episodes(seed=1), tmp_path / "d.h5")
    first = load_episodes_cached(tmp_path / "d.h5")
    assert load_episodes_cached(str(tmp_path / "d.h5")) is first  # same file: the same object
    save_episodes(_episodes(E=3, seed=2), tmp_path / "d.h5")  # rewritten: size and mtime change
    second = load_episodes_cached(tmp_path / "d.h5")
    assert second is not first and second.num_episodes == 3
    load_episodes_cached.cache_clear()
    assert load_episodes_cached(tmp_path / "d.h5") is not second
    with pytest.raises(CswmError, match="missing.h5"):
        load_episodes_cached(tmp_path / "missing.h5")


def test_interrupted_writer_leaves_no_file(tmp_path):
    path = tmp_path / "d.h5"
    with pytest.raises(RuntimeError):
        with EpisodeWriter(path, 4, 5, (3, 50, 50), None, {}) as w:
            w.write(0, np.zeros((2, 6, 3, 50, 50), np.uint8), np.zeros((2, 5)))
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_reads_the_original_layout_sample():
    ep = load_episodes(SAMPLE)
    assert ep.frames.shape == (20, 11, 3, 50, 50) and ep.state_ids.shape == (20, 11, 10)
    with h5py.File(SAMPLE) as f:
        for e in (0, 2, 10, 19):  # numeric order: episode 10 is group "10", not the 3rd key
            g = f[str(e)]
            assert (ep.frames[e, :10] == np.rint(g["obs"][()] * 255)).all()
            assert (ep.frames[e, 10] == np.rint(g["next_obs"][-1] * 255)).all()
            assert (ep.actions[e] == g["action"][()]).all()
            assert (ep.state_ids[e, :10] == g["state_ids"][()]).all()
            assert (ep.state_ids[e, 10] == g["next_state_ids"][-1]).all()


def _write_original(path, lengths=(3,) * 12, action_len=None, consecutive=True, scale=1.0):
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        for e, T in enumerate(lengths):
            frames = rng.integers(0, 256, (T + 1, 3, 50, 50)).astype(np.float32) / 255 * scale
            g = f.create_group(str(e))
            g["obs"] = frames[:-1]
            g["next_obs"] = frames[1:] if consecutive else frames[1:][::-1]
            g["action"] = np.full(T if action_len is None else action_len, e)
    return path


def test_original_layout_numeric_order(tmp_path):
    ep = load_episodes(_write_original(tmp_path / "o.h5"))
    assert ep.actions[:, 0].tolist() == list(range(12))  # "10" and "11" do not come before "2"
    assert ep.state_ids is None and ep.attrs["source"] == "original-layout"


def test_missing_file(tmp_path):
    msg = _one_line_error(tmp_path / "nope.h5", "not found")
    assert "nope.h5" in msg


def test_truncated_file(tmp_path):
    path = tmp_path / "d.h5"
    save_episodes(_episodes(E=8), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _one_line_error(path, "truncated or corrupt")


def test_not_hdf5(tmp_path):
    path = tmp_path / "d.h5"
    path.write_text("hello")
    _one_line_error(path, "not a valid HDF5 file")


def test_other_schema(tmp_path):
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as f:
        f["images"] = np.zeros((2, 3))
    _one_line_error(path, "neither a cswm-book dataset")


def test_mismatched_lengths(tmp_path):
    _one_line_error(_write_original(tmp_path / "a.h5", action_len=2), "mismatched lengths")
    _one_line_error(_write_original(tmp_path / "b.h5", lengths=(3, 4)), "same length")
    _one_line_error(_write_original(tmp_path / "c.h5", consecutive=False), "not consecutive")
    _one_line_error(_write_original(tmp_path / "d.h5", scale=255.0), r"expected floats in \[0, 1\]")
    path = tmp_path / "e.h5"
    save_episodes(_episodes(), path)
    with h5py.File(path, "a") as f:
        del f["actions"]
        f["actions"] = np.zeros((4, 7), np.int64)
    msg = _one_line_error(path, "do not match frames")
    assert "e.h5" in msg


def test_newer_format_version(tmp_path):
    path = tmp_path / "d.h5"
    save_episodes(_episodes(), path)
    with h5py.File(path, "a") as f:
        f.attrs["format_version"] = FORMAT_VERSION + 1
    _one_line_error(path, "format_version")


def test_original_layout_writer_round_trip(tmp_path):
    from cswm_lib.data.hdf5 import save_original_layout

    ep = _episodes(E=11, T=3)
    back = load_episodes(save_original_layout(ep, tmp_path / "o.h5"))
    assert (back.frames == ep.frames).all() and (back.actions == ep.actions).all()
    assert (back.state_ids == ep.state_ids).all()
    with h5py.File(tmp_path / "o.h5") as f:
        assert f["10"]["obs"].dtype == np.float32 and f["10"]["obs"].shape == (3, 3, 50, 50)
