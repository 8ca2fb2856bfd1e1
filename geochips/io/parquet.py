"""Saving a chip index as GeoParquet, and loading it back exactly, without running code.

One row per chip::

    chip_id          string        "<scene id>/<level>/<row_off>/<col_off>/<h>x<w>"
    scene_id         string
    scene            int32         position in the scene table (below)
    row_off, col_off, height, width   int32   the window, in the read grid
    hrefs            list<string>  unsigned (query strings that carry tokens are removed)
    assets           list<string>  STAC asset keys ([] for plain files)
    overview_level   int32         null: full resolution
    crs              string        the scene's CRS ("EPSG:<code>" or WKT; GCP CRS for
                                   GCP-only scenes; null without georeferencing)
    geometry         binary        WKB footprint in longitude/latitude (OGC:CRS84, that is
                                   EPSG:4326 with longitude first), cut at the antimeridian;
                                   null for scenes with neither CRS nor GCPs
    bbox             struct        xmin, ymin, xmax, ymax of the footprint (GeoParquet 1.1
                                   covering, for row-group filtering in DuckDB/GDAL)
    ...              every other column of the index (split, valid_fraction, properties)

The Parquet key-value metadata holds ``geo`` (GeoParquet 1.1 metadata, so geopandas, QGIS,
GDAL and DuckDB read the file as a layer) and ``geochips``: JSON with the format version,
the grid parameters, the dtype of every column, the full scene headers and, when the index
has them, its ``band_stats`` (:mod:`geochips.bandstats`; older files lack them), so that
:func:`load_index` rebuilds an equal :class:`~geochips.ChipIndex` (columns, scenes and
chip ids). Nothing is pickled: loading parses JSON and Arrow only, and checks the stored
chip ids against the rebuilt ones. The index's signer is never saved; pass ``sign=`` when
loading.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import shapely
from rasterio.crs import CRS

from geochips.bandstats import stats_from_json, stats_to_json
from geochips.errors import IndexFileError, InvalidParameterError
from geochips.footprints import LONLAT, footprints
from geochips.io.signing import SignSpec, resolve_signer
from geochips.progress import ProgressSpec, start_progress
from geochips.scene import Scene
from geochips.scene_json import MAX_PIXELS, _safe_href, scene_from_json, scene_to_json, show
from geochips.windows import EDGES, ChipTable

T = TypeVar("T", bound=ChipTable)

FORMAT = "geochips.ChipIndex"
VERSION = 1
WINDOW = ("scene", "row_off", "col_off", "height", "width")
DERIVED = ("chip_id", "scene_id", "hrefs", "assets", "overview_level", "crs", "geometry", "bbox")
"""Columns written from the scenes and windows, never from the index's own columns."""
ROW_GROUP = 1 << 16
"""Rows per Parquet row group (each with its bbox statistics, for readers that filter)."""
AUTO_MIN_ROWS = 100_000
"""``progress=None`` shows progress on a terminal from this many rows (about 2 s)."""


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ImportError(
            "saving and loading a chip index as GeoParquet needs pyarrow: "
            "pip install geochips[parquet]"
        ) from exc
    return pa, pq


# -- columns <-> Arrow ----------------------------------------------------------------------


def _to_arrow(pa: Any, name: str, values: np.ndarray) -> tuple[Any, dict[str, Any]]:
    info: dict[str, Any] = {
        "name": name,
        "dtype": values.dtype.str,
        "shape": list(values.shape[1:]),
    }
    try:
        if values.ndim == 1:
            if values.dtype.kind == "O":
                return pa.array(values.tolist()), info
            if values.dtype.kind == "U":
                return pa.array(values.astype(object).tolist(), type=pa.string()), info
            return pa.array(values), info
        if values.ndim == 2 and values.dtype.kind in "biuf":
            flat = pa.array(values.reshape(-1))
            return pa.FixedSizeListArray.from_arrays(flat, values.shape[1]), info
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise InvalidParameterError(
            f"column {name!r} cannot be saved to Parquet ({exc}); make it one type "
            "(e.g. index.with_columns(name=values.astype(str)))"
        ) from None
    raise InvalidParameterError(
        f"column {name!r} has shape {values.shape} and dtype {values.dtype}; only 1-D columns "
        "and 2-D numeric columns can be saved"
    )


