"""Burning polygons into a chip with NumPy, by GDAL's own rule, without GDAL's cost per call.

``rasterio.features.rasterize`` costs about 1 ms per call on a 512x512 chip before the first
polygon (a GDAL dataset in memory, a GeoJSON mapping and an OGR geometry per shape), and
~40 us per polygon: five times a chip's read for 100 buildings. Labels are burnt per chip,
so :func:`fill_polygons` does what GDAL's scanline fill (``GDALdllImageFilledPolygon``,
used when ``all_touched`` is off) does, for every polygon of the chip at once:

- on each row, the scanline is the pixel centres' line ``y = row + 0.5``;
- an edge ``(x1, y1) -> (x2, y2)`` with ``y1 < y2`` crosses it when ``y1 <= y < y2``, at
  ``x = (y - y1) * (x2 - x1) / (y2 - y1) + x1`` (GDAL's expression, in its order);
- a polygon's crossings on a row, sorted, pair into spans, and a span ``[xa, xb)`` fills the
  columns ``floor(xa + 0.5) <= col < floor(xb + 0.5)`` (even-odd over all its rings);
- polygons burn in order: where they overlap, the later one's value wins.

Horizontal edges lying exactly on a scanline are the one case GDAL fills apart; they
have no area, and the tests compare this with GDAL's output on real and random polygons.
Anything else (lines, points, ``all_touched=True``) goes to GDAL.
"""

from __future__ import annotations

import numpy as np
import shapely


def polygonal(geometries: np.ndarray) -> bool:
    """Whether every geometry is a Polygon or MultiPolygon (what :func:`fill_polygons` burns)."""
    kinds = shapely.get_type_id(geometries)
    return bool(np.isin(kinds, (3, 6)).all())  # Polygon, MultiPolygon


def fill_polygons(
    geometries: np.ndarray,
    values: np.ndarray,
    offset: tuple[int, int],
    shape: tuple[int, int],
    out: np.ndarray,
) -> None:
    """Burn ``values`` of polygons (in scene pixels) into ``out`` ``(height, width)``.

    ``offset`` is the chip's ``(row_off, col_off)`` in the scene; ``out`` is not cleared
    first (fill it with the background).
    """
    height, width = shape
    parts, part_owner = shapely.get_parts(geometries, return_index=True)  # multipolygons
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    owner = part_owner[ring_part]
    coords, ring = shapely.get_coordinates(rings, return_index=True)
    if not len(coords):
        return
    # Edges join consecutive vertices of one ring (rings are closed: last == first).
    same = ring[1:] == ring[:-1]
    x0, y0 = coords[:-1, 0][same] - offset[1], coords[:-1, 1][same] - offset[0]
    x1, y1 = coords[1:, 0][same] - offset[1], coords[1:, 1][same] - offset[0]
    polygon = owner[ring[:-1][same]]
    down = y0 > y1  # order each edge so that ya < yb, as GDAL does
    xa, ya = np.where(down, x1, x0), np.where(down, y1, y0)
    xb, yb = np.where(down, x0, x1), np.where(down, y0, y1)
    # Rows whose centre line y = row + 0.5 satisfies ya <= y < yb (horizontal edges: none).
    first = np.clip(np.ceil(ya - 0.5), 0, height).astype(np.int64)
    last = np.clip(np.ceil(yb - 0.5), 0, height).astype(np.int64)
    edge, rows = _ranges(first, last)
    if not len(rows):
        return
    y = rows + 0.5
    x = (y - ya[edge]) * (xb[edge] - xa[edge]) / (yb[edge] - ya[edge]) + xa[edge]
    # Sorted by polygon, row, x: each (polygon, row) has an even number of crossings, so
    # consecutive pairs are its spans.
    by_x = np.argsort(x)
    key = (polygon[edge] * (height + 1) + rows)[by_x]
    order = by_x[np.argsort(key, kind="stable")]
    x, rows, who = x[order], rows[order], polygon[edge][order]
    start = np.clip(np.floor(x[0::2] + 0.5), 0, width).astype(np.int64)
    stop = np.clip(np.floor(x[1::2] + 0.5), 0, width).astype(np.int64)
    span_row, span_who = rows[0::2], who[0::2]
    span, cols = _ranges(start, stop)
    if not len(cols):
        return
    flat = span_row[span] * width + cols
    image = out.reshape(-1)
    if (values == values[0]).all():
        image[flat] = values[0]
        return
    # The last polygon over a pixel wins: the highest polygon number, then its value.
    latest = np.full(height * width, -1, dtype=np.int64)
    np.maximum.at(latest, flat, span_who[span])
    hit = latest >= 0
    image[hit] = values[latest[hit]]


def _ranges(start: np.ndarray, stop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every ``i`` and ``k`` with ``start[i] <= k < stop[i]``, as two flat arrays."""
    count = np.maximum(stop - start, 0)
    which = np.repeat(np.arange(len(count)), count)
    return which, start[which] + (
        np.arange(len(which)) - np.repeat(np.cumsum(count) - count, count)
    )
