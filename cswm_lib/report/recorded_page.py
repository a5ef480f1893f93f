"""The run an experiment page (chapters 08, 09 and 10) shows in its result sections: the recorded
reference run (``book/results/<scale>/<chapter>.json``) when the chapter runs at another scale, else
the chapter's own run. A :class:`PageRun` holds one run's record; each of its methods fills one
place of the page -- learning curves, score table, per-seed table, roll-out lengths, object slots --
and every table it returns opens with the run's scale label, so that no page shows numbers without
saying which run they come from. :func:`show_smoke_run` is the folded section that shows the
chapter's own run when the result sections show the reference one."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cswm_lib import analysis
from cswm_lib.evaluate import NO_TRANSITION
from cswm_lib.experiments import select, verdict_set
from cswm_lib.report.figures import plot_curve_grid, plot_slot_grid, plot_steps
from cswm_lib.report.page import ExperimentPage, slot_paths_of
from cswm_lib.report.results import reference_run
from cswm_lib.report.tables import score_table, slot_lengths_text
from cswm_lib.tables import format_table, show_markdown
from cswm_lib.verdict import CLAIMS

#: What a run at the small scale is, wherever the page shows it.
SMOKE_NOTE = "smoke run: proves the pipeline runs; its numbers are not evidence"


def _hardware(provenance: dict[str, Any]) -> str:
    return ((provenance.get("cuda") or {}).get("name") or provenance.get("cpu_model")
            or "hardware not recorded")


def _lines(parts: Sequence[str], width: int = 80) -> str:
    """``parts`` joined by `` · ``, broken into lines of at most ``width`` characters between parts
    (the book's text column)."""
    lines = [parts[0]]
    for part in parts[1:]:
        if len(lines[-1]) + 3 + len(part) > width:
            lines[-1] += " ·"
            lines.append(part)
        else:
            lines[-1] += f" · {part}"
    return "\n".join(lines)


def _budget(spec: dict[str, Any]) -> str:
    updates = spec.get("num_updates")
    size = f" of {spec['batch_size']}" if spec.get("batch_size") else ""
    return f"{updates:,} updates{size}" if updates else f"{spec.get('epochs')} epochs{size}"


class PageRun:
    """One run as an experiment page shows it: ``record`` is a results file's content (``scale``,
    ``results`` of :meth:`~cswm_lib.report.page.ExperimentPage.results`, and where recorded
    ``provenance`` and ``wall_seconds``); ``own``: whether it is the chapter's own run (not a
    recorded one)."""

    def __init__(self, record: dict[str, Any], own: bool = False) -> None:
        self.record, self.own = record, own
        self.results: dict[str, Any] = record.get("results") or {}
        self.scale: str = record.get("scale") or "unknown"
        self.specs: dict[str, dict[str, Any]] = self.results.get("specs") or {}
        #: the result rows of the set the verdict judges (:func:`~cswm_lib.experiments.verdict_set`)
        self.rows: list[dict[str, Any]] = verdict_set(self.results.get("table") or [])
        self.curves = self.results.get("curves") or {}
        #: lines :meth:`label` opens with: a record's ``provenance_note`` (a caveat on its provenance,
        #: added after the run by a commit that says so), or :func:`shown_run`'s line that no
        #: reference run is recorded
        self.note = textwrap.fill(record.get("provenance_note") or "", 80)

    @classmethod
    def of_page(cls, page: ExperimentPage, **more: Any) -> PageRun:
        """The chapter's own run: the page's :meth:`~cswm_lib.report.page.ExperimentPage.results`
        (plus ``more``; call it after training, scoring and the verdict), with the commit and the
        hardware of this machine."""
        from cswm_lib.provenance import cpu_model, cuda_info, git_state

        scale = next(iter(page.specs.values())).scale
        provenance = {"commit": git_state()["commit"], "cpu_model": cpu_model(), "cuda": cuda_info()}
        return cls({"scale": scale, "results": page.results(**more), "provenance": provenance},
                   own=True)

    def seeds(self) -> list[int]:
        """Every training seed of the run (the union over its datasets)."""
        return sorted({int(s) for spec in self.specs.values() for s in spec.get("seeds", [])})

    def strategies(self) -> list[str]:
        """The run's strategies, in the order its specs name them."""
        return list(dict.fromkeys(s for spec in self.specs.values() for s in spec.get("strategies", [])))

    def _parts(self) -> list[str]:
        def n_seeds(n: int) -> str:
            return f"{n} seed{'s' * (n != 1)}"

        counts = {name: len(spec.get("seeds", [])) for name, spec in self.specs.items()}
        same = len(set(counts.values())) <= 1  # else each dataset names its own seed count
        return [f"{self.scale} scale", *([n_seeds(len(self.seeds()))] if same else []),
                *(f"{name} {'' if same else n_seeds(counts[name]) + ', '}{_budget(spec)}"
                  for name, spec in self.specs.items()),
                *([SMOKE_NOTE] if self.scale == "small" else [])]

    def caption(self) -> str:
        """The scale label every result table and figure of the run carries, e.g. ``cpu scale · 5
        seeds · Shapes immovable 7,000 updates of 64 · Cubes immovable 100 updates of 32`` (broken
        into lines that fit the text column)."""
        return _lines(self._parts())

    def label(self) -> str:
        """One line on which run this is: :meth:`caption`, then the commit, the hardware and the
        wall time from the record's provenance."""
        prov = self.record.get("provenance") or {}
        commit = f"commit {prov['commit'][:7]}" if prov.get("commit") else "commit not recorded"
        wall = self.record.get("wall_seconds")
        when = "this run" if self.own else (f"recorded run, {wall / 60:.0f} min wall" if wall
                                            else "recorded run")
        line = _lines([when, *self._parts(), commit, _hardware(prov)])
        return f"{self.note}\n{line}" if self.note else line

    def labelled(self, table: str) -> str:
        """A markdown ``table`` of this run under its scale label (:meth:`caption` on one line)."""
        return f"*{' · '.join(self._parts())}*\n\n{table}"

    def show_curves(self, panels: Sequence[tuple[str, int]]) -> None:
        """Draw the run's learning curves in ``panels`` (``[(setting, L), ...]``,
        :func:`~cswm_lib.report.figures.plot_curve_grid`) under its :meth:`label` (the first place
        of a page, so the one with the run's commit, hardware and wall time)."""
        import matplotlib.pyplot as plt

        print(self.label())
        plot_curve_grid(self.curves, panels=panels)
        plt.show()

    def scores(self, settings: Sequence[str], num_steps: int = 1,
               start_setting: str | None = "local_dedup", eval_episodes: int | None = None) -> str:
        """The run's :func:`~cswm_lib.report.tables.score_table` (``num_steps``-step scores in
        ``settings``, mean ± std over every seed) on the eval set of ``eval_episodes`` episodes
        (None: the one the verdict judges), under its scale label and the set's size."""
        rows = (self.rows if eval_episodes is None
                else select(self.results.get("table") or [], eval_episodes=eval_episodes))
        if not rows and eval_episodes is not None:
            return ""  # a run without that set (a small one scores one set)
        return self.labelled(score_table(select(rows, num_steps=num_steps), settings,
                                         num_steps=num_steps, start_setting=start_setting))

    def per_seed(self, section: str) -> str:
        """The score of the verdict on ``section``'s claim (:data:`cswm_lib.verdict.CLAIMS`: its
        setting, 1 step, its metric) for every seed: a row per (dataset, strategy) for the model and
        one for its no-transition control, a column per seed, under the run's scale label."""
        claim = CLAIMS[section]
        seeds = self.seeds()
        cells = []
        for name, records in (self.results.get("per_seed") or {}).items():
            records = verdict_set(records)
            for strategy in dict.fromkeys(r["strategy"] for r in records):
                for predictor, setting in [("model", claim.setting),
                                           ("no_transition", claim.setting + NO_TRANSITION)]:
                    hit = {int(r["seed"]): r["value"] for r in records
                           if (r["strategy"], r["setting"], r["num_steps"], r["metric"])
                           == (strategy, setting, 1, claim.metric)}
                    if hit:
                        cells.append({"dataset": name, "strategy": strategy, "predictor": predictor}
                                     | {f"seed {s}": f"{100 * hit[s]:.1f}" if s in hit else "--"
                                        for s in seeds})
        cols = ["dataset", "strategy", "predictor", *(f"seed {s}" for s in seeds)]
        note = f"1-step {claim.setting} {claim.metric} (%) of every seed: the score of the verdict."
        return self.labelled(format_table(cells, cols) + "\n\n" + note)

    def show_steps(self, settings: Sequence[str], chance: dict[str, float] | None = None,
                   names: dict[str, str] | None = None) -> None:
        """Draw Hits@1 against the roll-out length in each of ``settings``
        (:func:`~cswm_lib.report.figures.plot_steps`) under the run's label."""
        import matplotlib.pyplot as plt

        print(self.caption())
        plot_steps(self.rows, list(self.specs), self.strategies(), settings, chance, names)
        plt.show()

    def slot_lengths(self, seed: int) -> dict[str, list[float]]:
        """Each slot's path length over the recorded episode, model of ``seed``
        (:func:`cswm_lib.analysis.slot_lengths`); empty when the run kept no object slots."""
        return analysis.slot_lengths(slot_paths_of(self.results, seed))

    def show_slots(self, seed: int | None = None) -> dict[str, list[float]]:
        """Draw the object slots of the model of ``seed`` (default: the first) of every (dataset,
        strategy) from the run's ``embedding_samples``
        (:func:`~cswm_lib.report.figures.plot_slot_grid`) and print each slot's path length; one line
        instead when the run kept none. Returns the lengths."""
        import matplotlib.pyplot as plt

        seed = self.seeds()[0] if seed is None else seed
        paths = slot_paths_of(self.results, seed)
        if not paths:
            print(f"{self.caption()}\nthis run kept no object slots (recorded before "
                  "embedding_samples existed)")
            return {}
        lengths = analysis.slot_lengths(paths)
        print(self.caption() + "\n" + slot_lengths_text(lengths, seed))
        plot_slot_grid(paths)
        plt.show()
        return lengths


def shown_run(own: PageRun, chapter: str, verdict_scale: str = "cpu",
              folder: Path | None = None) -> PageRun:
    """The run whose results ``chapter``'s result sections show: the recorded ``verdict_scale``
    reference run (:func:`~cswm_lib.report.results.reference_run`, the run the Verdict section
    shows too) when there is one and the chapter's own run ``own`` is at another scale, else
    ``own`` -- whose label then says when no reference run is recorded."""
    ref = reference_run(chapter, own.scale, verdict_scale, folder)
    if ref:
        return PageRun(ref)
    if own.scale != verdict_scale:
        own.note = (f"no {verdict_scale} reference run of {chapter} is recorded yet:\n"
                    f"this page shows this run ({own.scale} scale)")
    return own


def show_smoke_run(own: PageRun, shown: PageRun, panels: Sequence[tuple[str, int]],
                   settings: Sequence[str], start_setting: str | None = "local_dedup") -> None:
    """The chapter's own run, where the result sections show another (``shown``): its label,
    learning curves in ``panels`` and score table (``settings``, as :meth:`PageRun.scores`); one
    line when the result sections show this run themselves."""
    if shown is own:
        print(f"{own.caption()}\nthis run's results are shown in the result sections below")
        return
    own.show_curves(panels)
    show_markdown(own.scores(settings, start_setting=start_setting))