# -- save / load ----------------------------------------------------------------------------


def save_index(
    index: ChipTable,
    path: str | os.PathLike[str],
    extra: dict[str, Any] | None = None,
    progress: ProgressSpec = None,
) -> None:
    """Write ``index`` as GeoParquet (see the module docstring for the layout).

    Rows are written in row groups of :data:`ROW_GROUP` chips, each prepared (footprints,
    hrefs) just before it is written.

    Args:
        index: the chip table.
        path: the file to write.
        extra: entries (JSON values, such as the index's labels) to join the ``geochips``
            metadata; :func:`load_index` hands them back.
        progress: ``"saving index"`` counted in rows as their row group is written;
            ``None`` shows it when stderr is a terminal and there are at least
            :data:`AUTO_MIN_ROWS` rows, ``True``/``False`` always/never, or a callable
            ``(done, total)`` (see :mod:`geochips.progress`).

    Raises:
        InvalidParameterError: if a column cannot be stored or clashes with a derived one.
        ImportError: without pyarrow (``pip install geochips[parquet]``).
    """
    pa, pq = _pyarrow()
    clash = [c for c in index.column_names if c in DERIVED]
    if clash:
        raise InvalidParameterError(
            f"column(s) {clash} clash with columns written from the scenes; rename them "
            "before saving"
        )
    # Whole columns go to Arrow first, so every row group gets one type per column.
    own = {name: _to_arrow(pa, name, np.asarray(index.column(name))) for name in index.column_names}
    counter = start_progress(
        progress, len(index), label="saving index", unit="row", auto_min=AUTO_MIN_ROWS
    )
    rows = _Rows(index, own, index.chip_ids)
    groups = [slice(start, start + ROW_GROUP) for start in range(0, max(len(index), 1), ROW_GROUP)]
    # Footprints first: the file's metadata (written first) holds their extent and types.
    # A row counts half once its footprint is known, half once written.
    for group in groups:
        counter.add(rows.place(group) // 2)
    infos = [own[n][1] for n in WINDOW] + [info for n, (_, info) in own.items() if n not in WINDOW]
    metadata = _file_metadata(index, rows, infos, extra)
    # Written under a temporary name and renamed at the end: a save that fails part-way
    # leaves no file that looks like a whole index (and an older index there is kept).
    final = os.fspath(path)
    partial = f"{final}.partial-{os.getpid()}"
    writer = None
    try:
        for group in groups:
            table = rows.table(pa, group).replace_schema_metadata(metadata)
            writer = writer or pq.ParquetWriter(partial, table.schema)
            writer.write_table(table)
            counter.add(table.num_rows - table.num_rows // 2)
        writer.close()  # type: ignore[union-attr]
        writer = None
        os.replace(partial, final)
    finally:
        if writer is not None:
            writer.close()
        if os.path.exists(partial):
            os.remove(partial)


class _Rows:
    """Builds the row groups of a saved index, and the extent and geometry types of all."""

    def __init__(self, index: ChipTable, own: dict[str, tuple[Any, Any]], ids: list[str]) -> None:
        self.index, self.own, self.ids = index, own, ids
        self.scene_col = np.asarray(index.column("scene"))
        self.safe = [list(_safe_href(h) for h in s.hrefs) for s in index.scenes]
        self.geoms = np.full(len(index), None, dtype=object)
        self.low = np.full(2, np.inf)
        self.high = np.full(2, -np.inf)
        self.types: set[str] = set()

    def place(self, rows: slice) -> int:
        """Compute the footprints of ``rows`` in longitude/latitude; return how many."""
        part = {k: np.asarray(self.index.column(k))[rows] for k in WINDOW}
        geoms = self.geoms[rows] = footprints(self.index.scenes, part, LONLAT)
        present = ~shapely.is_missing(geoms)
        if present.any():
            bounds = shapely.bounds(geoms[present])
            self.low = np.fmin(self.low, bounds[:, :2].min(0))
            self.high = np.fmax(self.high, bounds[:, 2:].max(0))
            self.types |= {g.geom_type for g in geoms[present]}
        return len(geoms)

    def table(self, pa: Any, rows: slice) -> Any:
        """Return the Arrow table of ``rows`` (derived columns included), once placed."""
        scenes = self.index.scenes
        geoms = self.geoms[rows]
        present = ~shapely.is_missing(geoms)
        bounds = np.full((len(geoms), 4), np.nan)
        wkb = np.full(len(geoms), None, dtype=object)
        if present.any():
            bounds[present] = shapely.bounds(geoms[present])
            wkb[present] = shapely.to_wkb(geoms[present], output_dimension=2)
        at = self.scene_col[rows].tolist()
        own = {name: array.slice(rows.start, len(at)) for name, (array, _) in self.own.items()}
        arrays: dict[str, Any] = {
            "chip_id": pa.array(self.ids[rows], type=pa.string()),
            "scene_id": pa.array([scenes[s].id for s in at], type=pa.string()),
            **{name: own[name] for name in WINDOW},
            "hrefs": pa.array([self.safe[s] for s in at], pa.list_(pa.string())),
            "assets": pa.array([list(scenes[s].assets) for s in at], pa.list_(pa.string())),
            "overview_level": pa.array([scenes[s].overview_level for s in at], pa.int32()),
            "crs": pa.array([scenes[s].crs for s in at], pa.string()),
            **{name: array for name, array in own.items() if name not in WINDOW},
            "geometry": pa.array(wkb.tolist(), pa.binary()),
        }
        keys = ("xmin", "ymin", "xmax", "ymax")
        arrays["bbox"] = pa.array(
            [
                dict(zip(keys, b, strict=True)) if ok else None
                for ok, b in zip(present.tolist(), bounds.tolist(), strict=True)
            ],
            pa.struct([(k, pa.float64()) for k in keys]),
        )
        return pa.table(arrays)


def _file_metadata(
    index: ChipTable, rows: _Rows, infos: list[Any], extra: dict[str, Any] | None
) -> dict[str, str]:
    """The ``geo`` (GeoParquet 1.1) and ``geochips`` key-value metadata of a saved index."""
    covered = bool(np.isfinite(rows.low).all())
    column = {
        "encoding": "WKB",
        "geometry_types": sorted(rows.types),
        "crs": CRS.from_string("OGC:CRS84").to_dict(projjson=True),
        "edges": "planar",
        "covering": {"bbox": {k: ["bbox", k] for k in ("xmin", "ymin", "xmax", "ymax")}},
        **({"bbox": [float(v) for v in (*rows.low, *rows.high)]} if covered else {}),
    }
    geo = {"version": "1.1.0", "primary_column": "geometry", "columns": {"geometry": column}}
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "size": None if index.size is None else list(index.size),
        "stride": None if index.stride is None else list(index.stride),
        "edge": index.edge,
        "columns": infos,
        "scenes": [scene_to_json(s) for s in index.scenes],
        **{k: v for k, v in (extra or {}).items() if v is not None},
    }
    stats = getattr(index, "band_stats", None)
    if stats is not None:
        meta["band_stats"] = stats_to_json(stats)
    return {"geo": json.dumps(geo), "geochips": json.dumps(meta, default=str)}


class _Bad(Exception):
    """What is wrong with a file, before the message gets the file's name."""


def _field(mapping: dict[str, Any], key: str, where: str) -> Any:
    if key not in mapping:
        raise _Bad(f"{where} has no {key!r}")
    return mapping[key]


def _grid_pair(value: Any, name: str) -> tuple[int, int] | None:
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(
            isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_PIXELS for v in value
        )
    ):
        raise _Bad(f"{name!r} must be null or 2 ints in 1..{MAX_PIXELS}, got {show(value)}")
    return value[0], value[1]


