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

A scene's edges are taken out of its geometries once (:func:`polygon_edges`); each chip
gathers those of the polygons it meets and sorts its crossings once, as integers: a
crossing only matters through the column ``floor(x + 0.5)`` it starts or stops a span at,
so sorting ``(polygon, row, column)`` keys pairs the same spans as sorting by ``x`` would.
The spans then make the chip, in the smallest dtype that holds the values (the output, often
``int64``, is written once, widened): when they are few pixels, each pixel is set; otherwise
the chip is built as runs of one value (``np.repeat``), at a cost per span, not per pixel.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import shapely


def polygonal(geometries: np.ndarray) -> bool:
    """Whether every geometry is a Polygon or MultiPolygon (what :func:`fill_polygons` burns)."""
    kinds = shapely.get_type_id(geometries)
    return bool(np.isin(kinds, (3, 6)).all())  # Polygon, MultiPolygon


class Edges(NamedTuple):
    """The non-horizontal edges of polygons, each ordered so that ``ya < yb``."""

    coords: np.ndarray
    """``(4, n)`` float64: the rows ``xa, ya, xb, yb`` (a chip gathers all four at once)."""
    starts: np.ndarray
    """The edges of geometry ``g`` are ``starts[g]:starts[g] + counts[g]``."""
    counts: np.ndarray


def polygon_edges(geometries: np.ndarray) -> Edges:
    """The edges of (multi)polygons, over all their rings, grouped by geometry."""
    parts, part_owner = shapely.get_parts(geometries, return_index=True)  # multipolygons
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    coords, ring = shapely.get_coordinates(rings, return_index=True)
    # Edges join consecutive vertices of one ring (rings are closed: last == first).
    same = ring[1:] == ring[:-1]
    x0, y0 = coords[:-1, 0][same], coords[:-1, 1][same]
    x1, y1 = coords[1:, 0][same], coords[1:, 1][same]
    owner = part_owner[ring_part][ring[:-1][same]]
    down = y0 > y1  # order each edge so that ya < yb, as GDAL does
    keep = y0 != y1  # horizontal edges cross no scanline
    xa, ya = np.where(down, x1, x0)[keep], np.where(down, y1, y0)[keep]
    xb, yb = np.where(down, x0, x1)[keep], np.where(down, y0, y1)[keep]
    starts = np.searchsorted(owner[keep], np.arange(len(geometries) + 1))
    return Edges(np.stack([xa, ya, xb, yb]), starts[:-1], np.diff(starts))


def fill_polygons(
    geometries: np.ndarray,
    values: np.ndarray,
    offset: tuple[int, int],
    shape: tuple[int, int],
    out: np.ndarray,
) -> None:
    """Burn ``values`` of polygons (in scene pixels) into ``out`` ``(height, width)``.

    ``offset`` is the chip's ``(row_off, col_off)`` in the scene; every pixel of ``out`` is
    written, 0 where no polygon is.
    """
    hits = np.arange(len(geometries))
    fill_edges(polygon_edges(geometries), hits, values, offset, shape, out)


