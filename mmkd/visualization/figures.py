"""Fixed-size matplotlib figures shared by the visualisation tools.

Every figure is a grid of square panels of ``panel_in`` inches plus a header strip for the
title (and one strip per banner above it), saved at :data:`DPI` without tight cropping, so its
pixel size is known in advance: ``figure_px(nrows, ncols, panel_in, num_banners)`` (the tests
check it).
"""
import textwrap
from typing import Sequence, Tuple

from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

DPI = 100
PANEL_IN = 3.0
HEADER_IN = 0.75  # exact in binary, so sizes in pixels are exact integers
BANNER_IN = 0.25
#: title font sizes tried, largest first, and the header lines each may fill (the panel titles
#: take the rest of the header)
TITLE_SIZES = ((9, 3), (8, 4), (7, 4), (6, 5))
#: banner kind -> (background, text colour): ``warning`` for what makes a picture misleading
#: (a teacher with random weights), ``note`` for what the reader should keep in mind
BANNER_COLORS = {'warning': ('#c00000', 'white'), 'note': ('#ffc000', 'black')}


def figure_px(nrows: int, ncols: int, panel_in: float = PANEL_IN,
              num_banners: int = 0) -> Tuple[int, int]:
    """(width, height) in pixels of :func:`panel_figure` ``(nrows, ncols, panel_in)`` with
    ``num_banners`` banners."""
    height = nrows * panel_in + HEADER_IN + num_banners * BANNER_IN
    return int(round(ncols * panel_in * DPI)), int(round(height * DPI))


def fit_title(title: str, width_in: float) -> Tuple[str, int]:
    """``title`` wrapped to a figure ``width_in`` inches wide, and the largest font size of
    :data:`TITLE_SIZES` at which it fits the header (else the smallest)."""
    for size, max_lines in TITLE_SIZES:
        chars = max(20, int(0.96 * width_in * DPI / (0.83 * size)))  # DejaVu Sans, ~0.6 em
        lines = [wrapped for line in title.split('\n')
                 for wrapped in (textwrap.wrap(line, chars) or [''])]
        if len(lines) <= max_lines:
            break
    return '\n'.join(lines), size


def panel_figure(nrows: int, ncols: int, title: str, panel_in: float = PANEL_IN,
                 banners: Sequence[Tuple[str, str]] = ()):
    """A figure of ``nrows x ncols`` panels with ``title`` on top; returns (fig, axes 2-D).

    ``banners``: ``(kind, text)`` pairs (kind in :data:`BANNER_COLORS`), each drawn as a
    full-width coloured strip above the title, so that what makes the picture misleading is
    on the picture itself.
    """
    top_in = HEADER_IN + len(banners) * BANNER_IN
    height, width = nrows * panel_in + top_in, ncols * panel_in
    fig = Figure(figsize=(width, height), dpi=DPI)  # no pyplot: no backend state
    axes = fig.subplots(nrows, ncols, squeeze=False)
    # margins in inches, so that tick labels of the outer colour bars fit on narrow figures
    fig.subplots_adjust(left=max(0.04 if ncols > 1 else 0.08, 0.4 / width),
                        right=1.0 - 0.3 / width,
                        bottom=0.06 * PANEL_IN / height + 0.01,
                        top=1.0 - (top_in + 0.1) / height,
                        wspace=0.35, hspace=0.45)
    for i, (kind, text) in enumerate(banners):
        background, color = BANNER_COLORS[kind]
        y0 = 1.0 - (i + 1) * BANNER_IN / height
        fig.add_artist(Rectangle((0.0, y0), 1.0, BANNER_IN / height, transform=fig.transFigure,
                                 facecolor=background, edgecolor='none'))
        fig.text(0.5, y0 + 0.5 * BANNER_IN / height, text, ha='center', va='center',
                 color=color, fontsize=9, fontweight='bold')
    text, size = fit_title(title, width)
    fig.suptitle(text, fontsize=size, y=1.0 - (len(banners) * BANNER_IN + 0.08) / height,
                 va='top')
    return fig, axes


def save_figure(fig, path: str) -> str:
    """Save at :data:`DPI` (no tight bbox: the size stays :func:`figure_px`)."""
    fig.savefig(path, dpi=DPI)
    return path
