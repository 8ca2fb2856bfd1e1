"""What every picture shares: matplotlib imported on first use, figures, grids and colours.

matplotlib is imported inside the functions, never at module level, so that
``ChipDataset`` (which offers :meth:`~geochips.ChipDataset.plot`) works without it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, cast

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.collections import PolyCollection
    from matplotlib.figure import Figure

INSTALL = "pip install geochips[plot]"
"""How to get what the pictures need."""

COLORS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip
"""Colours of splits, classes and categories, in order (matplotlib's ``tab10``)."""


def new_figure(width: float, height: float) -> Figure:
    """Return a figure of ``width`` x ``height`` inches, made outside pyplot (no global state).

    Raises:
        ImportError: naming ``pip install geochips[plot]`` when matplotlib is missing.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(f"geochips.plot draws with matplotlib: {INSTALL}") from exc
    return Figure(figsize=(width, height), layout="constrained")


def root_figure(ax: Axes) -> Figure:
    """The figure that holds ``ax`` (the top one when ``ax`` sits in a subfigure)."""
    return ax.figure.figure  # a Figure is its own .figure; a SubFigure's is the root


def axes_grid(fig: Figure, n: int, cell: float) -> list[Axes]:
    """Lay ``n`` axes in a near-square grid of ``cell``-inch cells, resizing ``fig`` to fit."""
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    fig.set_size_inches(cols * cell, rows * cell + 0.6)
    axes = list(fig.subplots(rows, cols, squeeze=False).ravel())
    for spare in axes[n:]:
        spare.remove()
    return axes[:n]


def boxes(
    x0: np.ndarray, y0: np.ndarray, x1: np.ndarray, y1: np.ndarray, **style: Any
) -> PolyCollection:
    """One rectangle per ``(x0, y0, x1, y1)``, as a single collection (fast for 100k)."""
    corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    verts = np.stack([np.stack([np.asarray(x), np.asarray(y)], axis=-1) for x, y in corners], 1)
    return polygons(verts.astype(np.float64), **style)


def polygons(verts: np.ndarray, **style: Any) -> PolyCollection:
    """A collection of ``(n, k, 2)`` polygons: an array takes matplotlib's fast path."""
    from matplotlib.collections import PolyCollection

    return PolyCollection(cast(Any, verts), **style)  # typed as a list, works best as an array
