"""Published numbers: typed once in cswm_lib/published.yaml, each with a source."""

from __future__ import annotations

import yaml

from cswm_lib import published


def test_every_entry_has_a_source_with_a_title():
    got = published.entries()
    assert got, "no published number at all"
    for e in got:
        src = e["source"]
        assert src["title"] and src["kind"] in {"primary", "secondary"}, e
        assert src["paper"] in published.papers(), e
        assert src["url"] or src["note"], f"{e}: a source needs an address or a note saying why none"
        assert 0 <= e["percent"] <= 100


def test_loader_returns_the_numbers_as_fractions():
    assert published.value("shapes", "Hits@1", 10) == 0.999
    assert published.value("shapes", "Hits@1", 1) == 1.0
    assert published.value("pong", "Hits@1", 1) is None  # not known: None, never 0


def test_each_number_is_typed_once():
    keys = [(e["world"], e["model"], e["metric"], e["num_steps"]) for e in published.entries()]
    assert len(keys) == len(set(keys))


def test_table_is_labelled_and_shows_every_world():
    text = published.table()
    assert published.LABEL in text
    for world in published.WORLDS.values():
        assert f"| {world} | C-SWM |" in text
    assert "| 2D Shapes | C-SWM | 100.0" in text and "99.9" in text


def test_missing_is_said_for_both_papers():
    missing = published.missing()
    assert set(missing) == {"kipf2020", "biza2021"} and all(len(v) > 40 for v in missing.values())


def test_the_file_ships_with_the_package():
    from importlib import resources

    text = resources.files("cswm_lib").joinpath("published.yaml").read_text()
    assert yaml.safe_load(text)["entries"]


def test_citation_says_where_a_row_comes_from():
    line = published.citation("shapes")
    assert line.startswith(published.LABEL) and "secondary" in line
    assert published.citation("pong") == ""
