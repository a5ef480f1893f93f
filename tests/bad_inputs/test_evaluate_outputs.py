"""evaluate --json never replaces an input (the checkpoint's files, the dataset) nor a file it did not
write: refused in one line before any evaluation, every file as it was. (``python -m
cswm_lib.evaluate`` resolves --json with :func:`cswm_lib.paths.output_file`.)"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .common import _h5, case, refused, snapshot, unchanged

TARGETS = {
    "evaluate with --json pointing at the checkpoint's model.pt": (
        lambda c, d, t: c / "model.pt",
        "lies inside",
    ),
    "evaluate with --json pointing at the eval dataset": (lambda c, d, t: d, "is the input"),
    "evaluate with --json pointing at a link to model.pt": (
        lambda c, d, t: (t / "link.json").symlink_to(c / "model.pt") or t / "link.json",
        "lies inside",
    ),
    "evaluate with --json inside the checkpoint folder": (lambda c, d, t: c / "scores.json", "lies inside"),
    "evaluate with --json over an unrelated text file": (
        lambda c, d, t: (t / "notes.txt").write_text("notes") and t / "notes.txt",
        "pass --overwrite",
    ),
}
CASES = [
    pytest.param(case(n, "lost_or_overwritten"), target, want, id=n) for n, (target, want) in TARGETS.items()
]


@pytest.mark.parametrize(("name", "target", "want"), CASES)
def test_evaluate_never_writes_its_json_over_an_input_or_a_foreign_file(
    name, target, want, tmp_path, trained, capsys, monkeypatch
):
    from cswm_lib.evaluate import main
    from cswm_lib.utils import cli_errors

    ckpt = Path(shutil.copytree(trained, tmp_path / "ckpt"))
    data = _h5(tmp_path, "eval.h5", E=4, T=4)
    out = target(ckpt, data, tmp_path)
    monkeypatch.setenv("CSWM_RESULTS", str(tmp_path / "results"))
    before = snapshot(tmp_path)
    argv = [
        "--save-folder",
        ckpt,
        "--dataset",
        data,
        "--no-progress",
        "--ks",
        1,
        "--device",
        "cpu",
        "--json",
        out,
    ]
    refused(cli_errors(main), argv, capsys, "--json", want)
    unchanged(before, tmp_path)
