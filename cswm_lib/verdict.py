"""Verdicts on the paper's claims: the declared rule, its statistics, and how a verdict reads.

A verdict compares a new negative-sampling strategy with the baseline over seeds (one run per
seed and strategy, paired by seed: both runs of a seed start from the same initial weights and see
the same data). The rule is declared here, before any run it judges, and every verdict carries it:

**Learned dynamics.** A strategy has learned dynamics when its score beats each of its own controls
on every seed. A control is what a trivial predictor scores with the same candidates: the
no-transition prediction (the same encoder, :math:`\\hat z_L = z_0`), and the untrained encoder.
Chance is no control: an untrained model beats 1/11.

**The effect.** For a claim that the new strategy *improves* a score, the per-seed differences
``new - base``; for a claim that it *multiplies* a score (4.2's "roughly doubles"), the per-seed
ratios ``new / base``, judged on the log scale. Both come with a two-sided t-interval over the
``n`` seeds (exact coverage when the per-seed effects are normal; 95 % by default) and a one-sided
exact sign-flip permutation p-value (all :math:`2^n` sign assignments of the paired effects; no
normality needed; with ``n`` seeds it cannot go below :math:`2^{-n}`: 1/8 for 3 seeds, 1/32 for 5).

**Outcomes**, in this order:

- ``not tested at this scale`` -- declared by the caller when the budget is known to lie below any
  learning (the reason is recorded);
- ``inconclusive`` -- the new strategy has no learned dynamics on some seed (for a ratio claim:
  either strategy), or fewer than 2 seeds, or the interval holds the minimum effect;
- ``reproduced`` -- the interval lies at or above the minimum effect and p < alpha;
- ``suggestive`` -- the interval lies at or above the minimum effect but p >= alpha (too few seeds
  for the test: with fewer than 5 seeds no exact test reaches p < 0.05);
- ``not reproduced`` -- the interval lies below the minimum effect: the claimed effect is ruled out
  although the new strategy learned dynamics.

A seed present for one strategy and missing for the other is an error, never a silent drop.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from cswm_lib.errors import CswmError

OUTCOMES = ("reproduced", "suggestive", "inconclusive", "not reproduced", "not tested at this scale")


@dataclass(frozen=True)
class Rule:
    """The declared verdict rule (see the module docstring).

    ``claim``: ``"improves"`` (effect = difference, ``min_effect`` in score units, e.g. 0.05 =
    5 points of Hits@1) or ``"multiplies"`` (effect = ratio, ``min_effect`` a factor, e.g. 1.5 for
    "roughly doubles"). ``alpha``: the one-sided level of the permutation test. ``level``: the
    coverage of the interval."""

    claim: str = "improves"
    min_effect: float = 0.05
    alpha: float = 0.05
    level: float = 0.95

    def __post_init__(self) -> None:
        if self.claim not in ("improves", "multiplies"):
            raise CswmError(f"claim must be 'improves' or 'multiplies', got {self.claim!r}")
        if self.claim == "multiplies" and not self.min_effect > 1:
            raise CswmError(f"a 'multiplies' claim needs a factor min_effect > 1, got {self.min_effect}")
        if not 0 < self.alpha < 1 or not 0 < self.level < 1:
            raise CswmError(f"alpha and level must lie in (0, 1), got {self.alpha}, {self.level}")


# ------------------------------------------------------------------------------------ statistics


def _beta_inc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b) by its continued fraction (Lentz's method)."""
    if x <= 0 or x >= 1:
        return float(x >= 1)
    if x > (a + 1) / (a + b + 2):  # the fraction converges fast below the mean
        return 1.0 - _beta_inc(b, a, 1.0 - x)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x)
                     + b * math.log(1.0 - x)) / a
    f, c, d = 1.0, 1.0, 0.0
    for i in range(400):
        m = i // 2
        if i == 0:
            num = 1.0
        elif i % 2:
            num = -((a + m) * (a + b + m) * x) / ((a + 2 * m) * (a + 2 * m + 1))
        else:
            num = (m * (b - m) * x) / ((a + 2 * m - 1) * (a + 2 * m))
        d = 1.0 + num * d
        d = 1.0 / (d if abs(d) > 1e-300 else 1e-300)
        c = 1.0 + num / c if abs(c) > 1e-300 else 1e-300
        f *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return front * (f - 1.0)


