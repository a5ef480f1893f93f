"""Tables and lines a reader sees on a chapter page: compact (<= 15 rows), short enough for the text
column, and every number taken from the rows they were given."""

from cswm_lib import report
from cswm_lib.evaluate import NEAREST_START

SETTINGS = ["global_dedup", "local_dedup", "global_dedup_no_transition", "local_dedup_no_transition"]


def _rows(seeds=3):
    rows, v = [], 0.0
    for d in ("Shapes immovable", "Cubes immovable"):
        for n in ("baseline", "mixed"):
            for setting in SETTINGS:
                for metric in ("Hits@1", "MRR", NEAREST_START):
                    if metric == NEAREST_START and not setting.startswith("local"):
                        continue
                    for steps in (1, 5):
                        v += 0.001
                        rows.append(dict(dataset=d, strategy=n, setting=setting, metric=metric,
                                         num_steps=steps, mean=v, std=v / 10, n_seeds=seeds))
    return rows


def test_score_table_is_a_compact_pivot_with_a_control_row_per_model():
    rows = _rows()
    text = report.score_table([r for r in rows if r["num_steps"] == 1], SETTINGS)
    table, note = text.split("\n\n")
    lines = table.splitlines()
    assert lines[0] == f"| dataset | strategy | predictor | global_dedup | local_dedup | {NEAREST_START} |"
    assert len(lines) == 2 + 8  # 2 datasets x 2 strategies x (model, no_transition)
    assert "3 seed(s)" in note and "1-step Hits@1" in note
    # every cell is the value of its own row: the control row holds the _no_transition scores
    def pct(r):
        return f"{100 * r['mean']:.1f} ± {100 * r['std']:.1f}"

    pick = {(r["dataset"], r["strategy"], r["setting"], r["metric"]): r for r in rows if r["num_steps"] == 1}
    model = pick["Cubes immovable", "baseline", "local_dedup", "Hits@1"]
    control = pick["Cubes immovable", "baseline", "local_dedup_no_transition", "Hits@1"]
    start = pick["Cubes immovable", "baseline", "local_dedup_no_transition", NEAREST_START]
    model_line = next(ln for ln in lines if ln.startswith("| Cubes immovable | baseline | model |"))
    control_line = next(ln for ln in lines if ln.startswith("| Cubes immovable | baseline | no_transition |"))
    assert model_line.split(" | ")[4] == pct(model)
    assert control_line.split(" | ")[4] == pct(control) and control_line.endswith(f"{pct(start)} |")
    # no column name a browser cannot wrap that is longer than the book's longest setting or metric name
    assert max(len(c.strip()) for c in lines[0].split("|")) <= len(NEAREST_START)  # nearest_start


def test_score_table_without_controls_or_start_column():
    rows = [r for r in _rows(seeds=1) if r["num_steps"] == 1]
    lines = report.score_table(rows, ["global_dedup", "local_dedup"], start_setting=None).splitlines()
    assert lines[0] == "| dataset | strategy | global_dedup | local_dedup |"
    assert len([ln for ln in lines if ln.startswith("| ") and "immovable" in ln]) == 4


def test_run_summary_lines_fit_the_text_column():
    record = {"scale": "cpu", "cores": 2, "load": [8.55, 1, 1], "wall_seconds": 600,
              "command": "python -m cswm_lib.book run --params book/params/cpu.yaml "
                         "--chapters 09_atari_time_aligned",
              "note": "11 of the 12 runs were trained beforehand by the same pipeline " * 3}
    text = report.run_summary(record)
    assert max(len(line) for line in text.splitlines()) <= 80
    joined = " ".join(line.strip().removesuffix(" \\") for line in text.splitlines())
    assert record["command"] in joined and "10 min wall" in joined and "load average 8.6" in joined
    assert "trained beforehand" in joined
    assert "command not recorded" in report.run_summary({"scale": "cpu"})


