"""Footprints of chips that hold a pole, in lon/lat: an edge along the pole's latitude.

Such chips are a handful per pole, and a cut at the antimeridian is not enough for them:
:func:`geochips.footprints.footprints` finds them with :func:`pole_pixels` and
:func:`polar_footprints` and densifies chips :func:`near_pole` more than others.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import shapely
import shapely.errors
from rasterio.errors import NotGeoreferencedWarning, RasterioError

from geochips.coordinates import (
    LONLAT,
    cut_antimeridian,
    pixel_to_scene_crs,
    reproject_points,
    scene_crs_to_pixel,
)
from geochips.scene import Scene

POLAR_DENSIFY = 256
"""Points per window side of a chip holding a pole: its edges sweep through many degrees of
longitude, and such chips are a handful per pole."""


def pole_pixels(scene: Scene) -> list[tuple[float, float, float]]:
    """Return ``(col, row, lat)`` of each pole at a finite place of the scene's pixel grid."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            xs, ys = reproject_points(
                LONLAT, str(scene.crs), np.array([0.0, 0.0]), np.array([90.0, -90.0])
            )
            cols, rows = scene_crs_to_pixel(scene, xs, ys)
            # A GCP fit or a projection that cannot reach the pole may still give numbers:
            # keep a pole only if the pixel found maps back to it.
            bx, by = pixel_to_scene_crs(scene, np.asarray(cols), np.asarray(rows))
            _, lats = reproject_points(str(scene.crs), LONLAT, np.asarray(bx), np.asarray(by))
    except (RasterioError, ValueError):  # the CRS has no pole (PROJ refuses it)
        return []
    return [
        (float(c), float(r), pole)
        for c, r, lat, pole in zip(cols, rows, lats, (90.0, -90.0), strict=True)
        if np.isfinite(c) and np.isfinite(r) and abs(lat - pole) < 1e-6
    ]


def near_pole(window: tuple[np.ndarray, ...], poles: list[tuple[float, float, float]]) -> Any:
    """Whether each window lies within 10 window sizes of a pole (in pixels)."""
    r_off, c_off, hgt, wid = (np.asarray(v, dtype=np.float64) for v in window)
    near = np.zeros(len(r_off), dtype=bool)
    for col, row, _ in poles:
        distance = np.hypot(c_off + wid / 2 - col, r_off + hgt / 2 - row)
        near |= distance < 10 * np.maximum(hgt, wid)
    return near


def polar_footprints(
    scene: Scene, window: tuple[np.ndarray, ...], poles: list[tuple[float, float, float]]
) -> tuple[np.ndarray, np.ndarray] | None:
    """Lon/lat footprints of the chips whose window holds a pole (inside or on its edge).

    Returns the mask of those chips and their footprints, or ``None`` when there is none.
    """
    r_off, c_off, hgt, wid = (np.asarray(v, dtype=np.float64) for v in window)
    mask = np.zeros(len(r_off), dtype=bool)
    found: dict[int, tuple[float, float, float]] = {}
    for col, row, lat in poles:
        holds = (c_off <= col) & (col <= c_off + wid) & (r_off <= row) & (row <= r_off + hgt)
        for i in np.flatnonzero(holds & ~mask).tolist():
            found[i] = (col, row, lat)
        mask |= holds
    if not mask.any():
        return None
    geoms = np.empty(int(mask.sum()), dtype=object)
    for j, i in enumerate(np.flatnonzero(mask).tolist()):
        geoms[j] = _polar_footprint(scene, (r_off[i], c_off[i], hgt[i], wid[i]), found[i])
    return mask, geoms


