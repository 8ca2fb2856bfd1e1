"""Chip footprints: the ground each chip covers, as shapely polygons, vectorised.

Three frames, settled once for the whole package:

``"scene"``
    each chip in its scene's CRS: the window's four corners through the scene transform
    (exact, straight edges, rotated grids included). Scenes georeferenced only by GCPs
    (Sentinel-1 GRD) use their GCP CRS, and the window edges go through GDAL's GCP
    transformer (densified), not the fitted affine. Scenes with neither CRS nor GCPs get
    ``None``; a geotransform without a CRS gives polygons in that unknown CRS.
``"pixel"``
    each chip as the box ``(col_off, row_off, col_off + width, row_off + height)`` in the
    pixel grid of its scene (``x`` is the column, ``y`` the row). Chips of different
    scenes live in different planes: never compare them.
any CRS (``"EPSG:4326"``, ``"EPSG:6933"``, ...)
    window edges densified and reprojected. In EPSG:4326 (longitude, latitude) a chip
    that crosses the antimeridian is cut there into a ``MultiPolygon`` whose parts lie in
    [-180, 180] (RFC 7946), so it still intersects its neighbours on both sides; in other
    CRSs the chip is cut in EPSG:4326 first and each part projected, which suits global
    cylindrical frames such as EPSG:6933 (EASE-Grid 2.0, equal area, metres). Chips of
    scenes without a CRS get ``None``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import shapely
from rasterio.errors import NotGeoreferencedWarning

from geochips.coordinates import (
    LONLAT,
    cut_antimeridian,
    gcp_transformer,
    has_ground,
    pixel_to_scene_crs,
    reproject_points,
    same_crs,
    scene_crs_to_pixel,
    unwrap_longitudes,
    window_rings,
)
from geochips.errors import InvalidParameterError
from geochips.poles import POLAR_DENSIFY, near_pole, polar_footprints, pole_pixels
from geochips.scene import Scene
from geochips.windows import rows_by_scene

__all__ = [
    "DENSIFY",
    "EQUAL_AREA",
    "LONLAT",
    "STRAIGHT",
    "Footprints",
    "cut_antimeridian",
    "footprint_parts",
    "footprints",
    "gcp_transformer",
    "has_ground",
    "pixel_to_scene_crs",
    "reproject_points",
    "same_crs",
    "scene_crs_to_pixel",
    "unwrap_longitudes",
    "window_rings",
]
"""The coordinate functions stay importable from here, where they lived first."""

EQUAL_AREA = "EPSG:6933"
"""Default common frame for scenes in different CRSs: global, equal area, metres."""
DENSIFY = 8
"""Points per window side when edges are reprojected (they curve in another CRS)."""
STRAIGHT = 0.01
"""Reprojected window sides that deviate from a straight line by less than this many pixels
are kept straight (4-corner polygons)."""


class Footprints(NamedTuple):
    """Footprints, the straight 4-corner ones kept as corners (no shapely object made)."""

    corners: np.ndarray
    """``(n, 4, 2)`` float64 ``x, y`` of each quad's corners, in ring order (NaN elsewhere)."""
    quad: np.ndarray
    """``(n,)`` bool: the footprint is the polygon of its four corners."""
    other: np.ndarray
    """``(n,)`` object: the footprint where it is not a quad (``None``: unknown)."""

    def geometries(self) -> np.ndarray:
        """Every footprint as a shapely geometry (``None`` where unknown)."""
        out = self.other.copy()
        if self.quad.any():
            quads = self.corners[self.quad]
            out[self.quad] = _polygons(quads[..., 0], quads[..., 1])
        return out


def footprints(
    scenes: Sequence[Scene],
    columns: dict[str, np.ndarray],
    frame: str = "scene",
    *,
    points_per_side: int = DENSIFY,
) -> np.ndarray:
    """Return one footprint per chip (an object array of shapely geometries or ``None``).

    Args:
        scenes: the index's scenes.
        columns: at least ``scene``, ``row_off``, ``col_off``, ``height``, ``width``.
        frame: ``"scene"``, ``"pixel"`` or a CRS (see the module docstring).
        points_per_side: densification of each window side when edges are not straight
            in the target frame (reprojection, GCPs).
    """
    return footprint_parts(scenes, columns, frame, points_per_side=points_per_side).geometries()