def _column_dtype(info: Any, position: int) -> tuple[str, np.dtype[Any], int | None]:
    """Check one entry of the metadata's column list: ``(name, dtype, row length or None)``."""
    if not isinstance(info, dict):
        raise _Bad(f"columns[{position}] must be an object, got {show(info)}")
    name = _field(info, "name", f"columns[{position}]")
    text = _field(info, "dtype", f"columns[{position}]")
    if not isinstance(name, str) or not name:
        raise _Bad(f"columns[{position}].name must be a non-empty string, got {show(name)}")
    if name in DERIVED:
        raise _Bad(f"column {name!r} is written from the scenes; it cannot be a stored column")
    try:
        dtype = np.dtype(text) if isinstance(text, str) else None
    except (TypeError, ValueError, SyntaxError):
        dtype = None
    kinds = "biuf" if name not in WINDOW else "iu"
    if dtype is None or dtype.kind not in kinds + "UOMm" or dtype.fields or dtype.subdtype:
        raise _Bad(
            f"column {name!r}: dtype must be a NumPy dtype of kind {kinds}, U, O, M or m, "
            f"got {show(text)}"
        )
    if name in WINDOW and dtype.kind not in "iu":
        raise _Bad(f"column {name!r}: dtype must be an integer dtype, got {show(text)}")
    if dtype.kind == "U" and dtype.itemsize > 4 * 65536:
        raise _Bad(f"column {name!r}: dtype {text!r} is wider than 65536 characters")
    shape = info.get("shape", [])
    if shape == []:
        return name, dtype, None
    if (
        name in WINDOW
        or dtype.kind not in "biuf"
        or not isinstance(shape, list)
        or len(shape) != 1
        or not isinstance(shape[0], int)
        or isinstance(shape[0], bool)
        or not 1 <= shape[0] <= 65536
    ):
        raise _Bad(
            f"column {name!r}: shape must be [] or [k] (k in 1..65536) for a numeric column, "
            f"got {show(shape)}"
        )
    return name, dtype, shape[0]


