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
the grid parameters, the dtype of every column and the full scene headers, so that
:func:`load_index` rebuilds an equal :class:`~geochips.ChipIndex` (columns, scenes and
chip ids). Nothing is pickled: loading parses JSON and Arrow only, and checks the stored
chip ids against the rebuilt ones. The index's signer is never saved; pass ``sign=`` when
loading.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely
from affine import Affine
from rasterio.crs import CRS

from geochips import hrefs
from geochips.errors import IndexFileError, InvalidParameterError
from geochips.footprints import LONLAT, footprints
from geochips.scenes import Scene
from geochips.signing import SignSpec, resolve_signer

if TYPE_CHECKING:
    from geochips.index import ChipIndex

FORMAT = "geochips.ChipIndex"
VERSION = 1
WINDOW = ("scene", "row_off", "col_off", "height", "width")
DERIVED = ("chip_id", "scene_id", "hrefs", "assets", "overview_level", "crs", "geometry", "bbox")
"""Columns written from the scenes and windows, never from the index's own columns."""


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


# -- scenes <-> JSON ------------------------------------------------------------------------


def _safe_href(href: str) -> str:
    """Drop the query of an href that carries a token (a signed URL must never be saved)."""
    return hrefs.redact(href) if hrefs.redact_text(href) != href else href


def scene_to_json(scene: Scene) -> dict[str, Any]:
    """Return a scene header as plain JSON values (hrefs unsigned)."""
    return {
        "id": scene.id,
        "hrefs": [_safe_href(h) for h in scene.hrefs],
        "assets": list(scene.assets),
        "overview_level": scene.overview_level,
        "height": scene.height,
        "width": scene.width,
        "band_counts": list(scene.band_counts),
        "dtype": scene.dtype,
        "nodata": scene.nodata,
        "crs": scene.crs,
        "transform": None if scene.transform is None else list(scene.transform)[:6],
        "georef": scene.georef,
        "gcps": [list(g) for g in scene.gcps],
        "block_shape": list(scene.block_shape),
        "scales": list(scene.scales),
        "offsets": list(scene.offsets),
        "full_shape": list(scene.full_shape),
        "properties": scene.properties,
        "resampling": scene.resampling,
        "warped": list(scene.warped),
        "file_levels": list(scene.file_levels),
    }


def _num(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} must be a number, got {value!r}")
    return float(value)


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} must be an int, got {value!r}")
    return value


def _bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{what} must be true or false, got {value!r}")
    return value


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {value!r}")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"{what} must be a list, got {value!r}")
    return value


def scene_from_json(data: Any) -> Scene:
    """Rebuild a scene header from :func:`scene_to_json` output, checking every field.

    Raises:
        ValueError: naming the field that is missing or of the wrong type.
    """
    if not isinstance(data, dict):
        raise ValueError(f"a scene must be a JSON object, got {type(data).__name__}")
    sid = _str(data["id"], "id")
    transform = data["transform"]
    if transform is not None:
        values = [_num(v, "transform") for v in _list(transform, "transform")]
        if len(values) != 6:
            raise ValueError(f"scene {sid!r}: transform must have 6 values, got {values}")
        transform = Affine(*values)
    georef = _str(data["georef"], "georef")
    if georef not in ("transform", "gcps", "none"):
        raise ValueError(f"scene {sid!r}: unknown georef {georef!r}")
    level = data["overview_level"]
    nodata = data["nodata"]
    crs = data["crs"]
    gcps = tuple(
        tuple(_num(v, "gcp") for v in _list(g, "gcp")) for g in _list(data["gcps"], "gcps")
    )
    if any(len(g) != 4 for g in gcps):
        raise ValueError(f"scene {sid!r}: every GCP must be (row, col, x, y)")
    properties = data.get("properties", {})
    if not isinstance(properties, dict):
        raise ValueError(f"scene {sid!r}: properties must be an object")
    resampling = data.get("resampling")
    file_levels = tuple(
        None if v is None else _int(v, "file_levels")
        for v in _list(data.get("file_levels", []), "file_levels")
    )
    return Scene(
        id=sid,
        hrefs=tuple(_str(h, "href") for h in _list(data["hrefs"], "hrefs")),
        assets=tuple(_str(a, "asset") for a in _list(data["assets"], "assets")),
        overview_level=None if level is None else _int(level, "overview_level"),
        height=_int(data["height"], "height"),
        width=_int(data["width"], "width"),
        band_counts=tuple(_int(b, "band_counts") for b in _list(data["band_counts"], "bands")),
        dtype=_str(data["dtype"], "dtype"),
        nodata=None if nodata is None else _num(nodata, "nodata"),
        crs=None if crs is None else _str(crs, "crs"),
        transform=transform,
        georef=georef,  # type: ignore[arg-type]
        gcps=gcps,  # type: ignore[arg-type]
        block_shape=tuple(_int(b, "block_shape") for b in _list(data["block_shape"], "block")),  # type: ignore[arg-type]
        scales=tuple(_num(v, "scales") for v in _list(data["scales"], "scales")),
        offsets=tuple(_num(v, "offsets") for v in _list(data["offsets"], "offsets")),
        full_shape=tuple(_int(v, "full_shape") for v in _list(data["full_shape"], "full")),  # type: ignore[arg-type]
        properties=properties,
        resampling=None if resampling is None else _str(resampling, "resampling"),
        warped=tuple(_bool(v, "warped") for v in _list(data.get("warped", []), "warped")),
        file_levels=file_levels,
    )


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


