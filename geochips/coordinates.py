"""Coordinates of the read grid: pixels to scene CRS and back, between CRSs, across 180.

Shared by the footprints, the chips at the poles and the AOI filter. Pixel coordinates are
``(cols, rows)`` of the grid read (the level indexed); scenes georeferenced only by GCPs go
through GDAL's GCP transformer, others through their affine transform; points go between
CRSs through GDAL (rasterio).
"""

from __future__ import annotations

import functools

import numpy as np
import rasterio.crs
import shapely
from rasterio.control import GroundControlPoint
from rasterio.transform import GCPTransformer
from rasterio.warp import transform as warp_transform

from geochips.errors import InvalidParameterError
from geochips.scene import Scene

LONLAT = "EPSG:4326"

# Avoid building the same (slow to create) transformer for every call on one scene.
_GCP_TRANSFORMERS: dict[tuple[tuple[float, float, float, float], ...], GCPTransformer] = {}


def gcp_transformer(scene: Scene) -> GCPTransformer:
    """Return GDAL's GCP transformer (pixel <-> GCP CRS) for a GCP-only scene."""
    key = scene.gcps
    transformer = _GCP_TRANSFORMERS.get(key)
    if transformer is None:
        if len(_GCP_TRANSFORMERS) > 64:
            _GCP_TRANSFORMERS.clear()
        points = [GroundControlPoint(row=r, col=c, x=x, y=y) for r, c, x, y in scene.gcps]
        transformer = GCPTransformer(points)
        _GCP_TRANSFORMERS[key] = transformer
    return transformer


def has_ground(scene: Scene) -> bool:
    """Whether the scene's chips can be placed on the Earth (a CRS, or GCPs with theirs).

    A geotransform without a CRS places chips relative to each other only: such scenes,
    like scenes with neither, are compared in pixel space.
    """
    return scene.georef != "none" and scene.crs is not None


