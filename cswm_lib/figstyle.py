"""Figures that say how large their text is: every PNG matplotlib writes carries, in its metadata,
the smallest font size it uses and the resolution it was drawn at, so a reader test can tell how
large that text appears on the page (``tests/test_book_html.py``).

::

    from cswm_lib import figstyle
    figstyle.install()   # once per process (idempotent); the report package calls it

After :func:`install`, every PNG that matplotlib's Agg canvas writes -- ``savefig`` and the inline
figures of a notebook alike -- holds two text chunks:

- ``cswm:min_font_pt``: the smallest font size, in points, of the figure's visible non-empty text
  (titles, labels, tick labels, legends, annotations), or ``none`` when it has no text at all
  (a bare frame drawn with ``imshow``);
- ``cswm:dpi``: the dots per inch it was rendered at (points to pixels: ``pt * dpi / 72``).

On a page an image of natural width ``w`` shown ``d`` CSS px wide has text of
``min_font_pt * dpi / 72 * d / w`` CSS px (:func:`text_px`). 9 pt is 12 CSS px (1 pt = 4/3 px):
:data:`MIN_TEXT_PX`, the smallest text a reader is asked to read.
"""

from __future__ import annotations

import io
from typing import Any

#: Smallest text a reader is asked to read, in CSS px. It is 9 pt (a CSS px is 1/96 in, a point
#: 1/72 in), three quarters of the book's 16 px body text; matplotlib's default 10 pt at 100 dpi
#: is 13.9 px.
MIN_TEXT_PX = 12.0
#: The widest figure of the book in inches. At the 100 dpi of inline figures it stays under the
#: 745 CSS px text column after the tight crop.
WIDTH = 7.2
#: The smallest text of a figure in points (12.5 CSS px at 100 dpi, above :data:`MIN_TEXT_PX`).
FONT = 9
KEY_FONT, KEY_DPI = "cswm:min_font_pt", "cswm:dpi"
_installed = False


def min_font_pt(fig: Any) -> float | None:
    """Smallest font size (points) of the visible, non-empty text of ``fig``; ``None`` if none.

    Drawn once without rendering first, so that tick labels exist and hold their final text; a
    text inside a hidden artist (axes, legend, the second tick label) does not count."""
    fig.draw_without_rendering()
    sizes = [t.get_fontsize() for t in _texts(fig) if t.get_text().strip()]
    return min(sizes) if sizes else None


def _texts(artist: Any) -> Any:
    """The Text artists under ``artist`` whose every ancestor is visible."""
    from matplotlib.text import Text

    if not artist.get_visible():
        return
    if isinstance(artist, Text):
        yield artist
    for child in artist.get_children():
        yield from _texts(child)


def record(fig: Any, dpi: float) -> dict[str, str]:
    """The PNG metadata (text chunks) of ``fig`` rendered at ``dpi``."""
    size = min_font_pt(fig)
    return {KEY_FONT: "none" if size is None else f"{size:g}", KEY_DPI: f"{dpi:g}"}


def install() -> None:
    """Make every PNG written by matplotlib's Agg canvas carry :func:`record` (idempotent)."""
    global _installed
    if _installed:
        return
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    original = FigureCanvasAgg.print_png

    busy = []  # measuring draws the figure, which may print a throw-away PNG: measure once

    # (matplotlib drops dpi, facecolor, ... for its own print methods, which read them from the
    # figure; it passes them to one defined elsewhere, so this one drops them itself)
    def print_png(self, filename_or_obj, *, metadata=None, pil_kwargs=None, **_figure_kwargs):
        if not busy:
            busy.append(True)
            try:
                metadata = {**record(self.figure, self.figure.dpi), **(metadata or {})}
            finally:
                busy.pop()
        return original(self, filename_or_obj, metadata=metadata, pil_kwargs=pil_kwargs)

    FigureCanvasAgg.print_png = print_png
    _installed = True


def read_record(png: bytes) -> dict[str, float | None] | None:
    """``{"min_font_pt": pt or None (no text), "dpi": dpi}`` from a PNG's text chunks, or ``None``
    when the PNG was not written through :func:`install` (then nothing is known about its text)."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        info = getattr(im, "text", None) or im.info
    if KEY_FONT not in info or KEY_DPI not in info:
        return None
    font = info[KEY_FONT]
    return {"min_font_pt": None if font == "none" else float(font), "dpi": float(info[KEY_DPI])}


def text_px(min_font_pt: float, dpi: float, natural_width: float, displayed_width: float) -> float:
    """CSS px of text of ``min_font_pt`` in a PNG rendered at ``dpi``, ``natural_width`` px wide,
    shown ``displayed_width`` CSS px wide."""
    return min_font_pt * dpi / 72 * displayed_width / natural_width


def image_problems(png: bytes, natural_width: float, displayed_width: float,
                   min_px: float = MIN_TEXT_PX) -> list[str]:
    """What a reader cannot read in one image of a page (empty when fine):

    - it is shrunk, i.e. wider than the column it sits in (natural width above the displayed one);
    - its smallest text appears below ``min_px`` CSS px;
    - it carries no :func:`record`, so its text size is unknown (only figures drawn through
      matplotlib with :func:`install` active are measured; one without text records ``none`` and
      is exempt from the text check, not from the width check).
    """
    problems = []
    shown = f"{natural_width:.0f} px shown at {displayed_width:.0f} px"
    if natural_width > displayed_width + 1:
        problems.append(f"wider than the text column: {shown}")
    rec = read_record(png)
    if rec is None:
        problems.append("no text-size record (draw it with matplotlib after cswm_lib.figstyle.install())")
    elif rec["min_font_pt"] is not None:
        px = text_px(rec["min_font_pt"], rec["dpi"], natural_width, displayed_width)
        if px < min_px:
            problems.append(
                f"text {px:.1f} px on screen (< {min_px:g}): "
                f"{rec['min_font_pt']:g} pt at {rec['dpi']:g} dpi, {shown}"
            )
    return problems
