"""The helpers behind issue 23: output paths, JSON-lines reading, content hashes and fingerprints."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tiny_worlds import tiny_episodes

from cswm_lib.data.episodes import Episodes
from cswm_lib.data.fingerprint import _fingerprint_v1, content_hash, data_fingerprint
from cswm_lib.data.hdf5 import load_episodes, read_attrs, save_episodes
from cswm_lib.errors import CswmError
from cswm_lib.jsonl import read_jsonl
from cswm_lib.paths import is_json_of, output_file, output_folder


def test_output_file_refuses_inputs_folders_and_foreign_files(tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "model.pt").write_bytes(b"weights")
    (tmp_path / "link").symlink_to(ckpt / "model.pt")
    for out, want in [
        (ckpt / "model.pt", "lies inside the input"),
        (tmp_path / "link", "lies inside the input"),
        (ckpt, "is a folder"),
        (tmp_path / "no" / "x.json", "does not exist"),
    ]:
        with pytest.raises(CswmError, match=want):
            output_file(out, "--json", inputs=[ckpt])
    (tmp_path / "notes.txt").write_text("notes")
    with pytest.raises(CswmError, match="pass --overwrite"):
        output_file(tmp_path / "notes.txt", "--json", ours=is_json_of("results"))
    assert output_file(tmp_path / "notes.txt", "--json", ours=is_json_of("results"), overwrite=True)
    (tmp_path / "mine.json").write_text(json.dumps({"results": []}))
    assert output_file(tmp_path / "mine.json", "--json", ours=is_json_of("results"))  # ours: replaced
    assert output_file(tmp_path / "new" / "x.json", "--json", make_parents=True)
    with pytest.raises(CswmError, match="notes.txt is a file, not a folder"):
        output_folder(tmp_path / "notes.txt" / "sub", "--out")


def test_read_jsonl_drops_a_torn_last_line_once_and_refuses_one_elsewhere(tmp_path, capsys):
    path = tmp_path / "log.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": 3, "b"')
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}] == read_jsonl(path)
    assert capsys.readouterr().err.count("torn last line") == 1
    path.write_text('{"a": 1}\n[1, 2]\n')
    with pytest.raises(CswmError, match="line 2 is not a JSON object"):
        read_jsonl(path)
    path.write_text('{"a": 1}\n{"a": 2}\n')
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]


def test_the_content_hash_covers_every_byte_and_is_written_at_generation(tmp_path):
    e = tiny_episodes(E=3, T=4)
    path = save_episodes(e, tmp_path / "d.h5")
    assert read_attrs(path)["content_sha256"] == content_hash(e) == content_hash(e, block=1)
    middle = Episodes(e.frames.copy(), e.actions, e.state_ids)
    middle.frames[1, 2, 0, 0, 0] ^= 1  # a middle frame: the old fingerprint did not see it
    assert _fingerprint_v1(middle)["sha256"] == _fingerprint_v1(e)["sha256"]
    assert data_fingerprint(middle) != data_fingerprint(e)
    assert data_fingerprint(load_episodes(path)) == data_fingerprint(e)


def test_runs_saved_with_the_old_fingerprint_still_resume():
    e = tiny_episodes(E=3, T=4)
    old = _fingerprint_v1(e)  # what state.pt holds for runs saved before version 2
    assert "version" not in old and data_fingerprint(e, like=old) == old
    assert data_fingerprint(e, like=data_fingerprint(e))["version"] == 2


def test_a_foreign_file_gets_its_hash_once_on_load(tmp_path):
    from cswm_lib.data.hdf5 import save_original_layout

    e = tiny_episodes(E=2, T=4)
    loaded = load_episodes(save_original_layout(e, tmp_path / "orig.h5"))
    assert loaded._content_sha256 == content_hash(Episodes(e.frames, e.actions, e.state_ids))
    assert np.array_equal(loaded.frames, e.frames)