def test_lift_and_signs_return_their_tables_and_print_nothing(capsys):
    rows = [r for r in _rows() if r["num_steps"] == 1]
    names = ["Shapes immovable", "Cubes immovable"]
    out, printed = report.lift(rows, names, ["baseline", "mixed"], ["global_dedup", "local_dedup"])
    assert capsys.readouterr().out == ""  # a table function returns its table; the chapter shows it
    assert printed.startswith(f"| dataset | strategy | global_dedup | local_dedup | {NEAREST_START} |")
    assert len(out) == 4 and len(printed.split("\n\n")[0].splitlines()) == 2 + 4
    # with no-transition twins: a row per predictor, the twins in their setting's column
    settings = ["global_dedup", "global_dedup_no_transition", "local_dedup", "local_dedup_no_transition"]
    out, text = report.lift(rows, names, ["baseline", "mixed"], settings)
    table = text.split("\n\n")[0].splitlines()
    assert table[0] == f"| dataset | strategy | predictor | global_dedup | local_dedup | {NEAREST_START} |"
    assert len(table) == 2 + 8 and "| no_transition |" in table[3]
    key = "Shapes immovable | baseline"
    assert table[3].split(" | ")[3] == f"{100 * out[key]['global_dedup_no_transition']:.1f}"
    assert set(out[key]) == {*settings, "nearest_start"}
    _, text = report.signs(rows, names, "mixed", ["global_dedup", "local_dedup"])
    assert "| diff |" in text


def test_format_table_takes_the_columns_it_is_given_and_leaves_missing_cells_empty():
    text = report.format_table([{"a": 1, "b": "x"}, {"b": "y", "c": 3}], ["b", "a"])
    assert text.splitlines() == ["| b | a |", "|---|---|", "| x | 1 |", "| y |  |"]
    assert report.format_table([{"z": 1, "y": 2}]).splitlines()[0] == "| z | y |"  # the first row's keys
    assert report.format_table([]).splitlines() == ["|  |", "|"]


def test_hits_by_steps_has_a_row_per_setting_and_a_column_per_roll_out_length():
    results = {(label, L): {"Hits@1": v / 100 + L / 1000} for L in (1, 5)
               for v, label in ((10, "a"), (20, "b"))}
    lines = report.hits_by_steps(results, ["b", "a"]).splitlines()
    assert lines[0] == "| setting | L=1 | L=5 |"
    assert lines[2:] == ["| b | 20.10 | 20.50 |", "| a | 10.10 | 10.50 |"]


def test_split_table_a_row_per_split_and_a_line_per_pair():
    split = {"episodes": 5, "attempts": 9, "dropped_ended": 0, "dropped_point": 3, "dropped_lives": 0,
             "dropped_duplicate": 1, "mean_burnin": 61.25, "distinct_starts": 4}
    stats = {"Pong": {"train": split, "test": dict(split, episodes=2, attempts=2, dropped_point=0,
                                                   dropped_duplicate=0),
                      "train-test": {"shared_start": 0, "shared_any": 7}}}
    table, note, pairs = report.split_table(stats).split("\n\n")
    lines = table.splitlines()
    header = "| game | split | episodes | attempts | ended | point | lives | dup | burn-in | starts |"
    assert lines[0] == header
    assert lines[2] == "| Pong | train | 5 | 9 | 0 | 3 | 0 | 1 | 61.2 | 4 |" and len(lines) == 4
    assert "dup" in note
    assert pairs == "- Pong, train and test: 0 shared start states, 7 shared states anywhere in the episodes"
    # game ids are shortened in the narrow column
    table = report.split_table({"SpaceInvadersDeterministic-v4": {"train": split}})
    assert "| SpaceInvaders | train |" in table


def test_score_table_names_its_eval_set_and_pivots_any_roll_out_length():
    rows = [dict(r, eval_episodes=1000) for r in _rows()]
    text = report.score_table([r for r in rows if r["num_steps"] == 5], SETTINGS, num_steps=5)
    head, table, note = text.split("\n\n")
    assert head == "On 1000 eval episodes:" and note.startswith("5-step Hits@1")
    pick = next(r for r in rows if (r["dataset"], r["strategy"], r["setting"], r["metric"], r["num_steps"])
                == ("Shapes immovable", "mixed", "global_dedup", "Hits@1", 5))
    line = next(ln for ln in table.splitlines() if ln.startswith("| Shapes immovable | mixed | model |"))
    assert line.split(" | ")[3] == f"{100 * pick['mean']:.1f} ± {100 * pick['std']:.1f}"
    # two eval sets in one table would mix scores of different candidate counts: no size is claimed
    mixed = rows[:1] + [dict(r, eval_episodes=100) for r in rows[1:]]
    assert not report.score_table(mixed, SETTINGS).startswith("On ")
