"""Reading vector data: geometries, their attribute columns and their CRS, from any source.

A vector source is the path of a file in any format OGR reads (GeoJSON, GeoPackage,
GeoParquet, Shapefile, FlatGeobuf, ...), a GeoJSON mapping (Feature, FeatureCollection or
geometry), a GeoDataFrame, or shapely geometries. GeoJSON files and mappings are read with
``json`` and shapely; every other file format needs pyogrio (``pip install
geochips[labels]``), which reads it without geopandas.

GeoJSON's CRS is EPSG:4326 (longitude first) unless the file declares a legacy ``crs``
member; ``crs=`` overrides what a source declares. Features without a geometry are
dropped, their count kept in :attr:`Vectors.dropped`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely

from geochips.errors import InvalidParameterError

LONLAT = "EPSG:4326"
GEOJSON_SUFFIXES = (".geojson", ".json")
PARQUET_SUFFIXES = (".parquet", ".geoparquet")


@dataclass(frozen=True, eq=False)
class Vectors:
    """Geometries with their attribute columns, in one CRS."""

    geometries: np.ndarray
    """shapely geometries (object array), in file order."""
    columns: dict[str, np.ndarray]
    """Attribute columns, one value per geometry."""
    crs: str | None
    """The geometries' CRS (any string rasterio's ``CRS.from_user_input`` takes)."""
    where: str
    """What messages call the source: its path, or the kind of object it was."""
    dropped: int = field(default=0)
    """Features read without a geometry (left out)."""

    def __len__(self) -> int:
        return len(self.geometries)

    def column(self, name: str) -> np.ndarray:
        """One attribute column; a clear error names the columns there are."""
        try:
            return self.columns[name]
        except KeyError:
            raise InvalidParameterError(
                f"{self.where} has no attribute {name!r}; it has {sorted(self.columns) or 'none'}"
            ) from None


def read_vectors(source: Any, *, layer: str | int | None = None, crs: str | None = None) -> Vectors:
    """Read ``source`` (see the module docstring) into :class:`Vectors`.

    Raises:
        InvalidParameterError: the source cannot be read, names no CRS where one is needed,
            or holds something that is not a geometry.
    """
    if isinstance(source, Vectors):
        return (
            source if crs is None else Vectors(source.geometries, source.columns, crs, source.where)
        )
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if path.lower().endswith(GEOJSON_SUFFIXES) and layer is None:
            found = _from_geojson(_load_json(path), path)
        elif path.lower().endswith(PARQUET_SUFFIXES):
            found = _from_geoparquet(path)
        else:
            found = _from_ogr(path, layer)
    elif isinstance(source, Mapping):
        found = _from_geojson(source, "the GeoJSON mapping")
    elif hasattr(source, "geometry") and hasattr(source, "crs"):
        found = _from_frame(source)
    elif isinstance(source, shapely.Geometry):
        found = Vectors(np.array([source], dtype=object), {}, None, "the geometry")
    elif isinstance(source, (Sequence, np.ndarray)) and all(
        isinstance(g, shapely.Geometry) for g in source
    ):  # a list, or an array such as shapely.polygons(...) or a GeoSeries' values
        found = Vectors(np.array(list(source), dtype=object), {}, None, "the geometries")
    else:
        raise InvalidParameterError(
            "vector data must be the path of a vector file, a GeoJSON mapping, a "
            f"GeoDataFrame or shapely geometries, got {type(source).__name__}"
        )
    if crs is not None:
        return Vectors(found.geometries, found.columns, crs, found.where, found.dropped)
    if found.crs is None:
        raise InvalidParameterError(
            f"{found.where} does not say its CRS; give it, e.g. crs='EPSG:4326'"
        )
    return found


def _load_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        raise InvalidParameterError(f"cannot read {path!r} as GeoJSON: {exc}") from exc


def _from_geojson(obj: Mapping[str, Any], where: str) -> Vectors:
    kind = obj.get("type")
    if kind == "FeatureCollection":
        features = obj.get("features")
        if not isinstance(features, list):
            raise InvalidParameterError(f"{where} is a FeatureCollection without a feature list")
    elif kind == "Feature":
        features = [obj]
    else:
        features = [{"type": "Feature", "geometry": obj, "properties": {}}]
    geometries, rows, dropped = [], [], 0
    for number, feature in enumerate(features):
        geometry = feature.get("geometry") if isinstance(feature, Mapping) else None
        if geometry is None:
            dropped += 1
            continue
        try:
            geometries.append(shapely.from_geojson(json.dumps(geometry)))
        except (shapely.errors.GEOSException, TypeError, ValueError) as exc:
            raise InvalidParameterError(
                f"feature {number} of {where} has a geometry that is not GeoJSON: {exc}"
            ) from exc
        rows.append(feature.get("properties") or {})
    names = sorted({name for row in rows for name in row})
    columns = {name: _column([row.get(name) for row in rows]) for name in names}
    return Vectors(np.array(geometries, dtype=object), columns, _geojson_crs(obj), where, dropped)


def _geojson_crs(obj: Mapping[str, Any]) -> str:
    """The CRS a GeoJSON object declares with a legacy ``crs`` member, else EPSG:4326."""
    member = obj.get("crs")
    name = member.get("properties", {}).get("name") if isinstance(member, Mapping) else None
    if not isinstance(name, str) or name.endswith("CRS84"):
        return LONLAT
    if "EPSG" in name:  # "urn:ogc:def:crs:EPSG::32616" -> "EPSG:32616"
        return "EPSG:" + name.rstrip(":").split(":")[-1]
    return name


def _column(values: list[Any]) -> np.ndarray:
    array = np.asarray(values)
    return array if array.dtype.kind in "biuf" else np.asarray(values, dtype=object)


def _from_ogr(path: str, layer: str | int | None) -> Vectors:
    try:
        from pyogrio import raw
    except ImportError:
        raise InvalidParameterError(
            f"reading {path!r} needs pyogrio: pip install 'geochips[labels]' (GeoJSON files "
            "are read without it)"
        ) from None
    try:
        meta, _, wkb, fields = raw.read(path, layer=layer)
    except Exception as exc:  # pyogrio's DataSourceError, DataLayerError, ...
        raise InvalidParameterError(f"cannot read vector file {path!r}: {exc}") from exc
    geometries = shapely.from_wkb(wkb) if wkb is not None else np.array([], dtype=object)
    keep = ~shapely.is_missing(geometries)
    columns = {
        name: _column(list(np.asarray(values)[keep]))
        for name, values in zip(meta["fields"], fields, strict=True)
    }
    return Vectors(
        np.asarray(geometries[keep], dtype=object),
        columns,
        meta.get("crs"),
        repr(path),
        int((~keep).sum()),
    )


def _from_geoparquet(path: str) -> Vectors:
    """A GeoParquet file, read with pyarrow (OGR builds often lack its Parquet driver)."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InvalidParameterError(
            f"reading {path!r} needs pyarrow: pip install 'geochips[parquet]'"
        ) from None
    try:
        table = pq.read_table(path)
        geo = json.loads((table.schema.metadata or {})[b"geo"])
        column = geo["primary_column"]
        info = geo["columns"][column]
    except Exception as exc:  # noqa: BLE001 - any failure to parse the file
        raise InvalidParameterError(
            f"cannot read {path!r} as GeoParquet (a Parquet file with 'geo' metadata): {exc}"
        ) from None
    if info.get("encoding", "WKB") != "WKB":
        raise InvalidParameterError(
            f"{path!r} stores geometries as {info['encoding']!r}; geochips reads WKB GeoParquet"
        )
    geometries = shapely.from_wkb(table.column(column).to_numpy(zero_copy_only=False))
    keep = ~shapely.is_missing(geometries)
    crs = info.get("crs", LONLAT)  # GeoParquet: no crs member means OGC:CRS84
    crs = LONLAT if crs is None else crs if isinstance(crs, str) else json.dumps(crs)
    columns = {
        name: _column(list(table.column(name).to_numpy(zero_copy_only=False)[keep]))
        for name in table.column_names
        if name not in (column, "bbox")
    }
    return Vectors(np.asarray(geometries[keep], dtype=object), columns, crs, repr(path),
                   int((~keep).sum()))  # fmt: skip


def _from_frame(frame: Any) -> Vectors:
    geometries = np.asarray(frame.geometry, dtype=object)
    keep = ~shapely.is_missing(geometries)
    crs = frame.crs.to_string() if frame.crs is not None else None
    name = frame.geometry.name
    columns = {str(c): _column(list(frame[c].to_numpy()[keep])) for c in frame.columns if c != name}
    return Vectors(geometries[keep], columns, crs, "the GeoDataFrame", int((~keep).sum()))
