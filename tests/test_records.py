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


def _current_records():
    from cswm_lib.report.results import load_record

    return [pytest.param(load_record(p), id=p.stem)
            for p in sorted((project_root() / "book" / "results").glob("*/*.json"))]


@pytest.mark.parametrize("record", _current_records())
def test_the_selected_point_of_every_curve_equals_the_final_score_on_the_same_set(record):
    """One set of weights: a curve's point marked "selected" (model.pt, the published selection) is
    the final score of the same model on the curve's eval set, for every run of the record."""
    from cswm_lib.data.generate import README_DATASETS

    results, compared = record["results"], 0
    for name, spec in results["specs"].items():
        if not spec.get("eval_every"):
            continue
        sizes = [r["eval_episodes"] for r in results["per_seed"][name] if r.get("eval_episodes")]
        size = max(sizes) if sizes else (  # a record from before rows named their eval set
            max(spec.get("min_episodes", 2), README_DATASETS[spec["eval_data"]]["num_episodes"]
                // spec["eval_divisor"]) if spec["eval_data"] in README_DATASETS else None)
        n = min(spec["eval_episodes"], size or spec["eval_episodes"])  # the curve's subset
        final = {(r["strategy"], int(r["seed"]), f"{r['setting']}|{r['num_steps']}|{r['metric']}"): r["value"]
                 for r in results["per_seed"][name]
                 if r.get("eval_episodes", size) == n and r["strategy"] != "untrained"}
        for strategy, by_seed in results["curves"][name].items():
            for seed, curve in by_seed.items():
                for key, values in curve.items():
                    if key.startswith("selected:") and key != "selected:updates":
                        got = final.get((strategy, int(seed), key.removeprefix("selected:")))
                        if got is not None:
                            assert values[-1] == pytest.approx(got, abs=1e-6), (name, strategy, seed, key)
                            compared += 1
    assert compared, "no curve point could be compared with a final score"
