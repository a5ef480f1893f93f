"""The result sections of an experiment page (cswm_lib.report.recorded_page) show the recorded
reference run when there is one, and every result table they print carries its scale label. No
training: the records are copies of the kept history records (book/results/cpu/history/)."""

from __future__ import annotations

import copy
import shutil

import matplotlib
import pytest

from cswm_lib import report
from cswm_lib.report.results import load_record
from cswm_lib.utils import project_root

matplotlib.use("Agg")

HISTORY = project_root() / "book" / "results" / "cpu" / "history"
CHAPTERS = {"08_immovable": "4.1", "09_atari_time_aligned": "4.2", "10_local_global": "4.3"}


#: The kept sweep each chapter's tests read: the 3-seed sweeps (seeds 1-3), one eval set each.
SWEEPS = {"08_immovable": "8c2d9a9", "09_atari_time_aligned": "5aff17a", "10_local_global": "cd59b8e"}


def history_file(chapter):
    return next(HISTORY.glob(f"{chapter}.*.{SWEEPS[chapter]}.json"))


def smoke_record(chapter):
    """A small-scale record made from the history record, with every number changed, and one
    object-slot path per (dataset, strategy) of seed 1."""
    record = copy.deepcopy(load_record(history_file(chapter)))
    record["scale"] = "small"
    res = record["results"]
    for row in res["table"]:
        row.update(scale="small", mean=0.4321, std=0.0321, n_seeds=1)
    for records in res["per_seed"].values():
        for r in records:
            r["value"] = 0.4321
    for spec in res["specs"].values():
        spec.update(scale="small", seeds=[1], num_updates=20)
    res["embedding_samples"] = {f"{name} | {s} | 1": [[[0.0, 0.0]], [[1.0, 1.0]]]
                                for name, spec in res["specs"].items() for s in spec["strategies"]}
    return record


def tables(run, chapter):
    settings = sorted({r["setting"] for r in run.rows})
    return [run.scores(settings), run.per_seed(CHAPTERS[chapter])]


@pytest.fixture
def results_folder(tmp_path):
    """A results folder holding the history records as current cpu records."""
    (tmp_path / "cpu").mkdir()
    for chapter in CHAPTERS:
        shutil.copy(history_file(chapter), tmp_path / "cpu" / f"{chapter}.json")
    return tmp_path


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_result_table_carries_its_scale_label(chapter, results_folder, capsys):
    own = report.PageRun(smoke_record(chapter), own=True)
    shown = report.shown_run(own, chapter, "cpu", results_folder)
    for run, scale in [(shown, "cpu"), (own, "small")]:
        for table in tables(run, chapter):
            first = table.splitlines()[0]
            assert first.startswith(f"*{scale} scale · "), first
            assert "seed" in first and "updates" in first
        assert run.caption().startswith(f"{scale} scale")
    assert report.SMOKE_NOTE in own.caption() and report.SMOKE_NOTE not in shown.caption()
    # the figures print the caption above them
    shown.show_curves([("local_dedup", 1)])
    shown.show_steps(["local_dedup"])
    shown.show_slots()
    out = capsys.readouterr().out
    assert out.count("cpu scale · 3 seeds") >= 3
    assert "kept no object slots" in out  # the history records predate embedding_samples


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_with_a_record_the_page_shows_the_record_not_the_smoke_run(chapter, results_folder, capsys):
    record = load_record(results_folder / "cpu" / f"{chapter}.json")
    own = report.PageRun(smoke_record(chapter), own=True)
    shown = report.shown_run(own, chapter, "cpu", results_folder)
    assert shown is not own and shown.rows == record["results"]["table"]
    assert shown.label().startswith("recorded run")
    text = "\n".join(tables(shown, chapter))
    assert "43.2 ± 3.2" not in text and "| 43.2 |" not in text  # the smoke run's numbers
    mean = next(r for r in record["results"]["table"] if r["num_steps"] == 1)["mean"]
    assert f"{100 * mean:.1f}" in text
    assert "seed 3" in shown.per_seed(CHAPTERS[chapter])
    # the smoke section shows the small run, labelled as such
    report.show_smoke_run(own, shown, [("local_dedup", 1)], ["local_dedup"])
    out = capsys.readouterr().out
    assert "small scale · 1 seed" in out and report.SMOKE_NOTE in out


def test_without_a_record_the_page_shows_its_own_run_labelled(tmp_path, capsys):
    own = report.PageRun(smoke_record("08_immovable"), own=True)
    shown = report.shown_run(own, "08_immovable", "cpu", tmp_path)
    assert shown is own
    assert "no cpu reference run of 08_immovable is recorded yet" in shown.label()
    assert "small scale" in shown.label()
    assert "43.2 ± 3.2" in shown.scores(["local_dedup"])
    lengths = shown.show_slots(1)
    assert set(lengths) == {"Shapes immovable | baseline", "Shapes immovable | mixed",
                            "Cubes immovable | baseline", "Cubes immovable | mixed"}
    report.show_smoke_run(own, shown, [("local_dedup", 1)], ["local_dedup"])
    assert "shown in the result sections below" in capsys.readouterr().out


def test_a_run_at_the_reference_scale_shows_itself(results_folder):
    record = load_record(history_file("08_immovable"))
    own = report.PageRun(record, own=True)
    assert report.shown_run(own, "08_immovable", "cpu", results_folder) is own


def test_a_run_whose_datasets_have_different_seed_counts_says_so_per_dataset():
    record = smoke_record("09_atari_time_aligned")
    specs = record["results"]["specs"]
    first = next(iter(specs))
    specs["Other game"] = dict(copy.deepcopy(specs[first]), seeds=[1, 2, 3])
    specs[first]["seeds"] = [1, 2, 3, 4, 5]
    caption = report.PageRun(record).caption()
    assert f"{first} 5 seeds, 20 updates" in caption and "Other game 3 seeds, 20 updates" in caption
    assert "small scale · 5 seeds" not in caption  # the union would overstate the smaller dataset


def test_a_records_provenance_note_opens_its_label_within_the_text_column():
    record = smoke_record("08_immovable")
    record["provenance_note"] = "the chapter's kernel imported another checkout's library; " * 4
    label = report.PageRun(record).label().splitlines()
    assert label[0].startswith("the chapter's kernel imported") and max(map(len, label)) <= 80
    assert any(line.startswith("recorded run") or line.startswith("this run") for line in label)
    assert report.PageRun(smoke_record("08_immovable")).note == ""  # no note: the label as before
