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
from collections.abc import Mapping, Sequence
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
from geochips.windows import WINDOW_COLUMNS, rows_by_scene

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
    return _scene_regions([scene], [_window_of(columns)])[0]


def _window_of(columns: dict[str, np.ndarray]) -> tuple[int, int, int, int]:
    """``(row_off, col_off, height, width)`` of the window holding every chip of ``columns``."""
    r0, c0 = int(columns["row_off"].min()), int(columns["col_off"].min())
    r1 = int((columns["row_off"] + columns["height"]).max())
    c1 = int((columns["col_off"] + columns["width"]).max())
    return r0, c0, r1 - r0, c1 - c0


def _scene_regions(
    scenes: Sequence[Scene], windows: Sequence[tuple[int, int, int, int]]
) -> np.ndarray:
    """:func:`_scene_region` of scenes that share one CRS, reprojected in one call."""
    crs = scenes[0].crs
    assert crs is not None and all(s.crs == crs for s in scenes)
    r0, c0, h, w = (np.array(v) for v in zip(*windows, strict=True))
    cols, rows = window_rings(r0, c0, h, w, 16)
    xs, ys = np.empty_like(cols), np.empty_like(rows)
    for k, scene in enumerate(scenes):
        xs[k], ys[k] = pixel_to_scene_crs(scene, cols[k], rows[k])
    lons, lats = reproject_points(crs, LONLAT, xs, ys)
    rings = shapely.polygons(np.stack([unwrap_longitudes(lons), lats], axis=-1))
    x0, y0, x1, y1 = shapely.bounds(rings).T
    return np.asarray(shapely.buffer(rings, 0.1 * np.maximum(x1 - x0, y1 - y0), join_style="mitre"))


def _aois_by_crs(
    world: shapely.Geometry, scenes: Sequence[Scene], windows: Sequence[tuple[int, int, int, int]]
) -> shapely.Geometry | None:
    """The AOI in the CRS of ``scenes`` (transform scenes of one CRS), clipped to them all.

    One reprojection for the whole group, densified as finely as for its smallest scene.
    ``None`` when the scenes spread too far in longitude or reach a pole, where each is
    placed on its own.
    """
    regions = _scene_regions(scenes, windows)
    bounds = shapely.bounds(regions)
    if bounds[:, 2].max() - bounds[:, 0].min() > 60 or np.abs(bounds[:, [1, 3]]).max() > 80:
        return None
    clipped = shapely.intersection(world, shapely.box(*bounds[:, :2].min(0), *bounds[:, 2:].max(0)))
    if clipped.is_empty:
        return clipped
    step = np.maximum(bounds[:, 2] - bounds[:, 0], bounds[:, 3] - bounds[:, 1]).min() / 64
    crs = scenes[0].crs
    assert crs is not None
    return shapely.make_valid(
        _transform(
            shapely.segmentize(clipped, step), lambda x, y: reproject_points(LONLAT, crs, x, y)
        )
    )


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


def _extent(scene: Scene, columns: dict[str, np.ndarray], frame: str) -> shapely.Geometry:
    """The footprint of the window that holds every chip of ``columns`` (one scene's)."""
    r0, c0, h, w = _window_of(columns)
    rows = np.array([r0, r0, r0 + h, r0 + h], dtype=np.float64)
    cols = np.array([c0, c0 + w, c0 + w, c0], dtype=np.float64)
    if frame == "scene":
        cols, rows = pixel_to_scene_crs(scene, cols, rows)
    return shapely.Polygon(np.stack([cols, rows], axis=1))


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
    groups = [
        (s, rows, {k: np.asarray(index.column(k))[rows] for k in WINDOW_COLUMNS})
        for s, rows in rows_by_scene(scene_col)
    ]
    # Transform scenes in another CRS than the AOI's: the AOI placed once per CRS.
    by_crs: dict[str, list[int]] = {}
    for k, (s, _, _) in enumerate(groups):
        scene = index.scenes[s]
        if not (scene.georef == "transform" and same_crs(scene.crs, aoi_crs)):
            world = world if world is not None else _aoi_lonlat_world(geometry, aoi_crs)
            if scene.georef == "transform" and scene.crs is not None:
                by_crs.setdefault(scene.crs, []).append(k)
    placed: dict[str, shapely.Geometry | None] = {}
    for crs, members in by_crs.items():
        windows = [_window_of(groups[k][2]) for k in members]
        assert world is not None
        placed[crs] = _aois_by_crs(world, [index.scenes[groups[k][0]] for k in members], windows)
        if placed[crs] is not None:
            shapely.prepare(placed[crs])
    for s, rows, columns in groups:
        scene = index.scenes[s]
        frame = "pixel" if scene.georef == "gcps" else "scene"
        local = placed.get(scene.crs) if scene.georef == "transform" and scene.crs else None
        if local is None:
            local = aoi_in_scene(geometry, aoi_crs, scene, columns, frame=frame, world=world)
            shapely.prepare(local)
        if local.is_empty:
            continue
        extent = _extent(scene, columns, frame)
        if not shapely.intersects(local, extent):
            continue  # the AOI placed for the scene's whole CRS is elsewhere
        if shapely.covers(local, extent):
            keep[rows] = True  # the AOI covers every chip of the scene (the usual case)
            continue
        chips = footprints(index.scenes, columns, frame)
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
