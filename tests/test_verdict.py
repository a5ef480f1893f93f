"""The declared verdict rule (cswm_lib.verdict): its statistics and every outcome on edge cases."""

from __future__ import annotations

import numpy as np
import pytest

from cswm_lib.errors import CswmError
from cswm_lib.verdict import Rule, judge, sign_flip_p, t_interval, t_quantile, verdict


def seeds(*values: float, start: int = 11) -> dict[int, float]:
    return {start + i: v for i, v in enumerate(values)}


def controls(value: float, n: int) -> dict[str, dict[int, float]]:
    return {"no_transition": seeds(*[value] * n)}


def test_t_quantiles_match_the_tables():
    # Student's t, two-sided 95 % (df 1, 2, 4, 30) and one-sided 95 % (df 9), from any t table
    for q, df, want in [(0.975, 1, 12.7062), (0.975, 2, 4.3027), (0.975, 4, 2.7764), (0.975, 30, 2.0423),
                        (0.95, 9, 1.8331)]:
        assert t_quantile(q, df) == pytest.approx(want, abs=1e-4)


def test_t_interval_covers_the_mean_at_its_stated_rate_with_three_seeds():
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(4000):
        lo, hi = t_interval(rng.normal(1.0, 2.0, size=3))
        hits += lo <= 1.0 <= hi
    assert abs(hits / 4000 - 0.95) < 0.012  # a percentile bootstrap over 3 values covers ~75 %


def test_sign_flip_p_by_hand():
    assert sign_flip_p([0.3, 0.2, 0.1]) == 1 / 8  # all positive: only the observed signs reach it
    assert sign_flip_p([0.3, 0.2, 0.1, 0.4, 0.5]) == 1 / 32
    assert sign_flip_p([0.3, -0.2, 0.1]) == 3 / 8  # (+,+,+), (+,-,+) -> mean >= 0.0667; and (+,+,-)
    assert sign_flip_p([-0.1, -0.2]) == 1.0


def test_a_clear_effect_on_five_seeds_is_reproduced():
    v = judge(seeds(0.30, 0.55, 0.53, 0.40, 0.45), seeds(0.99, 0.98, 0.92, 0.95, 0.97),
              controls(0.6, 5), controls(0.6, 5), Rule(min_effect=0.05))
    assert v["verdict"] == "reproduced" and v["effect"]["p"] == 1 / 32
    lo, hi = v["effect"]["interval"]
    assert 0.05 < lo < v["effect"]["mean"] < hi


def test_the_same_effect_on_three_seeds_is_only_suggestive():
    v = judge(seeds(0.30, 0.55, 0.53), seeds(0.99, 0.98, 0.92), controls(0.6, 3), controls(0.6, 3))
    assert v["verdict"] == "suggestive" and v["effect"]["p"] == 1 / 8


def test_a_tiny_positive_difference_is_not_reproduced():
    base = seeds(0.70, 0.71, 0.72, 0.73, 0.74)
    new = {s: x + 0.001 for s, x in base.items()}  # +0.1 points on every seed
    v = judge(base, new, controls(0.5, 5), controls(0.5, 5), Rule(min_effect=0.05))
    assert v["verdict"] == "not reproduced"  # the interval rules out 5 points
    assert v["effect"]["interval"][1] < 0.05


def test_new_worse_than_baseline_while_both_learned_is_not_reproduced():
    v = judge(seeds(0.9, 0.92, 0.88, 0.91, 0.9), seeds(0.8, 0.82, 0.79, 0.81, 0.83),
              controls(0.3, 5), controls(0.3, 5))
    assert v["verdict"] == "not reproduced" and v["learned"] == {"baseline": True, "new": True}


def test_new_at_its_control_is_inconclusive_whatever_the_difference():
    v = judge(seeds(0.1, 0.1, 0.1, 0.1, 0.1), seeds(0.6, 0.6, 0.7, 0.6, 0.6), controls(0.0, 5),
              {"no_transition": seeds(0.5, 0.6, 0.5, 0.5, 0.5), "untrained": seeds(0.2, 0.2, 0.2, 0.2, 0.2)})
    assert v["verdict"] == "inconclusive" and "no_transition on seed 12" in v["why"]


