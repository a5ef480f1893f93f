"""Records a skeptical reviewer can trust: every current record carries its provenance, the commit of
its declaration and the origin of every run (cswm_lib.report.results.check_record); --record refuses a dirty
checkout; earlier records live in history/ and are not held to it."""

from __future__ import annotations

import json
import subprocess

import pytest

from cswm_lib.provenance import FIELDS, declaration, provenance
from cswm_lib.report.results import check_record, check_records
from cswm_lib.utils import project_root


def complete_record() -> dict:
    prov = provenance("local:2", threads_per_run=1) | {"commit": "a" * 40, "dirty": False}
    return {"chapter": "08_immovable", "scale": "cpu", "command": "python -m cswm_lib.book run ...",
            "wall_seconds": 3000.0, "load": [1.0, 1.0, 1.0], "provenance": prov,
            "declared": {"params": "book/params/cpu.yaml", "params_commit": "b" * 40, "params_dirty": False},
            "results": {"verdicts": [{"verdict": "reproduced", "rule": {"claim": "improves"}}],
                        "runs": {"Shapes immovable": {"mixed_s101": {"origin": "trained", "folder": "x"}}}}}


def test_a_complete_record_passes_and_each_missing_piece_is_named():
    assert check_record(complete_record()) == []
    r = complete_record()
    del r["provenance"]["library_hash"], r["wall_seconds"]
    assert check_record(r) == ["wall_seconds", "provenance.library_hash"]
    r = complete_record()
    r["provenance"]["dirty"] = True
    r["declared"]["params_dirty"] = True
    del r["results"]["runs"]
    r["results"]["verdicts"][0].pop("rule")
    assert check_record(r) == ["provenance.commit of a clean checkout",
                               "declared.params committed before the run",
                               "results.runs (trained / resumed / reused per run)",
                               "verdicts of the declared rule (cswm_lib.verdict)"]
    assert set(FIELDS) <= set(complete_record()["provenance"])


def test_every_current_record_of_the_book_has_its_provenance_and_history_is_kept_apart():
    assert check_records() == {}
    history = sorted((project_root() / "book" / "results").glob("*/history/*.json"))
    assert history, "earlier sweeps are kept in book/results/<scale>/history/"
    assert check_records(project_root() / "book" / "results") == {}  # history is not checked
    old = json.loads(history[0].read_text())
    assert check_record(old)  # an old record lacks provenance: that is why it is history


def test_the_results_check_command_fails_on_a_record_without_provenance(tmp_path):
    import os
    import sys

    (tmp_path / "book" / "results" / "cpu").mkdir(parents=True)
    record = tmp_path / "book" / "results" / "cpu" / "08_immovable.json"
    record.write_text(json.dumps({"chapter": "x"}))
    env = {**os.environ, "CSWM_ROOT": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "cswm_lib.book", "results", "--check"], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "cpu/08_immovable.json lacks scale, command" in proc.stderr and "provenance.commit" in proc.stderr


def test_declaration_names_the_commit_of_the_parameter_file():
    if subprocess.run(["git", "rev-parse"], cwd=project_root(), capture_output=True).returncode:
        pytest.skip("not a git checkout")
    d = declaration(project_root() / "book" / "params" / "cpu.yaml")
    assert d["params"] == "book/params/cpu.yaml" and len(d["params_commit"]) == 40
    assert isinstance(d["params_dirty"], bool)


def test_record_refuses_a_dirty_checkout_before_running_anything(tmp_path, capsys, monkeypatch):
    from cswm_lib import book

    ran = []
    monkeypatch.setattr(book, "run_chapter", lambda *a, **k: ran.append(a) or "ran")
    monkeypatch.setattr("cswm_lib.provenance.git_state", lambda root=None: {"dirty": True})
    params = tmp_path / "p.yaml"
    params.write_text("scale: cpu\n")
    with pytest.raises(SystemExit) as ex:
        book.main(["run", "--params", str(params), "--chapters", "01_setup", "--record",
                   "--out", str(tmp_path / "o")])
    assert ex.value.code == 2 and not ran
    assert "--record needs a committed checkout" in capsys.readouterr().err
