"""Drawing helpers of the method pictures: maps over the image, boxes, value ranges."""
import math
from typing import Optional, Sequence

import numpy as np
from matplotlib.patches import Rectangle

GT_COLOR = '#00ff66'
TITLE_FS = 7


def level_name(stride: int) -> str:
    """``P3`` for stride 8 (FPN's name), ``s12`` for a stride that is not a power of two."""
    k = math.log2(stride)
    return f'P{int(k)}' if k == int(k) else f's{stride}'


def value_range(values) -> str:
    """``'min a max b'`` of an array, or ``'empty'``."""
    values = np.asarray(values)
    return f'min {values.min():.3g} max {values.max():.3g}' if values.size else 'empty'


def gray(canvas: np.ndarray) -> np.ndarray:
    """The image as one gray channel (the background of the maps)."""
    return canvas.mean(axis=2) if canvas.ndim == 3 else canvas


def show_map(ax, fig, values: np.ndarray, extent_hw, title: str, cmap='viridis', norm=None,
             canvas: Optional[np.ndarray] = None, alpha: float = 1.0, colorbar: bool = True):
    """A feature-grid map stretched over the padded image (nearest), with a colour bar.

    With ``canvas`` the image is drawn in gray underneath (``alpha`` < 1 lets it through; a
    masked array leaves the masked cells showing the image). A map with no visible value gets
    no colour bar unless ``norm`` is given.
    """
    h, w = extent_hw
    if canvas is not None:
        ax.imshow(gray(canvas), cmap='gray', extent=(0, w, h, 0))
    visible = np.ma.count(values) > 0 if np.ma.isMaskedArray(values) else values.size > 0
    im = ax.imshow(values, cmap=cmap, norm=norm, interpolation='nearest', extent=(0, w, h, 0),
                   alpha=alpha)
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=TITLE_FS)
    if colorbar and (visible or norm is not None):
        cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
        cb.ax.tick_params(labelsize=5)
    return im


def draw_boxes(ax, boxes: np.ndarray, color=GT_COLOR, labels: Optional[Sequence[str]] = None,
               lw: float = 1.0, ls='-'):
    """Boxes (x1, y1, x2, y2) in input pixels, with optional labels at their top-left."""
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=color, lw=lw,
                               ls=ls))
        if labels is not None:
            ax.text(x1, y1, labels[i], color='black', fontsize=6, va='bottom',
                    bbox=dict(facecolor=color, alpha=0.8, pad=0.5, lw=0))