def test_a_missing_seed_is_an_error_not_a_silent_drop():
    with pytest.raises(CswmError, match=r"seed\(s\) \[15\] are missing from one strategy"):
        judge(seeds(0.3, 0.4, 0.5, 0.4, 0.3), seeds(0.9, 0.9, 0.9, 0.9), controls(0.1, 5), controls(0.1, 5))
    with pytest.raises(CswmError, match="control 'no_transition' lacks seed"):
        judge(seeds(0.3, 0.4), seeds(0.9, 0.9), controls(0.1, 2), controls(0.1, 1))


def test_one_seed_is_inconclusive():
    v = judge(seeds(0.3), seeds(0.9), controls(0.1, 1), controls(0.1, 1))
    assert v["verdict"] == "inconclusive" and v["effect"]["interval"] is None


def test_a_ratio_claim_needs_both_strategies_to_learn_and_an_interval_above_the_factor():
    rule = Rule(claim="multiplies", min_effect=1.5)
    base, new = seeds(0.20, 0.22, 0.18, 0.21, 0.19), seeds(0.45, 0.43, 0.40, 0.44, 0.41)
    v = judge(base, new, controls(0.1, 5), controls(0.1, 5), rule)
    assert v["verdict"] == "reproduced" and v["effect"]["interval"][0] > 1.5
    assert v["effect"]["mean"] == pytest.approx(np.exp(np.mean(np.log([new[s] / base[s] for s in base]))))
    no_base = judge(base, new, controls(0.3, 5), controls(0.1, 5), rule)  # base below its control
    assert no_base["verdict"] == "inconclusive" and "means nothing" in no_base["why"]
    small = judge(base, {s: 1.1 * x for s, x in base.items()}, controls(0.1, 5), controls(0.1, 5), rule)
    assert small["verdict"] == "not reproduced"
    with pytest.raises(CswmError, match="factor min_effect > 1"):
        Rule(claim="multiplies", min_effect=0.05)


def test_not_tested_is_declared_and_wins():
    v = judge(seeds(0.3, 0.3), seeds(0.3, 0.3), controls(0.3, 2), controls(0.3, 2),
              not_tested="100 updates: below the 5,500 the slowest Shapes seed needed")
    assert v["verdict"] == "not tested at this scale" and "5,500" in v["why"]


def test_verdict_reads_records_controls_untrained_and_the_papers_setting():
    rows = []
    for seed, (b, n) in enumerate([(0.3, 0.9), (0.5, 0.95), (0.4, 0.97), (0.35, 0.92), (0.45, 0.99)], 11):
        for strategy, value in (("baseline", b), ("mixed", n)):
            rows += [dict(strategy=strategy, seed=seed, setting="local_dedup", num_steps=1, metric="Hits@1",
                          value=value),
                     dict(strategy=strategy, seed=seed, setting="local_dedup_no_transition", num_steps=1,
                          metric="Hits@1", value=0.618),
                     dict(strategy=strategy, seed=seed, setting="global_dedup", num_steps=1, metric="Hits@1",
                          value=value / 2)]
    untrained = [dict(strategy="untrained", seed=s, setting="local_dedup", num_steps=1, metric="Hits@1",
                      value=0.2) for s in range(11, 16)]
    v = verdict(rows, "claim", "4.1", "Shapes immovable", "mixed", paper_settings=["global_dedup"],
                untrained=untrained, scale="cpu", updates=7000, batch_size=64)
    assert set(v["controls"]["mixed"]) == {"local_dedup_no_transition", "untrained"}
    assert v["controls"]["baseline"]["untrained"]["mean"] == pytest.approx(0.2)
    assert v["learned"] == {"baseline": False, "mixed": True}  # 0.3-0.5 < 0.618
    assert v["verdict"] == "reproduced"
    assert v["paper_score"]["global_dedup"]["mixed"]["mean"] == pytest.approx(0.946 / 2)
    with pytest.raises(CswmError, match="recorded twice"):
        verdict(rows + rows[:1], "claim", "4.1", "Shapes immovable", "mixed")


