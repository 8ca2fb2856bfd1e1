"""Pictures of an index on one map: every chip's footprint in longitude/latitude.

**Usage**::

    plot.plot_map(splits)                           # coloured by split, dropped hatched
    plot.plot_map(index, column="valid_fraction")   # any column, with a colorbar

Footprints come from :meth:`geochips.ChipIndex.footprints` in EPSG:4326 (cut at the
antimeridian) and are drawn as one collection per colour: 100k chips take about a second.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import shapely

from geochips.coordinates import LONLAT
from geochips.errors import InvalidParameterError
from geochips.index import ChipIndex
from geochips.plot.figures import COLORS, new_figure, polygons
from geochips.plot.samples import as_array
from geochips.plot.splits import DROPPED, Parts, add_legend, dropped_by, split_parts

if TYPE_CHECKING:
    from collections.abc import Mapping

    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

Rings = list[tuple[np.ndarray, np.ndarray]]
"""Rings of one vertex count ``k`` as ``(n, k, 2)`` lon/lat, with the chip of each ring:
arrays take matplotlib's fast path (a list of 100k rings takes ten times longer)."""


def plot_map(
    index_or_splits: ChipIndex | Mapping[str, ChipIndex],
    *,
    column: str | None = None,
    cmap: str = "viridis",
    alpha: float = 0.6,
) -> Figure:
    """Draw every chip's footprint in longitude/latitude on one axis.

    Args:
        index_or_splits: a :class:`~geochips.ChipIndex` or :class:`~geochips.Splits` (as
            in :func:`plot_index`; the dropped chips hatched).
        column: colour by this index column instead of by split: a legend for categories
            (strings, booleans, integers with 10 values or fewer), a colorbar with
            ``cmap`` for numbers.
        cmap: the colormap of numeric columns.
        alpha: opacity of the footprints.

    Returns:
        A new figure. Chips of scenes without a CRS have no footprint and are not drawn
        (the title says how many).

    Raises:
        InvalidParameterError: on bad input or a column some index lacks.
    """
    parts, dropped = split_parts(index_or_splits)
    fig = new_figure(8.0, 6.0)
    ax = fig.add_subplot()
    rings = [_lonlat_rings(part) for _, part in parts]
    if column is None:
        for k, groups in enumerate(rings):
            color = COLORS[k % len(COLORS)]
            _add(ax, groups, facecolor=color, edgecolor=color, alpha=alpha)
        add_legend(fig, parts, dropped, aoi=False)
    else:
        _colour_by(fig, ax, parts, rings, column, cmap, alpha)
    for reason, (hatch, color) in DROPPED.items():
        if dropped is not None:
            style: dict[str, Any] = {"facecolor": "none", "edgecolor": color, "hatch": hatch}
            _add(ax, _lonlat_rings(dropped_by(dropped, reason)), **style)
    ax.autoscale_view()
    lat = np.mean(ax.get_ylim())
    ax.set(xlabel="longitude", ylabel="latitude", aspect=1 / max(np.cos(np.radians(lat)), 0.01))
    drawn = sum(len(np.unique(owner)) for groups in rings for _, owner in groups)
    total = sum(len(p) for _, p in parts)
    missing = f", {total - drawn} without a CRS not drawn" if drawn < total else ""
    ax.set_title(f"{total} chips{missing}", fontsize=9)
    return fig


def _lonlat_rings(part: ChipIndex) -> Rings:
    """Outer rings of the footprints in lon/lat, grouped by their number of vertices."""
    polygons, owner = shapely.get_parts(part.footprints(frame=LONLAT), return_index=True)
    rings = shapely.get_exterior_ring(polygons)
    counts = shapely.get_num_coordinates(rings)
    coords = shapely.get_coordinates(rings)
    starts = np.cumsum(counts) - counts
    groups = []
    for k in np.unique(counts).tolist():
        which = np.flatnonzero(counts == k)
        groups.append((coords[starts[which, None] + np.arange(k)], owner[which]))
    return groups


def _add(
    ax: Axes, groups: Rings, per_chip: dict[str, np.ndarray] | None = None, **style: Any
) -> None:
    """Add one collection per group; ``per_chip`` values are taken for each ring's chip."""
    for verts, owner in groups:
        picked = {name: values[owner] for name, values in (per_chip or {}).items()}
        ax.add_collection(polygons(verts, **style, **picked))


def _column(part: ChipIndex, column: str) -> np.ndarray:
    if column not in part.column_names:
        raise InvalidParameterError(
            f"column={column!r} is not a column of every index; they have {part.column_names}"
        )
    return as_array(part.column(column))


def _colour_by(
    fig: Figure,
    ax: Axes,
    parts: Parts,
    rings: list[Rings],
    column: str,
    cmap: str,
    alpha: float,
) -> None:
    """Colour footprints by a column: a colorbar for numbers, a legend for categories."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize, to_rgba
    from matplotlib.patches import Patch

    values = [_column(part, column) for _, part in parts]
    every = np.concatenate(values)
    if every.dtype.kind == "f" or (
        every.dtype.kind in "iu" and len(np.unique(every)) > len(COLORS)
    ):
        norm = Normalize(np.nanmin(every), np.nanmax(every))
        for groups, v in zip(rings, values, strict=True):
            _add(ax, groups, {"array": v.astype(np.float64)}, cmap=cmap, norm=norm, alpha=alpha)
        fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=column)
        return
    categories = np.unique(every.astype(str))
    palette = np.array([to_rgba(COLORS[k % len(COLORS)]) for k in range(len(categories))])
    for groups, v in zip(rings, values, strict=True):
        colors = palette[np.searchsorted(categories, v.astype(str))]
        _add(ax, groups, {"facecolor": colors, "edgecolor": colors}, alpha=alpha)
    handles = [
        Patch(color=tuple(palette[k]), label=f"{column} = {c}") for k, c in enumerate(categories)
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=8)
