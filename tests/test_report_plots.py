"""Figures a reader must be able to tell apart: every series its own colour and style."""

import matplotlib

matplotlib.use("Agg")

from cswm_lib.report import plot_steps  # noqa: E402


def test_plot_steps_gives_every_series_its_own_colour_and_integer_step_ticks():
    rows = [
        {"dataset": d, "negatives": n, "mode": "batched", "metric": "Hits@1", "num_steps": s,
         "mean": 0.5, "std": 0.1}
        for d in ("shapes", "cubes") for n in ("baseline", "mixed") for s in (1, 5, 10)
    ]
    fig = plot_steps(rows, ["shapes", "cubes"], ["baseline", "mixed"], ["batched"])
    lines = [ln for ln in fig.axes[0].get_lines() if ln.get_linestyle() != "None"]  # not caps
    assert len(lines) == 4
    colours = {matplotlib.colors.to_hex(ln.get_color()) for ln in lines}
    assert len(colours) == 4, "two series share a colour"
    styles = {(ln.get_linestyle(), ln.get_marker()) for ln in lines}
    assert len(styles) == 2  # one line style + marker per dataset
    fig.canvas.draw()
    ticks = fig.axes[0].get_xticks()
    assert all(float(t).is_integer() for t in ticks), ticks
    assert fig.get_size_inches()[0] <= 7.5