def _shapes_rows() -> tuple[list[dict], list[dict]]:
    rows = []
    for seed, (b, n) in enumerate([(0.3, 0.9), (0.5, 0.95), (0.4, 0.97), (0.35, 0.92), (0.45, 0.99)], 11):
        for strategy, value in (("baseline", b), ("mixed", n)):
            for setting, x in (("local_dedup", value), ("local_dedup_no_transition", 0.618),
                               ("global_dedup", value / 2)):
                rows.append(dict(strategy=strategy, seed=seed, setting=setting, num_steps=1, metric="Hits@1",
                                 value=x))
    untrained = [dict(strategy="untrained", seed=s, setting="local_dedup", num_steps=1, metric="Hits@1",
                      value=0.2) for s in range(11, 16)]
    return rows, untrained


def test_tables_show_every_seed_both_controls_the_papers_setting_and_the_effect():
    from cswm_lib import report
    from cswm_lib.verdict import CLAIMS

    claim = CLAIMS["4.1"]
    rows, untrained = _shapes_rows()
    v = verdict(rows, claim.text, "4.1", "Shapes immovable", claim.new, setting=claim.setting,
                controls=claim.controls, paper_settings=claim.paper_settings, rule=claim.rule,
                untrained=untrained, updates=7000, batch_size=64, data="20000 transitions", scale="cpu")
    table = report.verdict_table([v])
    assert len(table.splitlines()) == 3 and "**reproduced**" in table and "7000 updates × 64" in table
    assert "mixed: 94.6 ± 3.6 (90.0, 95.0, 97.0, 92.0, 99.0)" in table  # every seed
    assert "no_transition 61.8 ± 0.0; untrained 20.0 ± 0.0 / no_transition 61.8" in table  # both
    base_half = np.array([0.3, 0.5, 0.4, 0.35, 0.45]) / 2  # the paper's own setting, both strategies
    new_half = np.array([0.9, 0.95, 0.97, 0.92, 0.99]) / 2
    paper = " / ".join(f"{100 * x.mean():.1f} ± {100 * x.std(ddof=1):.1f}" for x in (base_half, new_half))
    assert f"global_dedup: {paper}" in table
    lo, hi = v["effect"]["interval"]
    assert f"{100 * v['effect']['mean']:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}], p = 0.031" in table
    compact = report.verdict_table_compact([v])
    assert "(90.0" not in compact and "**reproduced** (cpu scale, 7000 updates)" in compact
    assert "| scale |" not in compact.splitlines()[0]  # the scale is in the verdict cell
    assert "| 1-step local_<wbr>dedup Hits@1 |" in compact  # long setting names may wrap after a _
    text = report.verdict_markdown([v])
    assert "at least 5 points" in text and "p < 0.05" in text and "5 seeds paired" in text


def test_history_table_keeps_earlier_sweeps_as_recorded():
    from cswm_lib import report

    earlier = report.history("08_immovable")
    assert earlier and all(name.startswith("cpu/history/08_immovable.") for name, _ in earlier)
    table = report.history_table(earlier)
    assert "reproduced" in table and "inconclusive" in table and "rule of their time" in table
    assert "Cubes immovable" in table and "mixed: 96.8 ± 4.1" in table  # read in today's names
    assert "| 8c2d9a9 |" in table and "7000 × 64" in table and "(99.7" not in table  # means only


def test_a_verdict_judges_one_eval_set_and_gives_its_standard_error():
    rows, untrained = _shapes_rows()
    on_1000 = [dict(r, eval_episodes=1000) for r in rows]
    v = verdict(on_1000, "claim", "4.1", "Shapes immovable", "mixed")
    assert v["eval_episodes"] == 1000
    p = np.mean([0.9, 0.95, 0.97, 0.92, 0.99])
    assert v["eval_se"]["mixed"] == pytest.approx(np.sqrt(p * (1 - p) / 1000))
    assert verdict(rows, "claim", "4.1", "Shapes immovable", "mixed")["eval_se"] is None  # no set named
    with pytest.raises(CswmError, match="several eval sets"):
        verdict(on_1000 + [dict(r, eval_episodes=100) for r in rows], "claim", "4.1", "Shapes immovable",
                "mixed")
