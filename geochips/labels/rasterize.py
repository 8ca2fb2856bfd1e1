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

A scene's edges are taken out of its geometries once (:func:`polygon_edges`, from their
coordinate arrays), with the rows each crosses. Each chip gathers the edges of the polygons
it meets and computes their crossings in scene pixels, so a chip is exactly the whole
scene's burn cut to its window (what a whole-image ``rasterize`` gives). It sorts its
crossings once, as integers: a crossing only matters through the column ``floor(x + 0.5)``
it starts or stops a span at, so sorting ``(polygon, row, column)`` keys pairs the same
spans as sorting by ``x`` would.
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
    """The non-horizontal edges of polygons in scene pixels, each ordered so ``ya < yb``."""

    coords: np.ndarray
    """``(4, n)`` float64: the rows ``xa, ya, xb - xa, yb - ya`` (as GDAL takes them)."""
    rows: np.ndarray
    """``(2, n)`` int64: the scene rows each edge crosses, ``rows[0] <= row < rows[1]``:
    those whose centre line ``y = row + 0.5`` satisfies ``ya <= y < yb``."""
    starts: np.ndarray
    """The edges of geometry ``g`` are ``starts[g]:starts[g] + counts[g]``."""
    counts: np.ndarray


def polygon_edges(geometries: np.ndarray) -> Edges:
    """The edges of (multi)polygons, over all their rings, grouped by geometry."""
    coords, offsets = polygon_arrays(geometries)
    return ragged_edges(coords, offsets)


