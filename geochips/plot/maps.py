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
from geochips.plot.figures import COLORS, new_figure
from geochips.plot.samples import as_array
from geochips.plot.splits import DROPPED, add_legend, dropped_by, split_parts

if TYPE_CHECKING:
    from collections.abc import Mapping

    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


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
    rings, owners = zip(*(_lonlat_rings(part) for _, part in parts), strict=True)
    if column is None:
        for k, ring in enumerate(rings):
            color = COLORS[k % len(COLORS)]
            ax.add_collection(_polygons(ring, facecolor=color, edgecolor=color, alpha=alpha))
        add_legend(fig, parts, dropped, aoi=False)
    else:
        picked = zip(parts, owners, strict=True)
        values = np.concatenate([_column(part, column)[o] for (_, part), o in picked])
        _colour_by(fig, ax, [r for ring in rings for r in ring], values, column, cmap, alpha)
    if dropped is not None:
        for reason, (hatch, color) in DROPPED.items():
            style = {"facecolor": "none", "edgecolor": color, "hatch": hatch}
            ax.add_collection(_polygons(_lonlat_rings(dropped_by(dropped, reason))[0], **style))
    ax.autoscale_view()
    lat = np.mean(ax.get_ylim())
    ax.set(xlabel="longitude", ylabel="latitude", aspect=1 / max(np.cos(np.radians(lat)), 0.01))
    drawn = sum(len(np.unique(o)) for o in owners)
    total = sum(len(p) for _, p in parts)
    missing = f", {total - drawn} without a CRS not drawn" if drawn < total else ""
    ax.set_title(f"{total} chips{missing}", fontsize=9)
    return fig


def _lonlat_rings(part: ChipIndex) -> tuple[list[np.ndarray], np.ndarray]:
    """Outer rings of each footprint in lon/lat, and the chip each ring belongs to."""
    polygons, owner = shapely.get_parts(part.footprints(frame=LONLAT), return_index=True)
    coords, ring = shapely.get_coordinates(shapely.get_exterior_ring(polygons), return_index=True)
    ends = np.cumsum(np.bincount(ring, minlength=len(polygons)))[:-1]
    return np.split(coords, ends), owner


def _polygons(rings: list[np.ndarray], **style: Any) -> Any:
    from matplotlib.collections import PolyCollection

    return PolyCollection(rings, **style)


def _column(part: ChipIndex, column: str) -> np.ndarray:
    if column not in part.column_names:
        raise InvalidParameterError(
            f"column={column!r} is not a column of every index; they have {part.column_names}"
        )
    return as_array(part.column(column))


def _colour_by(
    fig: Figure,
    ax: Axes,
    rings: list[np.ndarray],
    values: np.ndarray,
    name: str,
    cmap: str,
    alpha: float,
) -> None:
    """Colour footprints by value: a colorbar for numbers, a legend for categories."""
    from matplotlib.patches import Patch

    numeric = values.dtype.kind in "iuf" and (
        values.dtype.kind == "f" or len(np.unique(values)) > len(COLORS)
    )
    if numeric:
        polygons = _polygons(rings, array=values.astype(np.float64), cmap=cmap, alpha=alpha)
        ax.add_collection(polygons)
        fig.colorbar(polygons, ax=ax, label=name)
        return
    categories, codes = np.unique(values.astype(str), return_inverse=True)
    colors = [COLORS[c % len(COLORS)] for c in codes]
    ax.add_collection(_polygons(rings, facecolor=colors, edgecolor=colors, alpha=alpha))
    handles = [
        Patch(color=COLORS[k % len(COLORS)], label=f"{name} = {c}")
        for k, c in enumerate(categories)
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=8)
