"""The shared skeleton of an experiment chapter (08, 09 and 10): the data of every
:class:`~cswm_lib.experiments.Experiment`, training with learning curves, the final scores, the
object slots over an episode and the verdict on the paper's claim. Each step is one call whose
result the chapter shows between its prose; :func:`show_verdict` is the Verdict section."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cswm_lib import analysis
from cswm_lib.curves import CurveSet, curve_table
from cswm_lib.data.episodes import Episodes
from cswm_lib.data.hdf5 import load_episodes
from cswm_lib.executor import Executor
from cswm_lib.experiments import (
    UNTRAINED,
    Experiment,
    datasets,
    run_origins,
    score_specs,
    select,
    spec_dict,
    train_specs,
    verdict_set,
)
from cswm_lib.report.figures import FONT, WIDTH, plot_curve_grid, plot_slot_grid, plot_steps, visible
from cswm_lib.report.results import recorded, reference_run
from cswm_lib.report.tables import departure_markdown, run_summary, score_table, slot_lengths_text
from cswm_lib.report.verdict_tables import verdict_markdown
from cswm_lib.tables import show_markdown
from cswm_lib.verdict import CLAIMS, verdict


class ExperimentPage:
    """One experiment chapter's runs: ``specs`` (``{dataset: Experiment}``) trained and scored
    through ``executor``. The steps fill ``folders`` and ``curves`` (:meth:`train`), ``records``
    and ``rows`` (:meth:`score`); :meth:`results` is what the chapter records."""

    def __init__(self, specs: dict[str, Experiment], executor: str | Executor | None = None,
                 device: str | None = None) -> None:
        self.specs, self.executor, self.device = specs, executor, device
        #: ``{dataset: (train episodes, eval episodes)}``, generated or reused
        self.data: dict[str, tuple[Episodes, Episodes]] = {
            name: tuple(load_episodes(path) for path in datasets(spec)) for name, spec in specs.items()
        }
        self.folders: dict[str, dict[tuple[str, int], Path]] = {}
        self.curves: CurveSet = {}
        self.records: dict[str, list[dict[str, Any]]] = {}
        self.rows: list[dict[str, Any]] = []
        self.verdicts: list[dict[str, Any]] = []
        #: ``{name: {run: {"origin", "folder"}}}``: which runs this sweep trained, resumed or reused
        self.origins: dict[str, dict[str, dict[str, str]]] = {}

    def sizes(self) -> str:
        """Two lines per dataset: its train and eval episodes, then the budget of each run."""
        return "\n".join(
            f"{name}: train {tr.num_episodes} x {tr.episode_length}, eval {ev.num_episodes} x "
            f"{ev.episode_length} (episodes x steps);\n    {self.specs[name].num_updates} updates "
            f"of {self.specs[name].batch_size}"
            for name, (tr, ev) in self.data.items()
        )

    def show_frames(self, channels: slice = slice(0, 3)) -> None:
        """Show the first and last frame of training episode 0 of every dataset, side by side
        (``channels``: the RGB frame of an observation, ``slice(3, 6)`` for a stacked Atari one)."""
        import matplotlib.pyplot as plt

        cols = 2 * len(self.data)
        side = min(1.8, WIDTH / cols)
        fig, axes = plt.subplots(1, cols, figsize=(side * cols, side + 0.5), squeeze=False)
        for i, (name, (tr, _)) in enumerate(self.data.items()):
            for j, t in enumerate([0, tr.episode_length]):
                ax = axes[0, 2 * i + j]
                ax.imshow(visible(tr.frames[0, t, channels]).transpose(1, 2, 0))
                ax.set_title(f"{name}\nt={t}", fontsize=FONT)
                ax.axis("off")
        plt.show()

    def train(self, panels: Sequence[tuple[str, int]] | None = None) -> CurveSet:
        """Train (reuse, resume) every run as one batch of jobs; return the learning curves, and
        with ``panels`` (``[(setting, L), ...]``) show them
        (:func:`~cswm_lib.report.figures.plot_curve_grid`)."""
        import matplotlib.pyplot as plt

        self.origins = run_origins(self.specs)  # before training: trained, resumed or reused
        self.folders = train_specs(self.specs, self.executor)
        self.curves = {name: curve_table(f) for name, f in self.folders.items()}
        if panels:
            plot_curve_grid(self.curves, panels=panels)
            plt.show()
        return self.curves

    def score(self, settings: Sequence[str], num_steps: int = 1,
              start_setting: str | None = "local_dedup", eval_episodes: int | None = None) -> str:
        """Score every trained model (fills ``records`` and ``rows``; once); return the
        :func:`~cswm_lib.report.tables.score_table` of the ``num_steps``-step scores in ``settings``
        (with the share of ``start_setting`` predictions nearest the start state; None: without) on
        the eval set of ``eval_episodes`` episodes (None: the whole set, the one the verdict judges)."""
        if not self.records:
            self.records, self.rows = score_specs(self.specs, self.folders, self.executor)
        rows = (verdict_set(self.rows) if eval_episodes is None
                else select(self.rows, eval_episodes=eval_episodes))
        return score_table(select(rows, num_steps=num_steps), settings, num_steps=num_steps,
                           start_setting=start_setting)

    def show_steps(self, settings: Sequence[str], chance: dict[str, float] | None = None,
                   names: dict[str, str] | None = None) -> None:
        """Show Hits@1 against the roll-out length in each of ``settings``
        (:func:`~cswm_lib.report.figures.plot_steps`, every dataset and strategy)."""
        import matplotlib.pyplot as plt

        plot_steps(verdict_set(self.rows), self.specs, self._strategies(), settings, chance, names)
        plt.show()

    def show_slots(self, seed: int) -> dict[str, list[float]]:
        """Show the object slots of the model of ``seed`` of every (dataset, strategy) over
        training episode 0 (:func:`cswm_lib.analysis.slot_paths`) and print each slot's path
        length; return the lengths, ``{"<dataset> | <strategy>": [...]}``."""
        import matplotlib.pyplot as plt

        paths = analysis.slot_paths(self.data, self.folders, self._strategies(), seed, self.device)
        lengths = analysis.slot_lengths(paths)
        print(slot_lengths_text(lengths, seed))
        plot_slot_grid(paths)
        plt.show()
        return lengths

    def embedding_samples(self, decimals: int = 4) -> dict[str, list]:
        """Every trained model's object slots over training episode 0
        (:func:`cswm_lib.analysis.slot_paths`), rounded to ``decimals``:
        ``{"<dataset> | <strategy> | <seed>": z [T+1][K][D]}``. A record keeps them so that its
        page can draw the slots (:func:`slot_paths_of`) without the checkpoints."""
        seeds = sorted({seed for folders in self.folders.values() for _, seed in folders})
        out: dict[str, list] = {}
        for seed in seeds:
            paths = analysis.slot_paths(self.data, self.folders, self._strategies(), seed, self.device)
            out.update({f"{name} | {strategy} | {seed}": z.round(decimals).tolist()
                        for (name, strategy), z in paths.items()})
        return out

    def verdict(self, section: str, not_tested: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """The verdict (:func:`cswm_lib.verdict.verdict`) on the declared claim of ``section``
        (:data:`cswm_lib.verdict.CLAIMS`) for every dataset, with each run's budget; ``not_tested``:
        ``{dataset: reason}`` for a dataset whose budget is declared below any learning."""
        claim = CLAIMS[section]
        self.verdicts = []
        for name, spec in self.specs.items():
            records = verdict_set(self.records[name])
            self.verdicts.append(verdict(
                [r for r in records if r["strategy"] != UNTRAINED], claim.text, section, name, claim.new,
                setting=claim.setting, controls=claim.controls, paper_settings=claim.paper_settings,
                metric=claim.metric, rule=claim.rule, updates=spec.num_updates, batch_size=spec.batch_size,
                data=f"{self.data[name][0].num_transitions} transitions", scale=spec.scale,
                not_tested=(not_tested or {}).get(name),
                untrained=[r for r in records if r["strategy"] == UNTRAINED]))
        return self.verdicts

    def _strategies(self) -> list[str]:
        return list(dict.fromkeys(s for spec in self.specs.values() for s in spec.strategies))

    def results(self, **more: Any) -> dict[str, Any]:
        """What the chapter records (``save_results``): the result rows, the per-seed records, the
        specs, the curves, the verdicts, which runs were trained, resumed or reused and every
        model's object slots over one episode (:meth:`embedding_samples`), plus ``more``."""
        return {"table": self.rows, "per_seed": self.records,
                "specs": {name: spec_dict(spec) for name, spec in self.specs.items()},
                "curves": self.curves, "verdicts": self.verdicts, "runs": self.origins,
                "embedding_samples": self.embedding_samples() if self.folders else {}, **more}


