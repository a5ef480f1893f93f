"""Every table and figure of the book, by job: :mod:`~cswm_lib.report.tables` (markdown tables of
results, scores and verdicts), :mod:`~cswm_lib.report.figures` (matplotlib figures),
:mod:`~cswm_lib.report.results` (the recorded results files), :mod:`~cswm_lib.report.page` (the
shared skeleton of an experiment chapter) and :mod:`~cswm_lib.report.recorded_page` (the run its
result sections show). The statistics and verdicts they show live in
:mod:`cswm_lib.verdict`. The chapters use the names below as ``report.<name>``.
"""

from cswm_lib import figstyle
from cswm_lib.report.declared import declaration, declaration_markdown
from cswm_lib.report.figures import (
    plot_agent_curve,
    plot_candidates,
    plot_cube_crops,
    plot_curve_grid,
    plot_curves,
    plot_episode_frames,
    plot_local_global,
    plot_local_global_grid,
    plot_negatives,
    plot_settings,
    plot_slot_grid,
    plot_steps,
    plot_trajectories,
    plot_transition,
    visible,
)
from cswm_lib.report.page import ExperimentPage, show_verdict, slot_paths_of
from cswm_lib.report.recorded_page import SMOKE_NOTE, PageRun, show_smoke_run, shown_run
from cswm_lib.report.results import (
    GLANCE_SETTINGS,
    README_MARKERS,
    history,
    readme_with_results,
    recorded,
    recorded_results,
    recorded_verdicts,
    reference_run,
)
from cswm_lib.report.tables import (
    budget_markdown,
    departure_markdown,
    evaluation_table,
    glance_markdown,
    hits_by_steps,
    lift,
    markdown_table,
    results_markdown,
    run_summary,
    score_table,
    signs,
    slot_lengths_text,
    split_table,
    standin_table,
)
from cswm_lib.report.verdict_tables import (
    history_table,
    verdict_markdown,
    verdict_table,
    verdict_table_compact,
)
from cswm_lib.tables import format_table, show_markdown

figstyle.install()  # every figure of a chapter records its smallest text (the reader test)

__all__ = [
    "declaration", "declaration_markdown",
    "ExperimentPage", "GLANCE_SETTINGS", "PageRun", "SMOKE_NOTE", "README_MARKERS", "budget_markdown",
    "departure_markdown", "evaluation_table", "format_table", "glance_markdown", "history",
    "history_table", "hits_by_steps",
    "lift", "markdown_table", "plot_agent_curve", "plot_candidates", "plot_cube_crops",
    "plot_curve_grid", "plot_curves", "plot_episode_frames", "plot_local_global",
    "plot_local_global_grid", "plot_negatives", "plot_settings", "plot_slot_grid", "plot_steps",
    "plot_trajectories", "plot_transition", "readme_with_results", "recorded", "recorded_results",
    "recorded_verdicts", "reference_run", "results_markdown", "run_summary", "score_table",
    "show_markdown", "show_smoke_run", "show_verdict", "shown_run", "signs", "slot_lengths_text",
    "slot_paths_of", "split_table", "standin_table",
    "verdict_markdown", "verdict_table", "verdict_table_compact", "visible",
]
