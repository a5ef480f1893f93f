"""Figures a reader must be able to tell apart: every series its own colour and style."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from cswm_lib.figstyle import image_problems  # noqa: E402
from cswm_lib.negatives import Negatives  # noqa: E402
from cswm_lib.report import (  # noqa: E402
    plot_candidates,
    plot_cube_crops,
    plot_episode_frames,
    plot_local_global_grid,
    plot_negatives,
    plot_settings,
    plot_steps,
    plot_transition,
    visible,
)

COLUMN_PX = 745  # the book's text column at 1366 x 768 (tests/test_book_html.py)


def reads_well(fig) -> list[str]:
    """What a reader could not read in ``fig`` drawn as a notebook shows it (100 dpi, tight crop)
    in the book's column: empty when it fits and its text is at least 9 pt on screen."""
    import io
    import struct

    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    png = buf.getvalue()
    width = struct.unpack(">I", png[16:20])[0]
    return image_problems(png, width, min(width, COLUMN_PX))


def test_plot_steps_gives_every_series_its_own_colour_and_integer_step_ticks():
    rows = [
        {"dataset": d, "strategy": n, "setting": "batched", "metric": "Hits@1", "num_steps": s,
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
    assert reads_well(fig) == []


def test_plot_settings_one_bar_per_setting_and_roll_out_length():
    results = {(m, L): {"Hits@1": 0.1 * i + 0.01 * L} for L in (1, 5) for i, m in enumerate(["g", "l", "b"])}
    fig = plot_settings(results)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["g", "l", "b"]
    bars = ax.patches
    assert len(bars) == 6 and bars[4].get_height() == 100 * results["l", 5]["Hits@1"]  # L = 5 after L = 1
    assert len({matplotlib.colors.to_hex(b.get_facecolor()) for b in bars}) == 2  # one colour per L
    assert reads_well(fig) == []


def test_plot_candidates_lines_per_roll_out_length_and_chance():
    sweep = {L: {b: {"Hits@1": 1 / b + 0.1 * L, "MRR": 0.5} for b in (2, 10, 100)} for L in (1, 10)}
    fig = plot_candidates(sweep)
    hits = fig.axes[0].get_lines()
    assert len(hits) == 3  # L = 1, L = 10, chance
    assert list(hits[1].get_ydata()) == [100 * (1 / b + 1.0) for b in (2, 10, 100)]
    assert list(hits[2].get_ydata()) == [50.0, 10.0, 1.0]  # chance 1/B
    assert hits[0].get_linestyle() != hits[1].get_linestyle() and hits[0].get_color() != hits[1].get_color()
    assert reads_well(fig) == []


def test_plot_negatives_a_row_per_strategy_with_the_negatives_it_drew():
    frames = np.arange(3 * 4 * 6 * 2 * 2, dtype=np.uint8).reshape(3, 4, 6, 2, 2)
    drawn = {
        "episodic": Negatives(torch.tensor([[1, 1, 1]]), torch.tensor([[0, 2, 3]]), None),
        "time_aligned": Negatives(torch.tensor([[0, 2, 1]]), torch.tensor([[1, 1, 1]]), None),
    }
    fig = plot_negatives(frames, (1, 1), drawn, num_show=2, caption=lambda e, t: f"sum {e + t}")
    assert len(fig.axes) == 2 * 4  # o_t, o_t+1 and two negatives per row
    assert fig.axes[0].get_ylabel() == "episodic" and fig.axes[4].get_ylabel() == "time_aligned"
    assert fig.axes[3].get_title() == "e=1, t=2\nsum 3"
    shown = fig.axes[6].get_images()[0].get_array()  # time_aligned's first negative: episode 0, step 1
    assert np.array_equal(shown, frames[0, 1, :3].transpose(1, 2, 0))
    atari = plot_negatives(frames, (2, 0), drawn, num_show=3, channels=slice(3, 6), with_next=False)
    assert len(atari.axes) == 2 * 4 and atari.axes[1].get_title() == "e=1, t=0"
    assert np.array_equal(atari.axes[0].get_images()[0].get_array(), frames[2, 0, 3:].transpose(1, 2, 0))
    assert reads_well(fig) == []


def test_plot_transition_arrows_from_each_slot_to_its_prediction():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(6, 3, 2))
    pred, target = z + 0.5, z + 0.4
    ax = plot_transition(z, pred, target, index=4, title="t")
    arrows = [c for c in ax.get_children() if isinstance(c, matplotlib.text.Annotation)]
    assert len(arrows) == 3  # one per slot, of transition 4
    assert [a.xy for a in arrows] == [tuple(pred[4, k]) for k in range(3)]
    assert [a.xyann for a in arrows] == [tuple(z[4, k]) for k in range(3)]
    points = ax.collections
    assert len(points) == 3 + 3  # a scatter per slot (all states), a cross per slot (the target)
    assert np.allclose(points[1].get_offsets(), z[:, 1])
    assert np.allclose(points[5].get_offsets(), [target[4, 2]])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["slot 0", "slot 1", "slot 2"]
    assert reads_well(ax.figure) == []  # its legend sits outside the data


def test_plot_cube_crops_marks_both_crops_on_the_canvas():
    from cswm_lib.envs import block_pushing as bp

    scene = np.array([[0, 0], [1, 3], [4, 4], [2, 1], [3, 2]])
    fig = plot_cube_crops(scene)
    canvas, ours, original = fig.axes
    boxes = [(p.get_x(), p.get_y(), p.get_width(), p.get_height()) for p in canvas.patches]
    crop = bp.CUBE_CROP
    assert (crop[1].start, crop[0].start, crop[1].stop - crop[1].start, crop[0].stop - crop[0].start) in boxes
    assert len(boxes) == 2 and canvas.get_images()[0].get_array().shape == (480, 640, 3)
    assert np.array_equal(ours.get_images()[0].get_array(), bp.render_cubes(scene).transpose(1, 2, 0))
    assert original.get_title() == "original framing"
    assert reads_well(fig) == []


def test_plot_episode_frames_one_panel_per_step_with_the_highlight_in_red():
    from tiny_worlds import tiny_episodes

    ep = tiny_episodes(E=2, T=4, channels=6)
    fig = plot_episode_frames(ep, 1, highlight=2, actions=True, title="episode 1")
    axes = fig.axes
    assert len(axes) == 5
    assert reads_well(fig) == []
    assert axes[0].get_title() == f"t=0\na={ep.actions[1, 0]}" and axes[4].get_title() == "t=4"
    assert [matplotlib.colors.to_hex(ax.title.get_color()) for ax in axes].count("#ff0000") == 1
    assert matplotlib.colors.to_hex(axes[2].title.get_color()) == "#ff0000"
    assert np.array_equal(axes[3].get_images()[0].get_array(), ep.frames[1, 3, 3:6].transpose(1, 2, 0))


def test_plot_local_global_grid_a_row_of_two_panels_per_model():
    view = {"num_steps": 2, "local_distances": np.array([3.0, 2.0, 1.0, 4.0]), "nearest_t": 2,
            "same_state": [], "global_distances": np.array([0.5, 0.2, 0.9]), "global_index": 0,
            "global_rank": 2}
    fig = plot_local_global_grid({"baseline": view, "mixed": dict(view, nearest_t=2)}, "Pong")
    assert len(fig.axes) == 4
    assert reads_well(fig) == []
    local, glob = fig.axes[0], fig.axes[1]
    assert local.get_title().startswith("Pong, baseline -- local: nearest t=2, target t=2")
    assert glob.get_title() == "global: rank 2 of 3" and fig.axes[2].get_title().startswith("Pong, mixed")
    assert list(local.get_lines()[0].get_ydata()) == [3.0, 2.0, 1.0, 4.0]


def test_visible_stretches_atari_screens_and_leaves_block_worlds_alone():
    brown = np.zeros((3, 50, 50), np.uint8) + np.array([144, 72, 17], np.uint8)[:, None, None]
    brown[:, 20:24, 45:47] = np.array([92, 186, 93], np.uint8)[:, None, None]  # a paddle
    out = visible(brown)
    assert out[:, 0, 0].tolist() == [0, 0, 0] and out[:, 21, 45].max() == 255
    shapes = np.zeros((3, 50, 50), np.uint8)
    shapes[0, 10:20, 10:20] = 200
    assert visible(shapes) is shapes  # black background: as it is
    assert visible(brown, stretch=False) is brown
