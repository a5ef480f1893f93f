"""evaluate: bad settings are one line; outputs never replace anything."""

from __future__ import annotations

import importlib

import pytest

from .common import (
    _evaluate,
    _evaluate_no_ids,
    _h5,
    _leftovers,
    _model_folder,
    _write,
    api_cases,
    case,
    cli,
    no_work,
    run_api_case,
)

API = [  # (what the user does, class it guards against, call(tmp_path, trained), message)
    ("k = 0", "misleading_message", lambda t, m: _evaluate(t, m, ks=[0]), "ks must be >= 1, got 0"),
    ("ks='15'", "traceback", lambda t, m: _evaluate(t, m, ks="15"), "ks must be a list"),
    (
        "num_steps=1.5",
        "traceback",
        lambda t, m: _evaluate(t, m, num_steps=1.5),
        "num_steps must be a whole number",
    ),
    (
        "num_steps beyond the episodes",
        "traceback",
        lambda t, m: _evaluate(t, m, num_steps=9),
        "num_steps must be in 1..4",
    ),
    (
        "dedup without state ids",
        "traceback",
        lambda t, m: _evaluate_no_ids(m),
        "needs ground-truth state ids",
    ),
    ("unknown setting", "traceback", lambda t, m: _evaluate(t, m, setting="x"), "setting must be one of"),
    ("Hits@k beyond the candidates", "traceback", lambda t, m: _evaluate(t, m, ks=[50]), "Hits@50 asked for"),
]


@pytest.mark.parametrize(("name", "call", "pattern"), api_cases(API))
def test_a_bad_evaluation_setting_is_one_line(name, call, pattern, tmp_path, trained):
    run_api_case(name, call, pattern, tmp_path, trained)


EVALUATE_CLI = [
    case("evaluate: default --json of two settings", "lost_or_overwritten"),
    case("evaluate --no-progress", "missing_option"),
    case("evaluate: missing checkpoint folder", "traceback"),
    case("evaluate: 6-channel data for a 3-channel model", "traceback"),
]


@pytest.mark.parametrize("name", EVALUATE_CLI)
def test_evaluate_cli_keeps_every_output_and_refuses_bad_input_in_one_line(
    name, tmp_path, capsys, monkeypatch, trained
):
    from cswm_lib.evaluate import main as evaluate_main
    from cswm_lib.utils import cli_errors

    ev = cli_errors(evaluate_main)
    data = _h5(tmp_path, "eval.h5", E=4, T=4)
    monkeypatch.setenv("CSWM_RESULTS", str(tmp_path / "results"))
    if name.startswith("evaluate: default"):
        ev(["--save-folder", str(trained), "--dataset", str(data), "--no-progress", "--ks", "1"])
        ev(["--save-folder", str(trained), "--dataset", str(data), "--no-progress", "--ks", "1", "2"])
        files = sorted((tmp_path / "results" / "evaluate").glob("*.json"))
        assert len(files) == 2 and all(f.name.startswith("run_eval_global_") for f in files)
    elif name == "evaluate --no-progress":
        ev(["--save-folder", str(trained), "--dataset", str(data), "--no-progress", "--ks", "1"])
        assert "encode" not in capsys.readouterr().err
    elif "missing checkpoint" in name:
        msg = cli(ev, ["--save-folder", tmp_path / "nope", "--dataset", data], capsys)
        assert "checkpoint folder" in msg
    else:
        six = _h5(tmp_path, "six.h5", E=4, T=4, channels=6)
        assert "checkpoint/dataset mismatch" in cli(ev, ["--save-folder", trained, "--dataset", six], capsys)
    assert _leftovers(tmp_path) == []


EVALUATE_OUTPUTS = [
    case("evaluate: --json is a folder", "traceback"),
    case("evaluate: --json below a file", "traceback"),
]


@pytest.mark.parametrize("name", EVALUATE_OUTPUTS)
def test_evaluate_refuses_a_bad_json_path_before_any_work(name, tmp_path, capsys, monkeypatch, trained):
    from cswm_lib.evaluate import main as evaluate_main
    from cswm_lib.utils import cli_errors

    notes = _write(tmp_path / "notes.txt", b"my notes")
    monkeypatch.setenv("CSWM_RESULTS", str(tmp_path / "results"))
    monkeypatch.setattr(importlib.import_module("cswm_lib.evaluate"), "evaluate", no_work)
    data = _h5(tmp_path, "eval.h5", E=4, T=4)
    target = tmp_path if "folder" in name else notes / "x.json"
    argv = ["--save-folder", trained, "--dataset", data, "--no-progress", "--ks", 1, "--json", target]
    msg = cli(cli_errors(evaluate_main), argv, capsys)
    assert ("is a folder" if "folder" in name else "notes.txt is a file, not a folder") in msg
    assert notes.read_bytes() == b"my notes" and not (tmp_path / "results").exists()
    assert _leftovers(tmp_path) == []


def test_evaluate_replaces_its_own_scores_and_a_foreign_file_only_with_overwrite(tmp_path, trained):
    from cswm_lib.evaluate import main as evaluate_main

    folder = _model_folder(tmp_path, trained)
    data = _h5(tmp_path, "eval.h5", E=4, T=4)
    out = tmp_path / "scores.json"
    argv = ["--save-folder", str(folder), "--dataset", str(data), "--no-progress", "--ks", "1",
            "--json", str(out)]
    evaluate_main(argv)
    first = out.read_bytes()
    evaluate_main(argv)  # its own file: replaced without --overwrite
    assert out.read_bytes() == first
    notes = _write(tmp_path / "notes.txt", b"my notes")
    evaluate_main(argv[:-1] + [str(notes), "--overwrite"])
    assert notes.read_bytes() != b"my notes" and b'"results"' in notes.read_bytes()
