"""Fixed-size matplotlib figures shared by the visualisation tools.

Every figure is a grid of square panels of ``panel_in`` inches plus a header strip for the
title, saved at :data:`DPI` without tight cropping, so its pixel size is known in advance:
``figure_px(nrows, ncols, panel_in)`` (the tests check it).
"""
from typing import Tuple

from matplotlib.figure import Figure

DPI = 100
PANEL_IN = 3.0
HEADER_IN = 0.75  # exact in binary, so sizes in pixels are exact integers


def figure_px(nrows: int, ncols: int, panel_in: float = PANEL_IN) -> Tuple[int, int]:
    """(width, height) in pixels of :func:`panel_figure` ``(nrows, ncols, panel_in)``."""
    return int(round(ncols * panel_in * DPI)), int(round((nrows * panel_in + HEADER_IN) * DPI))


def panel_figure(nrows: int, ncols: int, title: str, panel_in: float = PANEL_IN):
    """A figure of ``nrows x ncols`` panels with ``title`` on top; returns (fig, axes 2-D)."""
    height = nrows * panel_in + HEADER_IN
    fig = Figure(figsize=(ncols * panel_in, height), dpi=DPI)  # no pyplot: no backend state
    axes = fig.subplots(nrows, ncols, squeeze=False)
    fig.subplots_adjust(left=0.04 if ncols > 1 else 0.08, right=0.97,
                        bottom=0.06 * PANEL_IN / height + 0.01,
                        top=1.0 - (HEADER_IN + 0.1) / height,
                        wspace=0.35, hspace=0.45)
    fig.suptitle(title, fontsize=9, y=1.0 - 0.08 / height, va='top')
    return fig, axes


def save_figure(fig, path: str) -> str:
    """Save at :data:`DPI` (no tight bbox: the size stays :func:`figure_px`)."""
    fig.savefig(path, dpi=DPI)
    return path