def window_rings(
    row_off: np.ndarray,
    col_off: np.ndarray,
    height: np.ndarray,
    width: np.ndarray,
    points_per_side: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(cols, rows)`` of each window's outline, shape ``(n, 4 * points_per_side)``.

    The outline runs clockwise in pixel space from the top-left corner; the closing point
    is left to :func:`shapely.polygons`.
    """
    k = points_per_side
    t = np.arange(k, dtype=np.float64) / k
    r0 = np.asarray(row_off, dtype=np.float64)[:, None]
    c0 = np.asarray(col_off, dtype=np.float64)[:, None]
    h = np.asarray(height, dtype=np.float64)[:, None]
    w = np.asarray(width, dtype=np.float64)[:, None]
    zeros, ones = np.zeros((1, k)), np.ones((1, k))
    # top (left to right), right (down), bottom (right to left), left (up)
    col_frac = np.concatenate([t[None], ones, 1 - t[None], zeros], axis=1)
    row_frac = np.concatenate([zeros, t[None], ones, 1 - t[None]], axis=1)
    return c0 + w * col_frac, r0 + h * row_frac


def pixel_to_scene_crs(scene: Scene, cols: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, ...]:
    """Map pixel coordinates of the read grid to the scene's CRS (GCP CRS for GCP scenes)."""
    if scene.georef == "gcps":
        shape = cols.shape
        xs, ys = gcp_transformer(scene).xy(rows.ravel(), cols.ravel(), offset="ul")
        return np.asarray(xs, dtype=np.float64).reshape(shape), np.asarray(
            ys, dtype=np.float64
        ).reshape(shape)
    if scene.transform is None:
        raise InvalidParameterError(f"scene {scene.name} has neither a CRS nor GCPs")
    a, b, c, d, e, f = tuple(scene.transform)[:6]
    return a * cols + b * rows + c, d * cols + e * rows + f


def scene_crs_to_pixel(scene: Scene, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, ...]:
    """Map scene-CRS coordinates to fractional ``(cols, rows)`` of the read grid."""
    if scene.georef == "gcps":
        shape = np.shape(xs)
        rows, cols = gcp_transformer(scene).rowcol(
            np.ravel(xs), np.ravel(ys), op=lambda v: np.asarray(v, dtype=np.float64)
        )
        return np.asarray(cols, dtype=np.float64).reshape(shape), np.asarray(
            rows, dtype=np.float64
        ).reshape(shape)
    if scene.transform is None:
        raise InvalidParameterError(f"scene {scene.name} has neither a CRS nor GCPs")
    inverse = ~scene.transform
    a, b, c, d, e, f = tuple(inverse)[:6]
    xs, ys = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    return a * xs + b * ys + c, d * xs + e * ys + f


def reproject_points(
    src_crs: str, dst_crs: str, xs: np.ndarray, ys: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Reproject coordinate arrays of any shape (no-op when the CRSs are equal)."""
    if same_crs(src_crs, dst_crs):
        return xs, ys
    shape, n = xs.shape, xs.size
    # rasterio reads each point by indexing and returns lists: memoryviews index faster
    # than arrays, and fromiter builds an array faster than asarray (the values are GDAL's).
    flat = [np.ascontiguousarray(v, dtype=np.float64).ravel().data for v in (xs, ys)]
    out_x, out_y = warp_transform(src_crs, dst_crs, *flat)
    return (
        np.fromiter(out_x, dtype=np.float64, count=n).reshape(shape),
        np.fromiter(out_y, dtype=np.float64, count=n).reshape(shape),
    )


def same_crs(a: str | None, b: str | None) -> bool:
    """Return whether two CRS strings name the same CRS."""
    if a is None or b is None:
        return a is b
    return a == b or _same_crs(a, b)


@functools.lru_cache(maxsize=4096)
def _same_crs(a: str, b: str) -> bool:
    # Parsing two CRSs costs ~50 us; an index has few distinct ones, asked about per scene.
    return bool(rasterio.crs.CRS.from_user_input(a) == rasterio.crs.CRS.from_user_input(b))


def unwrap_longitudes(lons: np.ndarray) -> np.ndarray:
    """Make each row of longitudes continuous (no 360-degree jump), around its first value.

    Rows near the antimeridian get values beyond 180 (or below -180) instead of jumping.
    """
    first = lons[:, :1]
    return np.asarray((lons - first + 180.0) % 360.0 - 180.0 + first)


def cut_antimeridian(polygons: np.ndarray) -> np.ndarray:
    """Cut lon/lat polygons that reach beyond [-180, 180] into parts inside it.

    Polygons with unwrapped longitudes (from :func:`unwrap_longitudes`) are intersected
    with the three world copies and shifted back, giving a ``MultiPolygon`` per crossing.
    """
    out = np.array(polygons, dtype=object)
    valid = ~shapely.is_missing(out)
    bounds = np.full((len(out), 4), np.nan)
    if valid.any():
        bounds[valid] = shapely.bounds(out[valid])
    crossing = np.flatnonzero(valid & ((bounds[:, 0] < -180.0) | (bounds[:, 2] > 180.0)))
    if len(crossing) == 0:
        return out
    parts = []
    for shift in (-360.0, 0.0, 360.0):
        world = shapely.box(-180.0 - shift, -90.0, 180.0 - shift, 90.0)
        part = shapely.intersection(out[crossing], world)
        parts.append(shapely.transform(part, lambda c, s=shift: c + np.array([s, 0.0])))
    merged = []
    for pieces in zip(*parts, strict=True):
        polys = [
            g
            for piece in pieces
            for g in shapely.get_parts(piece)
            if isinstance(g, shapely.Polygon) and g.area > 0
        ]
        merged.append(shapely.MultiPolygon(polys) if len(polys) > 1 else polys[0])
    replaced = np.empty(len(merged), dtype=object)
    replaced[:] = merged
    out[crossing] = replaced
    return out
