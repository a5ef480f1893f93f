"""cswm_lib.provenance: the fields every record carries hold real values."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time

import pytest
import torch

from cswm_lib import provenance as pv
from cswm_lib.utils import project_root


def test_provenance_has_every_field_with_real_values():
    p = pv.provenance(executor="local:3", threads_per_run=1)
    assert set(pv.FIELDS) <= set(p)
    json.dumps(p)  # a record is JSON
    if p["commit"] is None:  # e.g. an exported tree: the reason is said
        assert p["dirty"] is None and p["git_note"]
    else:
        assert re.fullmatch(r"[0-9a-f]{40}", p["commit"]) and isinstance(p["dirty"], bool)
        assert p["git_note"] is None
    assert re.fullmatch(r"[0-9a-f]{64}", p["library_hash"])
    assert p["versions"]["torch"] == torch.__version__.split("+")[0] or \
        p["versions"]["torch"] == torch.__version__
    assert p["versions"]["numpy"] and p["versions"]["python"].count(".") == 2
    assert set(pv.PACKAGES) <= set(p["versions"])
    assert p["logical_cores"] >= 1 and p["threads_per_run"] == 1 and p["executor"] == "local:3"
    assert p["cuda"] is None if not torch.cuda.is_available() else p["cuda"]["name"]
    assert p["load"] is None or len(p["load"]) == 3
    assert "hostname" not in json.dumps(p) and "node" not in p


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_state_outside_a_repository_says_why(tmp_path):
    got = pv.git_state(tmp_path)
    assert got["commit"] is None and got["dirty"] is None
    assert "no git repository" in got["git_note"]


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_state_sees_a_commit_and_a_dirty_tree(tmp_path):
    def git(*a):
        subprocess.run(["git", "-C", str(tmp_path), *a], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "a.txt").write_text("1")
    git("add", "a.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    clean = pv.git_state(tmp_path)
    assert re.fullmatch(r"[0-9a-f]{40}", clean["commit"]) and clean["dirty"] is False
    (tmp_path / "b.txt").write_text("untracked")  # untracked files do not make it dirty
    assert pv.git_state(tmp_path)["dirty"] is False
    (tmp_path / "a.txt").write_text("2")
    dirty = pv.git_state(tmp_path)
    assert dirty["dirty"] is True and dirty["commit"] == clean["commit"]


def test_git_state_without_git_says_so(monkeypatch):
    def no_git(*a, **k):
        raise FileNotFoundError("git")

    monkeypatch.setattr(pv.subprocess, "run", no_git)
    monkeypatch.delenv("CSWM_GIT_COMMIT", raising=False)
    got = pv.git_state()
    assert got == {"commit": None, "dirty": None, "git_note": "git is not installed on this machine"}
    monkeypatch.setenv("CSWM_GIT_COMMIT", "not a commit")
    assert pv.git_state()["commit"] is None
    # a copy of the tree without .git (the GPU machine): the commit comes from where the copy was made
    monkeypatch.setenv("CSWM_GIT_COMMIT", "AB" * 20)
    monkeypatch.setenv("CSWM_GIT_DIRTY", "0")
    got = pv.git_state()
    assert got["commit"] == "ab" * 20 and got["dirty"] is False and "CSWM_GIT_COMMIT" in got["git_note"]


def test_library_hash_changes_with_a_source_file(tmp_path):
    lib = tmp_path / "cswm_lib"
    shutil.copytree(project_root() / "cswm_lib", lib, ignore=shutil.ignore_patterns("__pycache__"))
    h0 = pv.library_hash(lib)
    assert h0 == pv.library_hash(lib) == pv.library_hash(project_root() / "cswm_lib")
    (lib / "__pycache__").mkdir(exist_ok=True)
    (lib / "__pycache__" / "junk.py").write_text("x = 1\n")  # caches do not count
    assert pv.library_hash(lib) == h0
    f = lib / "negatives.py"
    f.write_text(f.read_text() + "\n# edited\n")
    h1 = pv.library_hash(lib)
    assert h1 != h0
    f.rename(lib / "negatives2.py")  # same bytes, another name
    assert pv.library_hash(lib) not in (h0, h1)


def test_timed_measures_wall_seconds_also_on_error():
    with pv.timed() as t:
        time.sleep(0.05)
    assert 0.04 < t["wall_s"] < 2
    with pytest.raises(ValueError), pv.timed() as t2:
        raise ValueError
    assert t2["wall_s"] >= 0