def _perimeter(
    window: tuple[float, float, float, float], ts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Map distances along a window's outline (clockwise from its top-left) to cols, rows."""
    r0, c0, h, w = window
    top, right, bottom = ts < w, (ts >= w) & (ts < w + h), (ts >= w + h) & (ts < 2 * w + h)
    cols = np.where(
        top, c0 + ts, np.where(right, c0 + w, np.where(bottom, c0 + 2 * w + h - ts, c0))
    )
    rows = np.where(
        top, r0, np.where(right, r0 + ts - w, np.where(bottom, r0 + h, r0 + 2 * (w + h) - ts))
    )
    return cols, rows


def _polar_footprint(
    scene: Scene, window: tuple[float, float, float, float], pole: tuple[float, float, float]
) -> Any:
    """Footprint in lon/lat of one chip holding a pole: a lat=+-90 edge, cut at +-180.

    A pole on the window's outline becomes an edge along its latitude (between the
    longitudes of the outline on either side); a pole inside it is enclosed, which
    ``antimeridian.fix_polygon`` (``pip install geochips[poles]``) resolves exactly.
    Without that package, or if a polygon comes out invalid, the chip gets the polar cap
    from its lowest latitude to the pole: coarser, but valid and covering the chip.
    """
    r0, c0, h, w = window
    col, row, pole_lat = pole
    ts = np.arange(4 * POLAR_DENSIFY) * (2 * (w + h)) / (4 * POLAR_DENSIFY)
    inside = c0 < col < c0 + w and r0 < row < r0 + h
    if not inside:  # on the outline: make the pole itself one of the points
        along = (
            col - c0
            if row == r0
            else w + row - r0
            if col == c0 + w
            else w + h + c0 + w - col
            if row == r0 + h
            else 2 * w + h + r0 + h - row
        )
        ts = np.unique(np.append(ts, along))
    xs, ys = pixel_to_scene_crs(scene, *_perimeter(window, ts))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        lons, lats = reproject_points(str(scene.crs), LONLAT, xs, ys)
    south = pole_lat < 0
    far = float(lats.max() if south else lats.min())
    cap = shapely.box(-180.0, -90.0 if south else far, 180.0, far if south else 90.0)
    try:
        polygon = _pole_polygon(lons, lats, pole_lat, inside)
    except (shapely.errors.GEOSException, ValueError):
        return cap
    return polygon if polygon is not None and shapely.is_valid(polygon) else cap


def _pole_polygon(lons: np.ndarray, lats: np.ndarray, pole_lat: float, inside: bool) -> Any:
    at_pole = np.abs(lats - pole_lat) < 1e-7
    if at_pole.all():
        return None
    # Longitude is undefined at the pole: the points there take their neighbours' longitude,
    # so the outline runs along the pole's latitude between them.
    points: list[tuple[float, float]] = []
    pole_steps: list[int] = []
    n = len(lons)
    for i in range(n):
        if not at_pole[i]:
            points.append((float(lons[i]), float(lats[i])))
            continue
        before = next(lons[(i - k) % n] for k in range(1, n) if not at_pole[(i - k) % n])
        after = next(lons[(i + k) % n] for k in range(1, n) if not at_pole[(i + k) % n])
        pole_steps.append(len(points))
        points += [(float(before), pole_lat), (float(after), pole_lat)]
    lon = np.array([p[0] for p in points])
    lat = np.array([p[1] for p in points])
    steps = (np.diff(np.append(lon, lon[0])) + 180.0) % 360.0 - 180.0
    if pole_steps:
        # Along the pole the step is whatever closes the outline without winding round it
        # (the shortest way is ambiguous when the pole lies mid-edge: 180 degrees).
        steps[pole_steps] = 0.0
        steps[pole_steps[0]] = -steps.sum()
    unwrapped = lon[0] + np.concatenate([[0.0], np.cumsum(steps)[:-1]])
    if not inside:
        ring = _densify_pole_edges(unwrapped, lat, pole_lat)
        polygon = shapely.Polygon(ring)
        polygon = shapely.Polygon(ring[::-1]) if not polygon.exterior.is_ccw else polygon
        return cut_antimeridian(np.array([polygon], dtype=object))[0]
    try:
        import antimeridian
    except ImportError:
        return None
    # Counterclockwise round the polar region: westwards above the south pole's region,
    # eastwards below the north pole's.
    total = steps.sum()
    if (total > 0) == (pole_lat < 0):
        lon, lat = lon[::-1], lat[::-1]
    wrapped = (lon + 180.0) % 360.0 - 180.0
    return antimeridian.fix_polygon(
        shapely.Polygon(np.stack([wrapped, lat], axis=1)),
        force_north_pole=pole_lat > 0,
        force_south_pole=pole_lat < 0,
        great_circle=False,
    )


def _densify_pole_edges(lons: np.ndarray, lats: np.ndarray, pole_lat: float) -> np.ndarray:
    """Return the ring with points every degree along its stretches at the pole."""
    out = []
    n = len(lons)
    for i in range(n):
        out.append((lons[i], lats[i]))
        j = (i + 1) % n
        if lats[i] == pole_lat and lats[j] == pole_lat and j != 0:
            extra = np.linspace(lons[i], lons[j], int(abs(lons[j] - lons[i])) + 2)[1:-1]
            out += [(x, pole_lat) for x in extra]
    return np.array(out)
