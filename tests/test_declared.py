"""A page's Budget section is generated from the parameter file: values and the reasoning beside them."""

from cswm_lib.report.declared import declaration, declaration_markdown

PARAMS = """scale: cpu
chapters:
  07_agents:
    eps: 0.5
  # Sec. 4.3: why this budget,
  # in two lines.
  10_local_global:
    # and more reasoning at the top.
    seeds: [301, 302]  # not part of the reasoning
    num_updates: 3000
"""


def test_values_and_reasoning_come_from_the_file(tmp_path):
    (tmp_path / "cpu.yaml").write_text(PARAMS)
    values, text = declaration("10_local_global", "cpu", tmp_path)
    assert values == {"seeds": [301, 302], "num_updates": 3000}
    assert text == "Sec. 4.3: why this budget, in two lines. and more reasoning at the top."
    assert declaration("07_agents", "cpu", tmp_path) == ({"eps": 0.5}, "")
    page = declaration_markdown("10_local_global", "cpu", tmp_path,
                                record={"declared": {"params_commit": "abcdef0123"}})
    assert "| num_updates | 3000 |" in page and "commit abcdef0" in page and page.endswith("at the top.")
    assert "No `cpu` parameters" in declaration_markdown("11_explorer", "cpu", tmp_path)


def test_the_book_declares_every_verdict_run_with_its_reasoning():
    for chapter in ("08_immovable", "09_atari_time_aligned", "10_local_global"):
        values, text = declaration(chapter)
        assert values.get("seeds") and "declared" in text.lower(), chapter
