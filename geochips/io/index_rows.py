"""The rows of a saved index, a row group at a time: derived columns built in Arrow, vectorised.

:class:`RowGroups` turns row ranges of a chip table into Arrow tables: its own columns, the
columns derived from scenes and windows (chip id, scene id, unsigned hrefs, assets, level,
CRS) taken from one small per-scene array each, the footprint in longitude/latitude as WKB
and its bbox covering. Footprints that are quads or densified rings (all but those cut at
the antimeridian or at a pole) become WKB straight from their points, with NumPy
(:func:`polygon_wkb`), not through a shapely object each. Nothing is kept
of a group once it is built, except the extent and geometry types the GeoParquet metadata
reports (:meth:`RowGroups.geo`). :func:`chip_id_array` spells chip ids the way
:mod:`geochips.ids` does, in Arrow, to write and to check them.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import shapely
from rasterio.crs import CRS

from geochips.footprints import LONLAT, Footprints, footprint_parts
from geochips.ids import scene_prefixes
from geochips.io.arrow_codec import WINDOW
from geochips.scene import Scene
from geochips.scene_json import _safe_href
from geochips.windows import ChipTable

BBOX = ("xmin", "ymin", "xmax", "ymax")
GEOMETRY_TYPES = ("Point", "LineString", "LinearRing", "Polygon", "MultiPoint",
                  "MultiLineString", "MultiPolygon", "GeometryCollection")  # fmt: skip
"""GeoParquet's names of shapely's geometry type ids."""


def chip_id_array(pa: Any, prefixes: Any, columns: dict[str, Any]) -> Any:
    """Chip ids (Arrow strings) from the scenes' id prefixes and window columns.

    Args:
        pa: the ``pyarrow`` module.
        prefixes: Arrow strings, ``"<scene id>/<level>"`` of each scene.
        columns: the window columns (NumPy or Arrow integer arrays) of the rows.
    """
    import pyarrow.compute as pc

    text = {k: pc.cast(pa.array(columns[k]), pa.string()) for k in WINDOW[1:]}
    size = pc.binary_join_element_wise(text["height"], text["width"], "x")
    scene = prefixes.take(pa.array(columns["scene"]))
    return pc.binary_join_element_wise(scene, text["row_off"], text["col_off"], size, "/")


def polygon_wkb(
    rings: Sequence[np.ndarray], order: np.ndarray | None = None, pa: Any = None
) -> np.ndarray:
    """WKB of the polygons of open rings, one ring each, as ``(n, bytes)``.

    ``rings`` holds ``(n_i, p, 2)`` pieces, taken one after the other; each polygon takes
    ``13 + 16 (p + 1)`` bytes, those shapely writes for it (``shapely.to_wkb``, 2D,
    little-endian, ISO): byte order, type 3, one ring, its ``p + 1`` points (the first
    repeated last). ``order`` gives the output row of each ring (a permutation of
    ``range(n)``). With ``pa`` (the ``pyarrow`` module) the bytes are in a buffer of
    Arrow's memory pool, which keeps its pages from one row group to the next: a NumPy
    array that large gets fresh pages each time, every one a page fault (~10 % of a save).
    """
    n, p = sum(len(piece) for piece in rings), rings[0].shape[1]
    layout = np.dtype(
        [("order", "u1"), ("type", "<u4"), ("rings", "<u4"), ("points", "<u4"),
         ("xy", "<f8", (p + 1, 2))]
    )  # fmt: skip
    if pa is None:
        out = np.empty(n, dtype=layout)
    else:
        out = np.frombuffer(pa.allocate_buffer(n * layout.itemsize), dtype=layout)
    out["order"], out["type"], out["rings"], out["points"] = 1, 3, 1, p + 1
    xy, start = out["xy"], 0
    for piece in rings:
        at = (
            slice(start, start + len(piece)) if order is None else order[start : start + len(piece)]
        )
        xy[at, :p] = piece
        xy[at, p] = piece[:, 0]
        start += len(piece)
    return out.view(np.uint8).reshape(n, layout.itemsize)


def ring_bounds(rings: np.ndarray) -> np.ndarray:
    """``(n, 4)`` xmin, ymin, xmax, ymax of ``(n, p, 2)`` rings (NaN where a point is)."""
    low, high = rings, rings
    # Halving: NumPy reduces (n, p, 2) over p several times slower than this.
    while low.shape[1] > 1:
        half = low.shape[1] // 2
        odd = low.shape[1] % 2
        low = np.minimum(low[:, :half], low[:, half : 2 * half])
        high = np.maximum(high[:, :half], high[:, half : 2 * half])
        if odd:
            low[:, 0] = np.minimum(low[:, 0], rings[:, -1])
            high[:, 0] = np.maximum(high[:, 0], rings[:, -1])
    return np.concatenate([low[:, 0], high[:, 0]], axis=1)


def _fixed(pa: Any, wkb: np.ndarray) -> Any:
    """An Arrow binary array of ``(n, size)`` bytes, one value a row, from one buffer."""
    n, size = wkb.shape
    offsets = np.arange(n + 1, dtype=np.int32) * np.int32(size)  # n <= ROW_GROUP
    return pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(wkb)])


def _wkb_array(pa: Any, parts: Footprints) -> tuple[Any, np.ndarray, np.ndarray]:
    """The Arrow WKB column of footprints, their bounds and whether each is known.

    Quads and rings are written with NumPy, a buffer each; only the other footprints (cut
    at the antimeridian or at a pole) go through shapely.
    """
    n = len(parts.quad)
    ringed = np.zeros(n, dtype=bool)
    ringed[parts.ring_rows] = True
    others = ~(parts.quad | ringed) & ~shapely.is_missing(parts.other)
    present = parts.quad | ringed | others
    bounds = np.full((n, 4), np.nan)
    pieces = []
    if parts.quad.any():
        corners = parts.corners[parts.quad]
        bounds[parts.quad] = ring_bounds(corners)
        pieces.append((np.flatnonzero(parts.quad), _fixed(pa, polygon_wkb([corners], pa=pa))))
    if len(parts.ring_rows):
        rings, rows = parts.rings, parts.ring_rows
        bounds[rows] = np.concatenate([ring_bounds(piece) for piece in rings])
        if len(rows) == n:  # rings only (scenes batched by CRS put them in another order)
            pieces.append((np.arange(n), _fixed(pa, polygon_wkb(rings, order=rows, pa=pa))))
        else:
            pieces.append((rows, _fixed(pa, polygon_wkb(rings, pa=pa))))
    if others.any():
        bounds[others] = shapely.bounds(parts.other[others])
        wkb = shapely.to_wkb(parts.other[others], output_dimension=2)
        pieces.append((np.flatnonzero(others), pa.array(wkb, pa.binary())))
    return _in_row_order(pa, n, pieces), bounds, present


def _in_row_order(pa: Any, n: int, pieces: list[tuple[np.ndarray, Any]]) -> Any:
    """One Arrow array of ``n`` rows from ``(rows, values)`` pieces (null where none)."""
    if len(pieces) == 1 and np.array_equal(pieces[0][0], np.arange(n)):
        return pieces[0][1]  # the usual row group: one kind of footprint, no copy
    position = np.full(n, sum(len(rows) for rows, _ in pieces), dtype=np.int64)
    offset = 0
    for rows, _ in pieces:
        position[rows] = offset + np.arange(len(rows))
        offset += len(rows)
    values = [values for _, values in pieces] + [pa.nulls(1, pa.binary())]
    return pa.concat_arrays(values).take(pa.array(position))


class RowGroups:
    """Arrow tables of row ranges of ``index``, with ``own`` (name -> Arrow array) columns."""

    def __init__(self, pa: Any, index: ChipTable, own: dict[str, Any]) -> None:
        self.pa, self.index, self.own = pa, index, own
        scenes: Sequence[Scene] = index.scenes
        strings = pa.list_(pa.string())
        self.per_scene = {
            "scene_id": pa.array([s.id for s in scenes], pa.string()),
            "hrefs": pa.array([[_safe_href(h) for h in s.hrefs] for s in scenes], strings),
            "assets": pa.array([list(s.assets) for s in scenes], strings),
            "overview_level": pa.array([s.overview_level for s in scenes], pa.int32()),
            "crs": pa.array([s.crs for s in scenes], pa.string()),
        }
        self.prefixes = pa.array(scene_prefixes(scenes), pa.string())
        self.lock = threading.Lock()
        self.reset_extent()

    def reset_extent(self) -> None:
        """Start a new file: :meth:`geo` reports the groups built from now on."""
        self.low = np.full(2, np.inf)
        self.high = np.full(2, -np.inf)
        self.types: set[int] = set()

    def footprints(self, rows: slice) -> Footprints:
        """The footprints of ``rows`` in lon/lat (what :meth:`table` writes)."""
        window = {k: np.asarray(self.index.column(k))[rows] for k in WINDOW}
        return footprint_parts(self.index.scenes, window, LONLAT)

    def build(self, rows: slice) -> Any:
        """The Arrow table of ``rows``, footprints included (threads may build several)."""
        return self.table(rows, self.footprints(rows))

    def table(self, rows: slice, parts: Footprints) -> Any:
        """The Arrow table of ``rows`` (their ``parts``): derived columns, then the index's own.

        The extent :meth:`geo` reports grows with each table made, in any order.
        """
        pa = self.pa
        window = {k: np.asarray(self.index.column(k))[rows] for k in WINDOW}
        geometry, bounds, present = _wkb_array(pa, parts)
        if present.any():
            low, high = bounds[present, :2].min(0), bounds[present, 2:].max(0)
            types = {3} if parts.quad.any() or len(parts.ring_rows) else set()
            types |= set(
                shapely.get_type_id(parts.other[~shapely.is_missing(parts.other)]).tolist()
            )
            with self.lock:
                self.low, self.high = np.fmin(self.low, low), np.fmax(self.high, high)
                self.types |= types
        at = pa.array(window["scene"])
        count = len(present)
        own = {name: array.slice(rows.start, count) for name, array in self.own.items()}
        arrays: dict[str, Any] = {
            "chip_id": chip_id_array(pa, self.prefixes, window),
            "scene_id": self.per_scene["scene_id"].take(at),
            **{name: own[name] for name in WINDOW},
            **{k: self.per_scene[k].take(at) for k in ("hrefs", "assets", "overview_level", "crs")},
            **{name: array for name, array in own.items() if name not in WINDOW},
            "geometry": geometry,
            "bbox": pa.StructArray.from_arrays(
                [pa.array(bounds[:, k]) for k in range(4)],
                names=list(BBOX),
                mask=pa.array(~present),
            ),
        }
        return pa.table(arrays)

    def geo(self) -> dict[str, Any]:
        """GeoParquet 1.1 metadata for the groups built so far."""
        column = {
            "encoding": "WKB",
            "geometry_types": sorted(GEOMETRY_TYPES[t] for t in self.types),
            "crs": CRS.from_string("OGC:CRS84").to_dict(projjson=True),
            "edges": "planar",
            "covering": {"bbox": {k: ["bbox", k] for k in BBOX}},
        }
        if np.isfinite(self.low).all():
            column["bbox"] = [float(v) for v in (*self.low, *self.high)]
        return {"version": "1.1.0", "primary_column": "geometry", "columns": {"geometry": column}}
