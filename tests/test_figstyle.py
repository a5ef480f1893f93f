"""The figure text-size record (cswm_lib.figstyle) and the reader check built on it: measured on
crafted PNGs, so the check is seen to fail on a too-small text and a too-wide figure."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from cswm_lib import figstyle  # noqa: E402


def _png(width_in: float, font_pt: float | None, dpi: int = 100, text: bool = True) -> bytes:
    figstyle.install()
    fig, ax = plt.subplots(figsize=(width_in, 2), dpi=dpi)
    if text:
        ax.plot([0, 1], [0, 1], label="series")
        ax.set_title("title", fontsize=14)
        ax.tick_params(labelsize=font_pt)
        ax.legend(fontsize=12)
    else:
        ax.imshow([[0, 1], [1, 0]])
        ax.axis("off")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _width(png: bytes) -> int:
    from PIL import Image

    return Image.open(io.BytesIO(png)).width


def test_record_holds_the_smallest_font_and_the_dpi():
    rec = figstyle.read_record(_png(4, 7.5, dpi=80))
    assert rec == {"min_font_pt": 7.5, "dpi": 80.0}


def test_hidden_text_does_not_count_and_bare_frames_record_none():
    figstyle.install()
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.set_title("tiny", fontsize=3)
    ax.set_visible(False)
    fig.text(0.5, 0.5, "big", fontsize=20)
    assert figstyle.min_font_pt(fig) == 20
    plt.close(fig)
    assert figstyle.read_record(_png(2, None, text=False))["min_font_pt"] is None


def test_text_px_by_hand():
    # 10 pt at 100 dpi = 13.9 px at natural size; a 1200 px figure shown 757 px wide: 8.8 px
    assert figstyle.text_px(10, 100, 1200, 1200) == pytest.approx(13.89, abs=0.01)
    assert figstyle.text_px(10, 100, 1200, 757) == pytest.approx(8.76, abs=0.01)
    assert figstyle.MIN_TEXT_PX == 12  # 9 pt in CSS px


def test_check_passes_a_readable_figure_that_fits():
    png = _png(6, 10)
    assert figstyle.image_problems(png, _width(png), _width(png)) == []


def test_check_fails_on_too_small_text():
    png = _png(6, 7)  # 7 pt at 100 dpi: 9.7 px even at natural size
    problems = figstyle.image_problems(png, _width(png), _width(png))
    assert len(problems) == 1 and "text 9.7 px on screen" in problems[0]


def test_check_fails_on_a_figure_wider_than_the_column():
    png = _png(12, 10)  # ~1200 px, shown in a 757 px column: shrunk, and its 10 pt text falls to ~8.8 px
    w = _width(png)
    problems = figstyle.image_problems(png, w, 757)
    assert any("wider than the text column" in p for p in problems)
    assert any("px on screen" in p for p in problems)


def test_an_image_without_a_record_is_not_exempt():
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (50, 50)).save(buf, format="PNG")
    assert figstyle.image_problems(buf.getvalue(), 50, 50) == [
        "no text-size record (draw it with matplotlib after cswm_lib.figstyle.install())"
    ]


def test_a_bare_frame_is_exempt_from_the_text_check_only():
    png = _png(2, None, text=False)
    assert figstyle.image_problems(png, _width(png), _width(png)) == []
    assert figstyle.image_problems(png, 1000, 500) == ["wider than the text column: 1000 px shown at 500 px"]


def test_inline_notebook_figures_carry_the_record():
    """What a chapter's inline figure goes through (IPython's print_figure, bbox_inches='tight')."""
    import base64

    from IPython.core.pylabtools import print_figure

    figstyle.install()
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.set_xlabel("x", fontsize=9)
    ax.tick_params(labelsize=11)
    data = print_figure(fig, "png", base64=True)
    plt.close(fig)
    assert figstyle.read_record(base64.b64decode(data))["min_font_pt"] == 9
