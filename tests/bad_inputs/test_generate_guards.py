"""generate: numbers out of range and flags that do not apply are one line before any work; SIGTERM,
like Ctrl-C, keeps the old file and leaves no temporary file."""

from __future__ import annotations

import signal

import pytest

from .common import (
    _gen_argv,
    _generate_main,
    _h5,
    _leftovers,
    case,
    generating,
    refused,
    snapshot,
    unchanged,
)

FLAGS = {
    "generate with --seed -1": ("traceback", ["--seed", -1], "--seed must be in [0, "),
    "generate with --seed 2^63": ("traceback", ["--seed", 2**63], "--seed must be in [0, "),
    "generate a Shapes dataset with --warmup 10": (
        "silent_wrong",
        ["--warmup", 10],
        "--warmup applies to Atari",
    ),
    "generate a Pong dataset with --warmup 10^9": (
        "traceback",
        ["--env-id", "PongDeterministic-v4", "--atari", "--warmup", 10**9],
        "--warmup must be a whole number in 0..100000",
    ),
}
FLAG_CASES = [pytest.param(case(n, k), more, want, id=n) for n, (k, more, want) in FLAGS.items()]


@pytest.mark.parametrize(("name", "more", "want"), FLAG_CASES)
def test_generate_refuses_a_number_out_of_range_before_any_work(name, more, want, tmp_path, capsys):
    out = _h5(tmp_path, "out.h5")  # an earlier output of ours: it must stay as it is
    before = snapshot(tmp_path)
    refused(_generate_main, _gen_argv(out, *more), capsys, want)
    unchanged(before, tmp_path)


SIGTERMS = [
    case("SIGTERM to the main process of a 2-worker generate", "lost_or_overwritten"),
    case("SIGTERM to the process group of a 2-worker generate", "lost_or_overwritten"),
    case("SIGTERM to a 1-worker generate", "lost_or_overwritten"),
]


@pytest.mark.parametrize("name", SIGTERMS)
def test_sigterm_during_generation_keeps_the_old_file_and_leaves_no_temp_file(name, tmp_path):
    out = _h5(tmp_path, "shapes.h5")  # the previous output, a dataset of ours
    before = snapshot(tmp_path)
    child = generating(out, name)
    rc = child.interrupt(group="group" in name, sig=signal.SIGTERM)
    assert rc in (143, 2, -signal.SIGTERM), child.err.decode()[-1000:]
    last = child.err.decode().strip().splitlines()[-1]
    assert "Traceback" not in child.err.decode() and (last == "terminated" or last.startswith("error: "))
    unchanged(before, tmp_path)
    assert _leftovers(tmp_path) == []