def _from_arrow(pa: Any, column: Any, name: str, dtype: np.dtype[Any], k: int | None) -> np.ndarray:
    """Convert one Arrow column to NumPy, refusing types that would convert lossily."""
    typ = column.type

    def wrong(expected: str) -> _Bad:
        return _Bad(f"column {name!r}: expected Arrow type {expected} for dtype {dtype}, got {typ}")

    if k is not None:
        value_type = pa.from_numpy_dtype(dtype)
        if (
            not pa.types.is_fixed_size_list(typ)
            or typ.list_size != k
            or typ.value_type != value_type
        ):
            raise wrong(f"fixed_size_list<{value_type}>[{k}]")
        flat = column.combine_chunks().flatten()
        if column.null_count or flat.null_count or len(flat) != len(column) * k:
            raise _Bad(f"column {name!r} has null values")
        values: np.ndarray = flat.to_numpy(zero_copy_only=False).reshape(-1, k)
        return values.astype(dtype, copy=False)
    kind = dtype.kind
    if kind in "biuf":
        expected = pa.from_numpy_dtype(dtype)
        if typ != expected:
            raise wrong(str(expected))
        if column.null_count:
            raise _Bad(f"column {name!r} has {column.null_count} null value(s)")
        return np.asarray(column.to_numpy(zero_copy_only=False)).astype(dtype, copy=False)
    if kind == "U":
        if not (pa.types.is_string(typ) or pa.types.is_large_string(typ)):
            raise wrong("string")
        if column.null_count:
            raise _Bad(f"column {name!r} has {column.null_count} null value(s)")
        import pyarrow.compute as pc

        longest = pc.max(pc.utf8_length(column)).as_py() or 0
        if longest > dtype.itemsize // 4:
            raise _Bad(
                f"column {name!r} holds strings of {longest} characters; its dtype is {dtype}"
            )
        return np.asarray(column.to_numpy(zero_copy_only=False)).astype(dtype)
    if kind in "Mm":
        ok = pa.types.is_temporal(typ) if kind == "M" else pa.types.is_duration(typ)
        if not ok:
            raise wrong("timestamp" if kind == "M" else "duration")
        return np.asarray(column.to_numpy(zero_copy_only=False)).astype(dtype)
    values = column.to_numpy(zero_copy_only=False)
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def _check_windows(
    columns: dict[str, np.ndarray],
    scenes: list[Scene],
    size: tuple[int, int] | None,
    edge: str | None,
) -> None:
    """Check every window against its scene, vectorised (see :func:`load_index`)."""
    scene = columns["scene"].astype(np.int64)
    outside = (scene < 0) | (scene >= len(scenes))
    if outside.any():
        row = int(np.argmax(outside))
        raise _Bad(
            f"column 'scene': row {row} refers to scene {int(scene[row])} but the file has "
            f"{len(scenes)} scene(s) ({int(outside.sum())} such row(s))"
        )
    if not len(scene):
        return
    r, c, h, w = (columns[k].astype(np.int64) for k in WINDOW[1:])
    heights = np.array([s.height for s in scenes], dtype=np.int64)[scene]
    widths = np.array([s.width for s in scenes], dtype=np.int64)[scene]
    ok = (h >= 1) & (w >= 1) & (np.abs(r) <= MAX_PIXELS) & (np.abs(c) <= MAX_PIXELS)
    if edge in ("drop", "shift"):
        rule = f"edge={edge!r} windows must lie inside their scene"
        ok &= (r >= 0) & (c >= 0) & (r + h <= heights) & (c + w <= widths)
    else:
        rule = (
            f"edge={edge!r} windows must overlap their scene and be no larger than the scene "
            "or the chip size"
        )
        size_h, size_w = size if size is not None else (0, 0)
        ok &= (r < heights) & (c < widths) & (r + h > 0) & (c + w > 0)
        ok &= (h <= np.maximum(heights, size_h)) & (w <= np.maximum(widths, size_w))
    if not ok.all():
        row = int(np.argmin(ok))
        s = scenes[int(scene[row])]
        raise _Bad(
            f"row {row}: window (row_off={r[row]}, col_off={c[row]}, height={h[row]}, "
            f"width={w[row]}) of scene {int(scene[row])} ({s.id!r}, {s.height}x{s.width}) is "
            f"out of bounds: {rule} and be at least 1x1 ({int((~ok).sum())} such row(s))"
        )


