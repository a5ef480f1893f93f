"""One name per concept: the library, the chapters, the book's prose and parameters, and the
recorded results as loaded (:func:`cswm_lib.report.results.load_record`) use the book's names only
(:mod:`cswm_lib.vocabulary`). The retired spellings below may appear only in the one mapping table
of old names (``cswm_lib/vocabulary.py``); recorded files on disk keep them and are read through it.
"""

from __future__ import annotations

import json
import re

import pytest

from cswm_lib import vocabulary
from cswm_lib.report.results import load_record
from cswm_lib.utils import project_root

ROOT = project_root()

#: retired spelling -> the pattern that finds it (as a field, parameter or value; the English word
#: "negatives" in prose, the module cswm_lib.negatives and matplotlib's own ``label=`` are fine)
RETIRED = {
    "negatives (the field is strategy)":
        r"""["']negatives["']|\bnegatives\s*=(?!=)|(?<!cswm_lib)\.negatives\b""",
    "a strategy label (the key is the strategy id)": r"""episodic\+|episodic \+ ooe|["']time-aligned["']""",
    "mode (the name is setting)":
        r"""["']modes?["']|\bmodes?\s*=(?!=)(?!\s*["'][rwab+]{1,3}["'])|\bMODES\b|\bstart_mode\b|\blocal_mode\b""",
    # the setting "dedup" is retired; the parameter dedup= (values published / correct) stays
    "dedup as a setting (global_dedup)":
        r"""(?<!get\()["'`]dedup(_correct)?(_no_transition)?["'`|](?!\s*[:\]]|, dedup\b)""",
    "a metric's other spelling (Hits@1, MRR)": r"""\bhits@\d|\bH@\d|["']mrr["']""",
    "argmin=o_0 (nearest_start)": r"""argmin=o_0|local_argmin_o0""",
    "steps as a field (num_steps)": r"""["']steps["']""",
}
#: the one mapping table of old names, which must name them
EXEMPT = {"cswm_lib/vocabulary.py"}
SOURCES = sorted(
    [p for p in (ROOT / "cswm_lib").rglob("*.py")]
    + list((ROOT / "book" / "chapters").glob("*.py"))
    + list((ROOT / "book" / "params").glob("*.yaml"))
    + [ROOT / "book" / "intro.md", ROOT / "README.md"]
)


def retired_in(text: str) -> list[str]:
    """``"line N: <what> in <line>"`` for every retired spelling in ``text``."""
    found = []
    for n, line in enumerate(text.splitlines(), 1):
        for what, pattern in RETIRED.items():
            if re.search(pattern, line):
                found.append(f"line {n}: {what}: {line.strip()[:100]}")
    return found


def test_the_patterns_find_what_they_retire_and_spare_the_rest():
    assert retired_in('TrainConfig(negatives="mixed")') and retired_in('r["mode"]')
    assert retired_in('settings=["dedup", "local_dedup"]') and retired_in("`argmin=o_0`")
    assert retired_in('{"episodic+out-of-episode": {}}') and retired_in('r["hits@1"]')
    assert not retired_in("from cswm_lib.negatives import sample_negatives  # episodic negatives")
    assert not retired_in('settings=["global_dedup", "local_dedup"], strategy="mixed"')
    assert not retired_in('ax.plot(x, y, label=f"{strategy}")  # eval_mode(model)')
    assert not retired_in('tarfile.open(fileobj=buf, mode="w")')  # a file's mode is no setting
    assert retired_in('table["dedup_correct", steps]') and retired_in('["global", "dedup", "local"]')
    assert not retired_in('spec.get("dedup", dedup)') and not retired_in('r["dedup"]')  # the parameter


@pytest.mark.parametrize("path", [p.relative_to(ROOT).as_posix() for p in SOURCES
                                  if p.relative_to(ROOT).as_posix() not in EXEMPT])
def test_the_library_chapters_and_prose_use_one_name_per_concept(path):
    found = retired_in((ROOT / path).read_text())
    assert not found, f"{path} uses retired spellings:\n" + "\n".join(found)


@pytest.mark.parametrize("path", sorted((ROOT / "book" / "results").glob("*/*.json")), ids=str)
def test_recorded_results_read_in_the_books_names(path):
    found = retired_in(json.dumps(load_record(path), indent=0, ensure_ascii=False))
    # a claim, note or command is prose recorded as it was written (the original flags included)
    assert not [f for f in found if '"claim"' not in f and '"command"' not in f and '"note"' not in f]


def test_old_records_map_to_the_new_names_and_keep_their_prose():
    old = {"results": {"table": [{"negatives": "episodic+out-of-episode", "mode": "dedup_no_transition",
                                  "metric": "argmin=o_0"}],
                       "curves": {"Pong": {"time-aligned": {"1": {"dedup|1|Hits@1": [0.5]}}}},
                       "verdicts": [{"new": "time-aligned", "score": "1-step dedup Hits@1",
                                     "why": "time-aligned > baseline", "claim": "time-aligned negatives"}]}}
    new = vocabulary.modernise(old)["results"]
    assert new["table"] == [{"strategy": "mixed", "setting": "global_dedup_no_transition",
                             "metric": "nearest_start"}]
    assert new["curves"] == {"Pong": {"time_aligned": {"1": {"global_dedup|1|Hits@1": [0.5]}}}}
    assert new["verdicts"] == [{"new": "time_aligned", "score": "1-step global_dedup Hits@1",
                                "why": "time_aligned > baseline", "claim": "time-aligned negatives"}]
    assert vocabulary.name("local_dedup") == "local_dedup" and vocabulary.name("Pong") == "Pong"