def slot_paths_of(results: dict[str, Any], seed: int) -> dict[tuple[str, str], Any]:
    """The slot paths of ``seed`` in a record's ``embedding_samples`` (:meth:`ExperimentPage.results`),
    in the form :func:`~cswm_lib.report.figures.plot_slot_grid` draws: ``{(dataset, strategy): z}``."""
    import numpy as np

    out = {}
    for key, z in (results.get("embedding_samples") or {}).items():
        name, strategy, s = key.rsplit(" | ", 2)
        if int(s) == seed:
            out[name, strategy] = np.asarray(z, dtype=np.float32)
    return out


def show_verdict(
    page: ExperimentPage,
    chapter: str,
    section: str,
    verdict_scale: str = "cpu",
    not_tested: dict[str, str] | None = None,
    panels: Sequence[tuple[str, int]] | None = None,
    departure: dict[str, Any] | None = None,
    when: str = "",
    folder: Path | None = None,
) -> dict[str, Any]:
    """A chapter's Verdict section in one call. Computes this run's verdict on the declared claim of
    ``section`` (:meth:`ExperimentPage.verdict`), then shows the recorded ``verdict_scale`` reference
    run of ``chapter`` (:func:`~cswm_lib.report.results.reference_run`) when there is one and this
    run is not itself at that scale, else this run, labelled by its scale: prints which run it shows,
    draws its learning curves in ``panels`` (when given), and shows its verdicts
    (:func:`~cswm_lib.report.verdict_tables.verdict_markdown`) and, with ``departure`` (keywords of
    :func:`~cswm_lib.report.tables.departure_markdown`), when learned dynamics show (``when`` says in
    which score). Returns the shown run's results (``verdicts``, ``curves``, ``specs``)."""
    import matplotlib.pyplot as plt

    page.verdict(section, not_tested)
    scale = next(iter(page.specs.values())).scale
    ref = reference_run(chapter, scale, verdict_scale, folder)
    shown = ref["results"] if ref else page.results()
    if ref:
        print(run_summary(ref))
    else:
        print(f"this run ({scale} scale)" + ("" if scale != "small" else
              ": a smoke run that proves the pipeline runs;\nits numbers are not evidence"))
    if panels:
        plot_curve_grid(shown["curves"], panels=panels)
        plt.show()
    text = f"*Claim (Sec. {section}): {CLAIMS[section].text}.*\n\n" + verdict_markdown(shown["verdicts"])
    for other in ("cpu", "full"):  # a record at another scale (full: from a GPU) is shown beside it
        rec = recorded(chapter, other, folder) if other not in (verdict_scale, scale) else None
        if rec and rec.get("results", {}).get("verdicts"):
            prov = rec.get("provenance") or {}
            hardware = ((prov.get("cuda") or {}).get("name") or prov.get("cpu_model")
                        or "hardware not recorded")
            text += (f"\n\n**Recorded at the {other} scale** ({hardware}):\n\n"
                     + verdict_markdown(rec["results"]["verdicts"]))
    if departure is not None:
        text += f"\n\nWhen learned dynamics show{when}:\n\n"
        text += departure_markdown(shown["curves"], **departure)
    show_markdown(text)
    return shown