def _from_arrow(column: Any, info: dict[str, Any]) -> np.ndarray:
    dtype = np.dtype(info["dtype"])
    shape = info.get("shape") or []
    if shape:
        flat = column.combine_chunks().flatten().to_numpy(zero_copy_only=False)
        return np.asarray(flat, dtype=dtype).reshape((-1, *shape))
    values = column.to_numpy(zero_copy_only=False)
    if dtype.kind == "O":
        out = np.empty(len(values), dtype=object)
        out[:] = list(values)
        return out
    return np.asarray(values).astype(dtype, copy=False)


# -- save / load ----------------------------------------------------------------------------


def save_index(index: ChipIndex, path: str | os.PathLike[str]) -> None:
    """Write ``index`` as GeoParquet (see the module docstring for the layout).

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
    scenes = index.scenes
    scene_col = np.asarray(index.column("scene"))
    columns = {name: np.asarray(index.column(name)) for name in index.column_names}
    geoms = footprints(scenes, columns, LONLAT)
    present = ~shapely.is_missing(geoms)
    bounds = np.full((len(index), 4), np.nan)
    if present.any():
        bounds[present] = shapely.bounds(geoms[present])
    wkb = np.full(len(index), None, dtype=object)
    if present.any():
        wkb[present] = shapely.to_wkb(geoms[present], output_dimension=2)
    safe = [tuple(_safe_href(h) for h in s.hrefs) for s in scenes]
    per_scene_crs = np.array([s.crs for s in scenes] + [None], dtype=object)[:-1]
    levels = [s.overview_level for s in scenes]

    arrays: dict[str, Any] = {
        "chip_id": pa.array(index.chip_ids, type=pa.string()),
        "scene_id": pa.array([scenes[s].id for s in scene_col.tolist()], type=pa.string()),
    }
    infos = []
    for name in WINDOW:
        array, info = _to_arrow(pa, name, columns[name])
        arrays[name] = array
        infos.append(info)
    arrays["hrefs"] = pa.array([list(safe[s]) for s in scene_col.tolist()], pa.list_(pa.string()))
    arrays["assets"] = pa.array(
        [list(scenes[s].assets) for s in scene_col.tolist()], pa.list_(pa.string())
    )
    arrays["overview_level"] = pa.array([levels[s] for s in scene_col.tolist()], pa.int32())
    arrays["crs"] = pa.array(per_scene_crs[scene_col].tolist(), pa.string())
    for name in index.column_names:
        if name not in WINDOW:
            array, info = _to_arrow(pa, name, columns[name])
            arrays[name] = array
            infos.append(info)
    arrays["geometry"] = pa.array(wkb.tolist(), pa.binary())
    bbox_type = pa.struct([(k, pa.float64()) for k in ("xmin", "ymin", "xmax", "ymax")])
    arrays["bbox"] = pa.array(
        [
            None if not ok else dict(zip(("xmin", "ymin", "xmax", "ymax"), b, strict=True))
            for ok, b in zip(present.tolist(), bounds.tolist(), strict=True)
        ],
        bbox_type,
    )
    types = sorted({g.geom_type for g in geoms[present]}) if present.any() else []
    geo = {
        "version": "1.1.0",
        "primary_column": "geometry",
        "columns": {
            "geometry": {
                "encoding": "WKB",
                "geometry_types": types,
                "crs": CRS.from_string("OGC:CRS84").to_dict(projjson=True),
                "edges": "planar",
                "covering": {"bbox": {k: ["bbox", k] for k in ("xmin", "ymin", "xmax", "ymax")}},
                **(
                    {
                        "bbox": [
                            float(v)
                            for v in (*np.nanmin(bounds[:, :2], 0), *np.nanmax(bounds[:, 2:], 0))
                        ]
                    }
                    if present.any()
                    else {}
                ),
            }
        },
    }
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "size": None if index.size is None else list(index.size),
        "stride": None if index.stride is None else list(index.stride),
        "edge": index.edge,
        "columns": infos,
        "scenes": [scene_to_json(s) for s in scenes],
    }
    table = pa.table(arrays).replace_schema_metadata(
        {
            b"geo": json.dumps(geo).encode(),
            b"geochips": json.dumps(meta, default=str).encode(),
        }
    )
    pq.write_table(table, os.fspath(path))


def load_index(path: str | os.PathLike[str], *, sign: SignSpec = "auto") -> ChipIndex:
    """Read an index written by :func:`save_index`; ``sign`` attaches a signer.

    ``sign`` is as in :meth:`ChipIndex.build <geochips.ChipIndex.build>`: by default
    (``"auto"``) hrefs on Planetary Computer storage are signed when read.

    Raises:
        IndexFileError: if the file is missing, not Parquet, not a geochips index, of an
            unknown version, or inconsistent (naming what is wrong).
        ImportError: without pyarrow (``pip install geochips[parquet]``).
    """
    from geochips.index import ChipIndex

    pa, pq = _pyarrow()
    where = os.fspath(path)
    try:
        table = pq.read_table(where)
    except (OSError, pa.ArrowException) as exc:
        raise IndexFileError(
            f"cannot read {where!r} as Parquet: {exc}. Give the path of a file written by "
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
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError(
                f"format is {meta.get('format') if isinstance(meta, dict) else meta!r}"
            )
        if meta.get("version") != VERSION:
            raise IndexFileError(
                f"{where!r} is a geochips index of version {meta.get('version')!r}; this "
                f"geochips reads version {VERSION}. Upgrade geochips or rebuild the index"
            )
        scenes = [scene_from_json(s) for s in _list(meta["scenes"], "scenes")]
        columns: dict[str, np.ndarray] = {}
        for info in _list(meta["columns"], "columns"):
            name = _str(info["name"], "column name")
            if name not in table.column_names:
                raise ValueError(f"column {name!r} is listed in the metadata but missing")
            columns[name] = _from_arrow(table.column(name), info)
        size = meta["size"]
        stride = meta["stride"]
        index = ChipIndex(
            scenes,
            columns,
            size=None if size is None else (int(size[0]), int(size[1])),
            stride=None if stride is None else (int(stride[0]), int(stride[1])),
            edge=meta["edge"],
        )
        stored = table.column("chip_id").to_pylist()
    except IndexFileError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, pa.ArrowException) as exc:
        what = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
        raise IndexFileError(
            f"{where!r} is not a valid geochips index ({what}). Rebuild it and save it again "
            "with ChipIndex.save"
        ) from None
    if stored != index.chip_ids:
        bad = (
            next(i for i, (a, b) in enumerate(zip(stored, index.chip_ids, strict=True)) if a != b)
            if len(stored) == len(index)
            else 0
        )
        raise IndexFileError(
            f"{where!r} is inconsistent: row {bad} has chip_id "
            f"{stored[bad] if stored else None!r} but its scene and window give "
            f"{index.chip_ids[bad] if len(index) else None!r}. The file was edited; rebuild "
            "the index"
        )
    # As ChipIndex.build does: "auto" signs Planetary Computer hrefs, and nothing else.
    index.signer = resolve_signer(sign, (h for scene in index.scenes for h in scene.hrefs))
    return index
