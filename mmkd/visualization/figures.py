"""Fixed-size matplotlib figures shared by the visualisation tools.

Every figure is a grid of square panels of ``panel_in`` inches plus a header strip for the
title (and one strip per banner above it), saved at :data:`DPI` without tight cropping, so its
pixel size is known in advance: ``figure_px(nrows, ncols, panel_in, num_banners)`` (the tests
check it).
"""
from typing import Sequence, Tuple

from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

DPI = 100
PANEL_IN = 3.0
HEADER_IN = 0.75  # exact in binary, so sizes in pixels are exact integers
BANNER_IN = 0.25
#: banner kind -> (background, text colour): ``warning`` for what makes a picture misleading
#: (a teacher with random weights), ``note`` for what the reader should keep in mind
BANNER_COLORS = {'warning': ('#c00000', 'white'), 'note': ('#ffc000', 'black')}


def figure_px(nrows: int, ncols: int, panel_in: float = PANEL_IN,
              num_banners: int = 0) -> Tuple[int, int]:
    """(width, height) in pixels of :func:`panel_figure` ``(nrows, ncols, panel_in)`` with
    ``num_banners`` banners."""
    height = nrows * panel_in + HEADER_IN + num_banners * BANNER_IN
    return int(round(ncols * panel_in * DPI)), int(round(height * DPI))


def panel_figure(nrows: int, ncols: int, title: str, panel_in: float = PANEL_IN,
                 banners: Sequence[Tuple[str, str]] = ()):
    """A figure of ``nrows x ncols`` panels with ``title`` on top; returns (fig, axes 2-D).

    ``banners``: ``(kind, text)`` pairs (kind in :data:`BANNER_COLORS`), each drawn as a
    full-width coloured strip above the title, so that what makes the picture misleading is
    on the picture itself.
    """
    top_in = HEADER_IN + len(banners) * BANNER_IN
    height = nrows * panel_in + top_in
    fig = Figure(figsize=(ncols * panel_in, height), dpi=DPI)  # no pyplot: no backend state
    axes = fig.subplots(nrows, ncols, squeeze=False)
    fig.subplots_adjust(left=0.04 if ncols > 1 else 0.08, right=0.97,
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
    fig.suptitle(title, fontsize=9, y=1.0 - (len(banners) * BANNER_IN + 0.08) / height,
                 va='top')
    return fig, axes


def save_figure(fig, path: str) -> str:
    """Save at :data:`DPI` (no tight bbox: the size stays :func:`figure_px`)."""
    fig.savefig(path, dpi=DPI)
    return path