def t_quantile(q: float, df: int) -> float:
    """The ``q`` quantile of Student's t with ``df`` degrees of freedom (0.5 < q < 1), by bisection
    on its CDF, 1 - I_{df/(df+t^2)}(df/2, 1/2) / 2."""
    lo, hi = 0.0, 1e7
    for _ in range(200):
        t = (lo + hi) / 2
        cdf = 1.0 - 0.5 * _beta_inc(df / 2, 0.5, df / (df + t * t))
        lo, hi = (t, hi) if cdf < q else (lo, t)
    return (lo + hi) / 2


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Two-sided ``level`` t-interval of the mean of ``values`` (n >= 2): mean ± t_{n-1} s / sqrt(n).
    Its coverage is exact for normal values at every n (a percentile bootstrap over 3 values can
    only return their [min, max], whose coverage is about 75 %)."""
    v = np.asarray(values, dtype=float)
    if v.size < 2:
        raise CswmError(f"an interval needs at least 2 values, got {v.size}")
    half = t_quantile(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size)
    return float(v.mean() - half), float(v.mean() + half)


def sign_flip_p(effects: Sequence[float]) -> float:
    """One-sided exact permutation p-value that the mean of paired ``effects`` is > 0: the share of
    all 2^n sign assignments whose mean is at least the observed one (ties count). n <= 20."""
    e = np.asarray(effects, dtype=float)
    if not 1 <= e.size <= 20:
        raise CswmError(f"the exact sign-flip test takes 1 to 20 paired effects, got {e.size}")
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=e.size)))
    means = (signs * np.abs(e)).mean(1)
    return float(np.mean(means >= e.mean() - 1e-12))


def eval_se(hits: float, queries: int) -> float:
    """The eval set's own standard error of a Hits@k score ``hits`` on ``queries`` queries (one
    per eval episode): the binomial ``sqrt(p (1 - p) / n)``, what one seed's score would move by
    on another eval set of the same size."""
    return math.sqrt(max(hits * (1 - hits), 0.0) / queries)


def summary(values: Mapping[int, float]) -> dict[str, Any]:
    """Mean, std (n - 1) and every seed of per-seed values."""
    x = np.array(list(values.values()), dtype=float)
    return {"mean": float(x.mean()), "std": float(x.std(ddof=1)) if x.size > 1 else 0.0,
            "seeds": {str(s): float(v) for s, v in values.items()}}


# ------------------------------------------------------------------------------------ the rule


def _paired(base: Mapping[int, float], new: Mapping[int, float], what: str) -> list[int]:
    if set(base) != set(new):
        missing = sorted(set(base) ^ set(new))
        raise CswmError(f"{what}: seed(s) {missing} are missing from one strategy; every seed must "
                        "have both runs (re-run or drop the seed from both on purpose)")
    if not base:
        raise CswmError(f"{what}: no seed has scores")
    return sorted(base)


def learned(score: Mapping[int, float], controls: Mapping[str, Mapping[int, float]]) -> tuple[bool, str]:
    """Whether ``score`` beats every control on every seed, and which seeds/controls fail."""
    bad = []
    for name, c in controls.items():
        missing = sorted(set(score) - set(c))
        if missing:
            raise CswmError(f"control {name!r} lacks seed(s) {missing}")
        bad += [f"{name} on seed {s}" for s in sorted(score) if not score[s] > c[s]]
    return not bad, ", ".join(bad)


def judge(
    base: Mapping[int, float],
    new: Mapping[int, float],
    base_controls: Mapping[str, Mapping[int, float]],
    new_controls: Mapping[str, Mapping[int, float]],
    rule: Rule = Rule(),
    not_tested: str | None = None,
    names: tuple[str, str] = ("baseline", "new"),
) -> dict[str, Any]:
    """The verdict of ``rule`` on per-seed scores ``{seed: value}`` of both strategies and their
    controls ``{control name: {seed: value}}``. Returns ``verdict``, ``why``, ``effect`` (mean,
    interval, p, n) and ``learned`` per strategy."""
    b, w = names
    seeds = _paired(base, new, f"{w} vs {b}")
    learned_base, why_base = learned(base, base_controls)
    learned_new, why_new = learned(new, new_controls)
    n = len(seeds)
    if rule.claim == "multiplies":
        if any(base[s] <= 0 or new[s] <= 0 for s in seeds):
            effects = None
        else:
            effects = [math.log(new[s] / base[s]) for s in seeds]
        threshold, fmt = math.log(rule.min_effect), (lambda x: f"x{math.exp(x):.2f}")
    else:
        effects = [new[s] - base[s] for s in seeds]
        threshold, fmt = rule.min_effect, (lambda x: f"{100 * x:+.1f} points")
    effect: dict[str, Any] = {"n": n, "mean": None, "interval": None, "p": None, "level": rule.level,
                              "scale": "ratio" if rule.claim == "multiplies" else "difference"}
    if effects is not None:
        mean = float(np.mean(effects))
        lo, hi = t_interval(effects, rule.level) if n >= 2 else (None, None)
        unlog = math.exp if rule.claim == "multiplies" else (lambda x: x)
        effect |= {"mean": unlog(mean), "p": sign_flip_p(effects),
                   "interval": None if lo is None else [unlog(lo), unlog(hi)]}

    def out(verdict: str, why: str) -> dict[str, Any]:
        return {"verdict": verdict, "why": why, "effect": effect, "rule": asdict(rule), "seeds": seeds,
                "learned": {b: learned_base, w: learned_new}, "not_tested": not_tested}

    if not_tested:
        return out("not tested at this scale", not_tested)
    if not learned_new:
        return out("inconclusive", f"{w} shows no learned dynamics: at or below its control ({why_new})")
    if rule.claim == "multiplies" and not learned_base:
        return out("inconclusive", f"{b} shows no learned dynamics ({why_base}): a ratio of scores "
                   "without dynamics means nothing")
    if effects is None or n < 2:
        return out("inconclusive", f"{n} seed: no interval" if n < 2 else "a score of 0: no ratio")
    lo, hi = (math.log(x) for x in effect["interval"]) if rule.claim == "multiplies" else effect["interval"]
    need = fmt(threshold)
    if lo >= threshold and effect["p"] < rule.alpha:
        return out("reproduced", f"the {rule.level:.0%} interval lies above the minimum effect {need} "
                   f"and p = {effect['p']:.3f} < {rule.alpha}")
    if lo >= threshold:
        return out("suggestive", f"the interval lies above the minimum effect {need}, but with {n} seeds "
                   f"the exact test cannot reach p < {rule.alpha} (p = {effect['p']:.3f})")
    if hi < threshold:
        return out("not reproduced", f"{w} learned dynamics, and the {rule.level:.0%} interval lies below "
                   f"the minimum effect {need}")
    return out("inconclusive", f"the {rule.level:.0%} interval holds the minimum effect {need}")


# ------------------------------------------------------------------------------------ records


def seed_values(records: Sequence[Mapping[str, Any]], strategy: str, setting: str, num_steps: int,
                metric: str, dataset: str | None = None) -> dict[int, float]:
    """``{seed: value}`` of per-seed result rows (``strategy``, ``seed``, ``setting``, ``num_steps``,
    ``metric``, ``value``); a seed recorded twice is an error."""
    out: dict[int, float] = {}
    for r in records:
        key = (r["strategy"], r["setting"], r["num_steps"], r["metric"])
        if key == (strategy, setting, num_steps, metric) and r.get("dataset", dataset) == dataset:
            if int(r["seed"]) in out:
                raise CswmError(f"seed {r['seed']} of {strategy}/{setting} is recorded twice")
            out[int(r["seed"])] = float(r["value"])
    return out


def verdict(
    records: Sequence[Mapping[str, Any]],
    claim: str,
    experiment: str,
    dataset: str,
    new: str,
    base: str = "baseline",
    setting: str = "local_dedup",
    controls: Sequence[str] = ("{setting}_no_transition",),
    paper_settings: Sequence[str] = (),
    num_steps: int = 1,
    metric: str = "Hits@1",
    rule: Rule = Rule(),
    updates: int | None = None,
    batch_size: int | None = None,
    data: str = "",
    scale: str = "",
    not_tested: str | None = None,
    untrained: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The verdict on one claim from per-seed result ``records`` of one dataset.

    ``controls``: settings whose scores are controls of the same strategy (``{setting}`` is
    replaced, e.g. ``local_later_dedup_no_transition``); ``untrained``: per-seed rows of the
    untrained encoder (strategy ``"untrained"``), a control of both strategies in ``setting``.
    ``paper_settings``: the settings the paper reported; both strategies' scores in them are shown
    beside ours (not judged). Returns a JSON-ready dict: the claim, both strategies' scores and controls
    (every seed), the effect with its interval and p-value, the rule, the budget and the verdict."""
    sizes = {r.get("eval_episodes") for r in records}
    if len(sizes) > 1:
        raise CswmError(f"{experiment} {dataset}: records of several eval sets {sorted(map(str, sizes))}; "
                        "judge one set (select the records of one eval_episodes)")
    n_eval = sizes.pop() if sizes else None
    v = {s: seed_values(records, s, setting, num_steps, metric) for s in (base, new)}
    c: dict[str, dict[str, dict[int, float]]] = {}
    for s in (base, new):
        c[s] = {name.format(setting=setting): seed_values(records, s, name.format(setting=setting),
                                                          num_steps, metric) for name in controls}
        u = seed_values(untrained, "untrained", setting, num_steps, metric) if untrained else {}
        if u:
            c[s]["untrained"] = u
    result = judge(v[base], v[new], c[base], c[new], rule, not_tested, (base, new))
    paper = {p: {s: summary(seed_values(records, s, p, num_steps, metric)) for s in (base, new)}
             for p in paper_settings}
    return {
        "claim": claim, "experiment": experiment, "dataset": dataset,
        "score": f"{num_steps}-step {setting} {metric}", "setting": setting, "num_steps": num_steps,
        "metric": metric, "base": base, "new": new, "scale": scale, "updates": updates,
        "batch_size": batch_size, "data": data,
        "base_score": summary(v[base]), "new_score": summary(v[new]),
        "controls": {s: {k: summary(x) for k, x in c[s].items() if x} for s in (base, new)},
        "paper_score": paper,
        "eval_episodes": n_eval,
        "eval_se": {s: eval_se(float(np.mean(list(v[s].values()))), n_eval) for s in (base, new)}
        if n_eval and metric.startswith("Hits") and all(v.values()) else None,
        **result,
    }