def fill_edges(
    edges: Edges,
    hits: np.ndarray,
    values: np.ndarray,
    offset: tuple[int, int],
    shape: tuple[int, int],
    out: np.ndarray,
) -> None:
    """Burn the polygons ``hits`` (positions in ``edges``, in burning order) into ``out``.

    ``values`` holds one value per hit, in the dtype to burn in: the smallest that holds
    them (``uint8`` for classes up to 255) keeps the chip's buffer in cache, and ``out``
    (often ``int64``) is then written once, widened. Otherwise as :func:`fill_polygons`.
    """
    height, width = shape
    row_off, col_off = offset
    size = height * (width + 1)  # the chip and one column more, where spans may stop
    shift = (size - 1).bit_length()  # a crossing's key: polygon << shift | its position
    count = edges.counts[hits]
    edge = _ranges(edges.starts[hits], count)
    # Per edge: xa, ya, xb - xa, yb - ya in chip pixels (as GDAL takes them), its first
    # row less the offset of its crossings, and its polygon's part of the key.
    table = np.empty((6, len(edge)))
    np.take(edges.coords, edge, axis=1, out=table[:4])  # 3x faster than coords[:, edge]
    table[:4] -= np.array([[col_off], [row_off]] * 2, np.float64)
    table[5] = np.repeat(np.arange(len(hits), dtype=np.float64) * (1 << shift), count)
    # Rows whose centre line y = row + 0.5 satisfies ya <= y < yb (shifting both ends by
    # the offset keeps their order: ya - r < yb - r, or both equal and no row is crossed).
    lines = np.ceil(table[1:4:2] - 0.5)
    np.maximum(lines, 0, out=lines)  # np.clip costs twice as much
    np.minimum(lines, height, out=lines)
    count = (lines[1] - lines[0]).astype(np.int64)
    ends = np.cumsum(count)
    total = int(ends[-1]) if len(ends) else 0
    if not total:
        out[...] = 0
        return
    table[2:4] -= table[:2]
    np.subtract(lines[0], ends - count, out=table[4])
    # One crossing per (edge, row); every float from here on holds an integer exactly.
    xa, ya, dx, dy, first, polygon = np.repeat(table, count, axis=1)
    row = first + np.arange(total)
    # GDAL's x = (y - ya) * (xb - xa) / (yb - ya) + xa, in its order (in place: fewer
    # temporaries), and the column floor(x + 0.5) a span starts or stops at.
    x = row + 0.5
    x -= ya
    x *= dx
    x /= dy
    x += xa
    x += 0.5
    np.floor(x, out=x)
    np.maximum(x, 0, out=x)
    np.minimum(x, width, out=x)
    x += polygon
    x += row * (width + 1)  # the position in a (height, width + 1) grid
    key = x.astype(np.int32 if len(hits) << shift < 2**31 else np.int64)  # int32 sorts faster
    key.sort()
    # Each (polygon, row) has an even number of crossings: sorted, consecutive pairs are
    # its spans [start, stop), which never reach the next row of the grid.
    start, stop = key[0::2] & ((1 << shift) - 1), key[1::2] & ((1 << shift) - 1)
    count = stop - start
    ends = np.add.accumulate(count)
    if (values == values[0]).all() and ends[-1] < size // 8:
        # A few pixels: set each one (np.repeat costs ~15 ns a span, ~1 ns a pixel).
        flat = np.repeat(start - (ends - count), count)
        flat += np.arange(ends[-1])
        image = np.zeros(size, values.dtype)
        image[flat] = values[0]
    else:
        # The chip as runs of one value: the work follows the spans, not their pixels.
        if (values == values[0]).all():
            bounds, burnt = _union(start, stop, size, values[0])
        else:
            bounds, burnt = _latest(start, stop, key[0::2] >> shift, values, size)
        image = np.repeat(burnt, np.diff(bounds))
    np.copyto(out, image.reshape(height, width + 1)[:, :width])


def _union(
    start: np.ndarray, stop: np.ndarray, size: int, value: np.generic
) -> tuple[np.ndarray, np.ndarray]:
    """``(bounds, values)`` of the runs of ``[0, size)``: ``value`` where a span is, else 0.

    Sorted apart, the ``i``-th start is never after the ``i``-th stop, and the union has a
    gap between them exactly where stop ``i`` comes before start ``i + 1``.
    """
    first, last = np.sort(start), np.sort(stop)
    gap = first[1:] > last[:-1]
    runs = int(np.count_nonzero(gap)) + 1
    bounds = np.empty(2 * runs + 2, np.int64)
    bounds[0], bounds[1], bounds[-2], bounds[-1] = 0, first[0], last[-1], size
    bounds[3:-1:2] = first[1:][gap]
    bounds[2:-2:2] = last[:-1][gap]
    burnt = np.zeros(2 * runs + 1, np.asarray(value).dtype)
    burnt[1::2] = value
    return bounds, burnt


def _latest(
    start: np.ndarray, stop: np.ndarray, polygon: np.ndarray, values: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(bounds, values)`` of the runs of ``[0, size)``, where the last polygon wins.

    Every start and stop cuts ``[0, size)`` into pieces; each piece takes the value of the
    highest polygon whose spans cover it, or 0.
    """
    cuts = np.concatenate([start, stop, [0, size]]).astype(np.int64)
    # Sorted with their positions in the low bits (np.argsort and np.searchsorted cost
    # 3-5x more), the cuts give the pieces and the first and last piece of each span.
    shift = len(cuts).bit_length()
    cuts <<= shift
    cuts |= np.arange(len(cuts))
    cuts.sort()
    order = cuts & ((1 << shift) - 1)
    cuts >>= shift
    new = np.concatenate([[False], cuts[1:] != cuts[:-1]])
    piece = np.empty(len(cuts), np.int64)
    piece[order] = np.cumsum(new)
    lo, hi = piece[: len(start)], piece[len(start) : 2 * len(start)]
    latest = np.zeros(int(piece[order[-1]]), np.int64)
    np.maximum.at(latest, _ranges(lo, hi - lo), np.repeat(polygon.astype(np.int64) + 1, hi - lo))
    bounds = cuts[np.concatenate([[True], new[1:]])]
    return bounds, np.concatenate([np.zeros(1, values.dtype), values])[latest]


def _ranges(start: np.ndarray, count: np.ndarray) -> np.ndarray:
    """``start[0], ..., start[0] + count[0] - 1, start[1], ...``: the ranges, end to end."""
    ends = np.cumsum(count)
    k = np.repeat(start - ends + count, count)
    k += np.arange(len(k))
    return k