def polygon_arrays(geometries: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """``(coords, offsets)`` of (multi)polygons, as ``shapely.to_ragged_array`` gives them.

    Polygons without holes (most footprints) are one ring each, so the rings' offsets
    follow from each vertex's owner, and no ring is made a geometry of its own (which is
    three quarters of ``to_ragged_array``'s time).
    """
    if (shapely.get_type_id(geometries) == 3).all() and not (
        shapely.get_num_interior_rings(geometries).any()
    ):
        coords, owner = shapely.get_coordinates(geometries, return_index=True)
        counts = np.bincount(owner, minlength=len(geometries))
        rings = np.concatenate([[0], np.cumsum(counts[counts > 0])])  # empty ones have none
        return coords, (rings, np.concatenate([[0], np.cumsum(counts > 0)]))
    _, coords, offsets = shapely.to_ragged_array(geometries, include_z=False)
    return coords, offsets


def ragged_edges(coords: np.ndarray, offsets: tuple[np.ndarray, ...]) -> Edges:
    """The edges of (multi)polygons given as ``shapely.to_ragged_array`` gives them.

    ``coords`` ``(n, 2)`` are the rings' vertices end to end; ``offsets`` start with the
    rings' offsets into them, then (multipolygons) the polygons' into the rings, and last
    the geometries' offsets. Reading these arrays costs a fraction of asking shapely for
    every part and ring as a geometry of its own.
    """
    ring_offsets = np.asarray(offsets[0])
    owner = np.arange(len(offsets[-1]) - 1)  # each geometry, then each polygon, each ring
    for level in reversed(offsets[1:]):
        owner = np.repeat(owner, np.diff(level))
    owner = np.repeat(owner, np.diff(ring_offsets))  # the geometry of each vertex
    # Edges join consecutive vertices of one ring (rings are closed: last == first).
    same = np.ones(max(len(coords) - 1, 0), dtype=bool)
    same[ring_offsets[1:-1] - 1] = False
    x0, y0 = coords[:-1, 0][same], coords[:-1, 1][same]
    x1, y1 = coords[1:, 0][same], coords[1:, 1][same]
    owner = owner[:-1][same]
    down = y0 > y1  # order each edge so that ya < yb, as GDAL does
    keep = y0 != y1  # horizontal edges cross no scanline
    xa, ya = np.where(down, x1, x0)[keep], np.where(down, y1, y0)[keep]
    xb, yb = np.where(down, x0, x1)[keep], np.where(down, y0, y1)[keep]
    starts = np.searchsorted(owner[keep], np.arange(len(offsets[-1])))
    rows = np.ceil(np.stack([ya, yb]) - 0.5).astype(np.int64)
    coords = np.stack([xa, ya, xb - xa, yb - ya])
    return Edges(coords, rows, starts[:-1], np.diff(starts))


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
    out[...] = burn_edges(polygon_edges(geometries), hits, values, offset, shape)


def burn_edges(
    edges: Edges,
    hits: np.ndarray,
    values: np.ndarray,
    offset: tuple[int, int],
    shape: tuple[int, int],
) -> np.ndarray:
    """The chip with the polygons ``hits`` (positions in ``edges``, in burning order) burnt in.

    The chip is ``shape`` ``(height, width)`` at ``offset`` ``(row_off, col_off)`` in the
    scene, 0 where no polygon is. ``values`` holds one value per hit, in the dtype to burn
    in, which the chip has: the smallest that holds them (``uint8`` for classes up to 255)
    keeps it in cache, and widening it afterwards (to ``int64``, say) is one pass.
    """
    height, width = shape
    row_off, col_off = offset
    size = height * width
    # A crossing's key: polygon << shift | its position row * width + column, where the
    # column is 0..width (a span may stop past the last pixel, where the next row starts).
    shift = size.bit_length()
    count = edges.counts[hits]
    edge = _ranges(edges.starts[hits], count)
    # The rows of the chip each edge crosses, and the edges that cross one.
    lines = np.take(edges.rows, edge, axis=1)
    np.maximum(lines, row_off, out=lines)  # np.clip costs twice as much
    np.minimum(lines, row_off + height, out=lines)
    crossed = lines[1] - lines[0]
    across = crossed > 0
    crossed = crossed[across]
    ends = np.cumsum(crossed)
    total = int(ends[-1]) if len(ends) else 0
    if not total:
        return np.zeros(shape, values.dtype)
    # Per edge: xa, ya, dx, dy, its polygon's part of the key less the chip's first row,
    # and its first row less the offset of its crossings (every float holds an integer
    # exactly from the fifth row on).
    edge = edge[across]
    table = np.empty((6, len(edge)))
    np.take(edges.coords, edge, axis=1, out=table[:4])  # 3x faster than coords[:, edge]
    polygon = np.repeat(np.arange(len(hits), dtype=np.float64) * (1 << shift), count)
    np.subtract(polygon[across], row_off * width, out=table[4])
    np.subtract(lines[0][across], ends - crossed, out=table[5])
    # One crossing per (edge, row), in scene pixels: the whole scene's burn, cut to the chip.
    xa, ya, dx, dy, base, first = np.repeat(table, crossed, axis=1)
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
    x -= col_off
    np.maximum(x, 0, out=x)
    np.minimum(x, width, out=x)
    x += base
    row *= width
    x += row
    key = x.astype(np.int32 if len(hits) << shift < 2**31 else np.int64)  # int32 sorts faster
    key.sort()
    # Each (polygon, row) has an even number of crossings, all keyed before the next row's:
    # sorted, consecutive pairs are its spans [start, stop).
    low = (1 << shift) - 1
    start, stop = key[0::2] & low, key[1::2] & low
    one = (values == values[0]).all()
    count = stop - start
    ends = np.cumsum(count)
    if one and ends[-1] < size // 4:
        # A few pixels: set each one (np.repeat costs ~15 ns a span, ~0.3 ns a pixel, and
        # pages of memory the kernel zeroed are only touched where a span is).
        flat = np.repeat(start - (ends - count), count)
        flat += np.arange(ends[-1], dtype=flat.dtype)
        image = np.zeros(size, values.dtype)
        image[flat] = values[0]
        return image.reshape(shape)
    if one:
        bounds, burnt = _union(start, stop, size, values[0])
    else:
        bounds, burnt = _latest(start, stop, key[0::2] >> shift, values, size)
    # The chip as runs of one value: the work follows the spans, not their pixels.
    return np.repeat(burnt, np.diff(bounds)).reshape(shape)


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