@dataclass(frozen=True)
class Claim:
    """One claim of the paper as the book tests it, declared before any run that judges it: the
    strategy it is about, the score (``setting``, 1-step ``metric``), the controls that must be
    beaten (settings of the same strategy; the untrained encoder is added by the pipeline), the
    settings the paper itself reported (shown beside ours) and the rule."""

    section: str
    text: str
    new: str
    setting: str
    rule: Rule
    controls: tuple[str, ...] = ("{setting}_no_transition",)
    paper_settings: tuple[str, ...] = ()
    metric: str = "Hits@1"
    chapter: str = ""  # the book chapter that tests it (its Verdict section)


#: The paper's three claims (Sec. 4.1-4.3), each declared once; chapters, the README and the intro
#: use these words. Scores: 4.1 the local score (a model without dynamics cannot pass its
#: no-transition control, the no-op share); 4.2 the global score, as C-SWM published it for Atari,
#: judged as a ratio; 4.3 the local score over the states after o_0 (``local_later_dedup``), where
#: the no-transition control is "the nearest other state" instead of 0 by construction.
CLAIMS = {
    "4.1": Claim("4.1", "mixing episodic and out-of-episode negatives (β = 0.5) learns the dynamics of "
                 "immovable objects that batch negatives miss", "mixed", "local_dedup",
                 Rule("improves", 0.05), paper_settings=("global_dedup",), chapter="08_immovable"),
    "4.2": Claim("4.2", "time-aligned negatives roughly double C-SWM's score on random-policy Atari data",
                 "time_aligned", "global", Rule("multiplies", 1.5), chapter="09_atari_time_aligned"),
    "4.3": Claim("4.3", "mixing episodic and out-of-episode negatives raises the local score on "
                 "agent-collected Atari data", "mixed", "local_later_dedup", Rule("improves", 0.05),
                 paper_settings=("local_dedup", "batched_dedup"), chapter="10_local_global"),
}