def _band_stats(raw: Any, scenes: list[Scene]) -> Any:
    try:
        stats = stats_from_json(raw)
    except ValueError as exc:
        raise _Bad(f"'band_stats' {exc}") from None
    fewest = min((s.count for s in scenes), default=0)
    if max(stats.bands) > fewest:
        raise _Bad(
            f"'band_stats' has statistics of band {max(stats.bands)} but a scene of the file "
            f"has {fewest} band(s)"
        )
    return stats


def _decode(pa: Any, table: Any, meta: Any, make: Callable[..., T]) -> T:
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else meta
        raise _Bad(
            f"the 'geochips' metadata must be an object with format {FORMAT!r}, got {show(got)}"
        )
    if meta.get("version") != VERSION:
        raise _Bad(f"'version' must be {VERSION}, got {show(meta.get('version'))}")
    raw_scenes = _field(meta, "scenes", "the metadata")
    if not isinstance(raw_scenes, list):
        raise _Bad(f"'scenes' must be a list, got {show(raw_scenes)}")
    scenes = []
    for position, raw in enumerate(raw_scenes):
        try:
            scenes.append(scene_from_json(raw))
        except ValueError as exc:
            sid = raw.get("id") if isinstance(raw, dict) else None
            named = f" ({show(sid)})" if isinstance(sid, str) else ""
            raise _Bad(f"scene {position}{named}: {exc}") from None
    size = _grid_pair(_field(meta, "size", "the metadata"), "size")
    stride = _grid_pair(_field(meta, "stride", "the metadata"), "stride")
    edge = _field(meta, "edge", "the metadata")
    if edge is not None and edge not in EDGES:
        raise _Bad(f"'edge' must be null or one of {', '.join(EDGES)}, got {show(edge)}")
    infos = _field(meta, "columns", "the metadata")
    if not isinstance(infos, list):
        raise _Bad(f"'columns' must be a list, got {show(infos)}")
    specs = [_column_dtype(info, position) for position, info in enumerate(infos)]
    names = [name for name, _, _ in specs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    missing = [n for n in WINDOW if n not in names]
    if repeated or missing:
        raise _Bad(f"'columns' repeats {repeated} and lacks {missing}")
    columns: dict[str, np.ndarray] = {}
    for name, dtype, k in specs:
        found = table.schema.get_all_field_indices(name)
        if len(found) != 1:
            raise _Bad(f"column {name!r} is listed in the metadata but the table has {len(found)}")
        columns[name] = _from_arrow(pa, table.column(found[0]), name, dtype, k)
    _check_windows(columns, scenes, size, edge)
    extra = {}
    if meta.get("band_stats") is not None:  # indexes saved before band statistics lack it
        extra["band_stats"] = _band_stats(meta["band_stats"], scenes)
    index = make(scenes, columns, size=size, stride=stride, edge=edge, **extra)
    found = table.schema.get_all_field_indices("chip_id")
    if len(found) != 1 or not pa.types.is_string(table.schema.field(found[0]).type):
        raise _Bad("the table must have one 'chip_id' column of strings")
    stored = table.column(found[0]).to_pylist()
    if stored != index.chip_ids:
        bad = next(
            (i for i, (a, b) in enumerate(zip(stored, index.chip_ids, strict=False)) if a != b),
            min(len(stored), len(index)),
        )
        raise _Bad(
            f"it is inconsistent: row {bad} has chip_id "
            f"{show(stored[bad] if bad < len(stored) else None)} but its scene and window give "
            f"{show(index.chip_ids[bad] if bad < len(index) else None)}; the file was edited"
        )
    return index


def load_index(
    path: str | os.PathLike[str],
    make: Callable[..., T],
    *,
    sign: SignSpec = "auto",
    extra: dict[str, Any] | None = None,
) -> T:
    """Read an index written by :func:`save_index`, checking every value in it.

    ``extra``, when given, receives the metadata entries ``save_index`` was given (such as
    ``labels``), as JSON values for their owners to check; the file is read once.

    ``make(scenes, columns, size=, stride=, edge=)`` builds the table (``ChipIndex``), with
    ``band_stats=`` too when the file has them.

    ``sign`` attaches a signer, as in :meth:`ChipIndex.build <geochips.ChipIndex.build>`:
    by default (``"auto"``) hrefs on Planetary Computer storage are signed when read.

    Nothing in the file is trusted. Every scene header is checked field by field (see
    :func:`geochips.scene_json.scene_from_json`), every column's Arrow type against its
    stored dtype (no nulls, no lossy casts), and every window, vectorised: at least 1x1,
    in a scene of the file, inside it for ``edge="drop"``/``"shift"``, and for ``"pad"``
    (or no edge policy) overlapping it and no larger than the scene or the chip size.
    Finally the stored chip ids must equal the ones rebuilt from scenes and windows.

    Raises:
        IndexFileError: for any file that is missing, unreadable, not Parquet, not a
            geochips index, of an unknown version or damaged; the message names the file,
            the field (and the scene, for a scene field) and what was expected. No other
            exception escapes for a damaged file.
        ImportError: without pyarrow (``pip install geochips[parquet]``).
    """
    pa, pq = _pyarrow()
    where = os.fspath(path)
    try:
        table = pq.read_table(where)
        table.validate(full=True)  # e.g. strings that are not UTF-8, from flipped bytes
    except Exception as exc:  # noqa: BLE001 - any failure to parse untrusted bytes
        reason = "it does not exist" if isinstance(exc, FileNotFoundError) else str(exc)
        raise IndexFileError(
            f"cannot read {where!r} as Parquet: {reason}. Give the path of a file written by "
            "ChipIndex.save"
        ) from None
    raw = (table.schema.metadata or {}).get(b"geochips")
    if raw is None:
        raise IndexFileError(
            f"{where!r} is Parquet but not a geochips index: its metadata has no 'geochips' "
            "key. Write indexes with ChipIndex.save"
        )
    try:
        meta = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: deeply nested JSON
        raise IndexFileError(
            f"{where!r} is not a valid geochips index: its 'geochips' metadata is not JSON "
            f"({type(exc).__name__}: {show(str(exc))}). Rebuild it and save it again with "
            "ChipIndex.save"
        ) from None
    if isinstance(meta, dict) and "version" in meta and meta["version"] != VERSION:
        raise IndexFileError(
            f"{where!r} is a geochips index of version {show(meta['version'])}; this geochips "
            f"reads version {VERSION}. Upgrade geochips or rebuild the index"
        )
    try:
        index = _decode(pa, table, meta, make)
        if extra is not None:
            extra.update(meta)
    except _Bad as exc:
        raise IndexFileError(
            f"{where!r} is not a valid geochips index: {exc}. Rebuild it and save it again "
            "with ChipIndex.save"
        ) from None
    except Exception as exc:  # noqa: BLE001 - a check is missing; the file is still bad
        raise IndexFileError(
            f"{where!r} is not a valid geochips index: unexpected {type(exc).__name__} while "
            f"decoding it ({show(str(exc))}). Rebuild it and save it again with ChipIndex.save"
        ) from exc
    # As ChipIndex.build does: "auto" signs Planetary Computer hrefs, and nothing else.
    index.signer = resolve_signer(sign, (h for scene in index.scenes for h in scene.hrefs))
    return index
