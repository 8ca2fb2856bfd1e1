"""Selecting chips before reading them, by area of interest.

**Usage**::

    index = geochips.filter_aoi(index, "fields.geojson")                   # EPSG:4326 unless
    index = geochips.filter_aoi(index, polygon, crs="EPSG:32618", predicate="within")

An area of interest (AOI) is a shapely geometry or any vector source
:mod:`geochips.io.vectors` reads (a file in any format OGR reads, a GeoJSON mapping, a
GeoDataFrame), the union of its geometries, in ``crs`` (default: the source's own; a shapely
geometry and GeoJSON without a legacy ``"crs"`` member are EPSG:4326, longitude first).
It is brought to each scene rather than the other way round: clipped to the scene's
neighbourhood in longitude/latitude (so an AOI far away never meets a projection's wild
zone), densified, then transformed to the scene's CRS, or to its pixel grid through GDAL's
GCP transformer for scenes georeferenced only by GCPs. Longitudes are handled on both sides
of the antimeridian.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import numpy as np
import shapely
import shapely.affinity
import shapely.geometry

from geochips.coordinates import (
    LONLAT,
    has_ground,
    pixel_to_scene_crs,
    reproject_points,
    same_crs,
    scene_crs_to_pixel,
    unwrap_longitudes,
    window_rings,
)
from geochips.errors import InvalidParameterError
from geochips.footprints import footprints
from geochips.io.vectors import read_vectors
from geochips.scene import Scene
from geochips.windows import rows_by_scene

if TYPE_CHECKING:
    from geochips.index import ChipIndex

Predicate = Literal["intersects", "within"]
AoiLike: TypeAlias = "shapely.Geometry | Mapping[str, Any] | str | os.PathLike[str] | Any"


# -- areas of interest ----------------------------------------------------------------------


def read_aoi(aoi: AoiLike, crs: str | None = None) -> tuple[shapely.Geometry, str]:
    """Return ``(geometry, crs)`` of an AOI: the union of the geometries of a vector source.

    Raises:
        InvalidParameterError: if the AOI cannot be read, or holds no geometry.
    """
    if isinstance(aoi, shapely.Geometry):
        geometry, found = aoi, crs or LONLAT
    else:
        vectors = read_vectors(aoi, crs=crs)
        if not len(vectors):
            raise InvalidParameterError(f"the AOI {vectors.where} holds no geometry")
        geometry = shapely.union_all(shapely.make_valid(vectors.geometries))
        assert vectors.crs is not None
        found = vectors.crs
    if geometry.is_empty:
        raise InvalidParameterError("the AOI is empty")
    if not geometry.is_valid:
        geometry = shapely.make_valid(geometry)
    return geometry, found


def _densify(geometry: shapely.Geometry, parts: int = 64) -> shapely.Geometry:
    x0, y0, x1, y1 = geometry.bounds
    step = max(x1 - x0, y1 - y0) / parts
    return shapely.segmentize(geometry, step) if step > 0 else geometry


def _transform(geometry: shapely.Geometry, fn: Any) -> shapely.Geometry:
    def apply(coords: np.ndarray) -> np.ndarray:
        xs, ys = fn(coords[:, 0], coords[:, 1])
        return np.stack([xs, ys], axis=1)

    return shapely.transform(geometry, apply)


def _aoi_lonlat_world(geometry: shapely.Geometry, crs: str) -> shapely.Geometry:
    """The AOI in lon/lat, repeated at -360, 0 and +360 degrees (scene regions unwrap)."""
    if not same_crs(crs, LONLAT):
        geometry = _transform(_densify(geometry), lambda x, y: reproject_points(crs, LONLAT, x, y))
    copies = [shapely.affinity.translate(geometry, dx) for dx in (-360.0, 0.0, 360.0)]
    return shapely.union_all(copies)


def _scene_region(scene: Scene, columns: dict[str, np.ndarray]) -> shapely.Geometry:
    """The scene's chips' extent in unwrapped lon/lat, grown by a tenth of its size."""
    r0 = int(columns["row_off"].min())
    c0 = int(columns["col_off"].min())
    r1 = int((columns["row_off"] + columns["height"]).max())
    c1 = int((columns["col_off"] + columns["width"]).max())
    cols, rows = window_rings(
        np.array([r0]), np.array([c0]), np.array([r1 - r0]), np.array([c1 - c0]), 16
    )
    xs, ys = pixel_to_scene_crs(scene, cols, rows)
    assert scene.crs is not None
    lons, lats = reproject_points(scene.crs, LONLAT, xs, ys)
    lons = unwrap_longitudes(lons)
    ring = shapely.Polygon(np.stack([lons[0], lats[0]], axis=1))
    x0, y0, x1, y1 = ring.bounds
    return ring.buffer(0.1 * max(x1 - x0, y1 - y0), join_style="mitre")


def aoi_in_scene(
    geometry: shapely.Geometry,
    crs: str,
    scene: Scene,
    columns: dict[str, np.ndarray],
    *,
    frame: str = "scene",
    world: shapely.Geometry | None = None,
) -> shapely.Geometry:
    """The AOI where it meets ``scene``'s chips (``columns``), in the scene's CRS or pixels.

    As :func:`filter_aoi` places it: straight when the scene has a transform in the AOI's
    CRS; otherwise through longitude/latitude, clipped to the chips' region (so an AOI
    across the antimeridian meets a scene on either side), densified, then reprojected.

    Args:
        geometry: the AOI, in ``crs``.
        crs: the AOI's CRS.
        scene: a scene with a CRS or GCPs.
        columns: window columns of the scene's chips (their extent bounds the clipping).
        frame: ``"scene"`` (the scene's CRS; not for GCP scenes) or ``"pixel"``.
        world: :func:`_aoi_lonlat_world` of the AOI, when already made for other scenes.

    Returns:
        The AOI's part near the scene (empty where it does not meet it), valid.
    """
    assert scene.crs is not None
    if scene.georef == "transform" and same_crs(scene.crs, crs):
        local = geometry
    else:
        world = world if world is not None else _aoi_lonlat_world(geometry, crs)
        clipped = shapely.intersection(world, _scene_region(scene, columns))
        if clipped.is_empty:
            return clipped
        local = shapely.make_valid(
            _transform(
                _densify(clipped), lambda x, y, c=scene.crs: reproject_points(LONLAT, c, x, y)
            )
        )
    if frame == "pixel":
        return shapely.make_valid(
            _transform(local, lambda x, y, sc=scene: scene_crs_to_pixel(sc, x, y))
        )
    return local


def aoi_mask(
    index: ChipIndex,
    aoi: AoiLike,
    *,
    crs: str | None = None,
    predicate: Predicate = "intersects",
) -> np.ndarray:
    """Return a boolean mask of the chips that intersect (or lie within) the AOI.

    See :func:`filter_aoi` for the arguments.
    """
    if predicate not in ("intersects", "within"):
        raise InvalidParameterError(
            f"predicate must be 'intersects' or 'within', got predicate={predicate!r}"
        )
    geometry, aoi_crs = read_aoi(aoi, crs)
    scene_col = np.asarray(index.column("scene"))
    keep = np.zeros(len(index), dtype=bool)
    used = np.unique(scene_col)
    blind = [index.scenes[s] for s in used if not has_ground(index.scenes[s])]
    if blind:
        raise InvalidParameterError(
            f"{len(blind)} scene(s) have no CRS (nor GCPs), so an AOI cannot be placed "
            f"on them: {', '.join(s.name for s in blind[:5])}. Select the georeferenced "
            "scenes first (index.column('scene'))"
        )
    world: shapely.Geometry | None = None
    for s, rows in rows_by_scene(scene_col):
        scene = index.scenes[s]
        columns = {
            k: np.asarray(index.column(k))[rows]
            for k in ("scene", "row_off", "col_off", "height", "width")
        }
        if world is None and not (scene.georef == "transform" and same_crs(scene.crs, aoi_crs)):
            world = _aoi_lonlat_world(geometry, aoi_crs)
        frame = "pixel" if scene.georef == "gcps" else "scene"
        local = aoi_in_scene(geometry, aoi_crs, scene, columns, frame=frame, world=world)
        if local.is_empty:
            continue
        chips = footprints(index.scenes, columns, frame)
        shapely.prepare(local)
        if predicate == "intersects":
            hit = shapely.intersects(local, chips)
        else:
            hit = shapely.covers(local, chips)
        keep[rows] = hit
    return keep


def filter_aoi(
    index: ChipIndex,
    aoi: AoiLike,
    *,
    crs: str | None = None,
    predicate: Predicate = "intersects",
) -> ChipIndex:
    """Keep the chips that intersect (or lie within) an area of interest.

    Args:
        index: the chips.
        aoi: a shapely geometry, a GeoJSON mapping (geometry, Feature, FeatureCollection:
            the union of its features) or the path of a GeoJSON file.
        crs: the AOI's CRS; default: the GeoJSON's legacy ``"crs"`` member, else
            EPSG:4326 (longitude, latitude). AOIs crossing the antimeridian may be cut
            there (RFC 7946) or use longitudes beyond 180.
        predicate: ``"intersects"`` (any contact) or ``"within"`` (the whole chip
            footprint is covered by the AOI).

    Returns:
        A new index with the chips kept, in order.

    Raises:
        InvalidParameterError: on an unreadable AOI, an unknown predicate, or scenes with
            neither CRS nor GCPs (an AOI cannot be placed on them).
    """
    return index.select(aoi_mask(index, aoi, crs=crs, predicate=predicate))