def footprint_parts(
    scenes: Sequence[Scene],
    columns: dict[str, np.ndarray],
    frame: str = "scene",
    *,
    points_per_side: int = DENSIFY,
) -> Footprints:
    """:func:`footprints`, with the straight ones as corners (what a writer of WKB wants)."""
    scene_col = np.asarray(columns["scene"])
    n = len(scene_col)
    parts = Footprints(
        np.full((n, 4, 2), np.nan), np.zeros(n, dtype=bool), np.full(n, None, dtype=object)
    )
    for s, rows in rows_by_scene(scene_col):
        scene = scenes[s]
        r_off, c_off, hgt, wid = (
            np.asarray(columns[k])[rows] for k in ("row_off", "col_off", "height", "width")
        )
        if frame == "pixel":
            r, c, h, w = (v.astype(np.float64) for v in (r_off, c_off, hgt, wid))
            parts.other[rows] = shapely.box(c, r, c + w, r + h)
            continue
        if scene.georef == "none" or (frame != "scene" and not has_ground(scene)):
            continue
        native = frame == "scene" or same_crs(scene.crs, frame)
        window = (r_off, c_off, hgt, wid)
        dense = points_per_side
        if not native:
            # Chips holding a pole are few and need more than a cut at the antimeridian.
            poles = pole_pixels(scene)
            polar = polar_footprints(scene, window, poles)
            if polar is not None:
                at_pole, geoms = polar
                lonlat = same_crs(frame, LONLAT)
                parts.other[rows[at_pole]] = geoms if lonlat else _project(geoms, frame)
                rows, window = rows[~at_pole], tuple(v[~at_pole] for v in window)
                if not len(rows):
                    continue
            if near_pole(window, poles).any():
                # Near a pole a chip sweeps through many degrees of longitude: its edges
                # curve strongly in lon/lat and need more points than elsewhere.
                dense = max(points_per_side, POLAR_DENSIFY // 4)
        if native and scene.georef == "transform":
            _put(parts, rows, _scene_polygons(scene, frame, native, window, 1))
            continue
        # Probe with the side midpoints: most chips are straight enough for 4 corners,
        # and only the others are densified (a quarter of the points to reproject).
        probe = min(2, points_per_side)
        again = dense > probe  # curved chips are made again from more points
        found = _scene_polygons(scene, frame, native, window, probe, curved=not again)
        _put(parts, rows, found)
        curved = ~found.quad
        if curved.any() and again:
            sub = tuple(v[curved] for v in window)
            _put(parts, rows[curved], _scene_polygons(scene, frame, native, sub, dense))
    return parts


def _put(parts: Footprints, rows: np.ndarray, found: Footprints) -> None:
    parts.corners[rows] = found.corners
    parts.quad[rows] = found.quad
    parts.other[rows] = found.other


def _scene_polygons(
    scene: Scene,
    frame: str,
    native: bool,
    window: tuple[np.ndarray, ...],
    k: int,
    *,
    curved: bool = True,
) -> Footprints:
    """Footprints of windows of one scene in ``frame`` from ``k`` points per side.

    Those found straight are kept as their 4 corners (``quad``); the others are polygons
    of every point, or left ``None`` without ``curved``.
    """
    r_off, c_off, hgt, wid = window
    pixels = np.maximum(hgt, wid)
    cols, prows = window_rings(r_off, c_off, hgt, wid, k)
    # Chips on a grid share corners (four chips at each, more with overlap): each distinct
    # point goes through the GCP transformer and PROJ once.
    uc, ur, back = _distinct(cols, prows)
    xs, ys = pixel_to_scene_crs(scene, uc, ur)
    if native:
        xs, ys = xs[back].reshape(cols.shape), ys[back].reshape(cols.shape)
        return _ring_polygons(xs, ys, k, pixels, curved)
    lons, lats = _to_lonlat(scene.crs, xs, ys)
    lons, lats = unwrap_longitudes(lons[back].reshape(cols.shape)), lats[back].reshape(cols.shape)
    to_frame = not same_crs(frame, LONLAT)
    crossing = (lons.max(axis=1) > 180.0) | (lons.min(axis=1) < -180.0)
    n = len(r_off)
    out = Footprints(np.full((n, 4, 2), np.nan), np.zeros(n, dtype=bool), np.full(n, None, object))
    if crossing.any():
        cut = cut_antimeridian(_polygons(lons[crossing], lats[crossing]))
        out.other[crossing] = _project(cut, frame) if to_frame else cut
    plain = ~crossing
    if plain.any():
        px, py = lons[plain], lats[plain]
        if to_frame:
            px, py = reproject_points(LONLAT, frame, px, py)
        _put(out, np.flatnonzero(plain), _ring_polygons(px, py, k, pixels[plain], curved))
    return out


def _distinct(cols: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct points of ``(cols, rows)`` and, per point, which one it is (flat)."""
    low_c, low_r = cols.min(initial=0), rows.min(initial=0)
    span = rows.max(initial=0) - low_r + 1
    whole = np.array_equal(cols, np.floor(cols)) and np.array_equal(rows, np.floor(rows))
    if whole and (cols.max(initial=0) - low_c + 1) * span < 2**62:
        # Whole pixel positions (the usual case) sort as one int64, much faster than complex.
        key = (cols - low_c).astype(np.int64) * np.int64(span) + (rows - low_r).astype(np.int64)
        distinct, back = np.unique(key.ravel(), return_inverse=True)
        return distinct // span + low_c, distinct % span + low_r, back
    points, back = np.unique((cols + 1j * rows).ravel(), return_inverse=True)
    return points.real, points.imag, back


def _polygons(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    coords = np.stack([xs, ys], axis=-1)
    return np.asarray(shapely.polygons(np.concatenate([coords, coords[:, :1]], axis=1)))


def _ring_polygons(
    xs: np.ndarray, ys: np.ndarray, k: int, pixels: np.ndarray, curved: bool = True
) -> Footprints:
    """Polygons from densified rings, keeping only the corners where the edges are straight.

    A ring whose intermediate points lie within :data:`STRAIGHT` pixels (a pixel being the
    longest side over ``pixels``) of the chords between its corners is a quad, its 4
    corners: small chips barely curve when reprojected, and 5-vertex polygons intersect
    several times faster than 33-vertex ones. The others are polygons of every point
    (or ``None`` without ``curved``).
    """
    corner = np.arange(4) * k
    cx, cy = xs[:, corner], ys[:, corner]
    corners = np.stack([cx, cy], axis=-1)
    other = np.full(len(xs), None, dtype=object)
    if k == 1:
        return Footprints(corners, np.ones(len(xs), dtype=bool), other)
    t = np.arange(k) / k
    chord_x = (cx[:, :, None] + t * (np.roll(cx, -1, axis=1) - cx)[:, :, None]).reshape(xs.shape)
    chord_y = (cy[:, :, None] + t * (np.roll(cy, -1, axis=1) - cy)[:, :, None]).reshape(ys.shape)
    deviation = np.hypot(xs - chord_x, ys - chord_y).max(axis=1)
    side = np.hypot(np.diff(cx, axis=1), np.diff(cy, axis=1)).max(axis=1)
    straight = deviation <= STRAIGHT * side / pixels
    if curved and (~straight).any():
        other[~straight] = _polygons(xs[~straight], ys[~straight])
    corners[~straight] = np.nan
    return Footprints(corners, straight, other)


def _to_lonlat(crs: str | None, xs: np.ndarray, ys: np.ndarray) -> tuple[Any, Any]:
    """Scene CRS -> lon/lat (not unwrapped: the caller unwraps each ring)."""
    if crs is None:
        raise InvalidParameterError("a scene without CRS or GCPs has no ground footprint")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        return reproject_points(crs, LONLAT, xs, ys)


def _project(lonlat: np.ndarray, frame: str) -> np.ndarray:
    """Project lon/lat geometries (already cut at the antimeridian) to ``frame``."""
    geoms = np.array(lonlat, dtype=object)
    coords = shapely.get_coordinates(geoms)
    xs, ys = reproject_points(LONLAT, frame, coords[:, 0], coords[:, 1])
    return np.asarray(shapely.set_coordinates(geoms, np.stack([xs, ys], axis=-1)))
