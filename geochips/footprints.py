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
from typing import Any

import numpy as np
import rasterio.crs
import shapely
import shapely.errors
from rasterio.control import GroundControlPoint
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.transform import GCPTransformer
from rasterio.warp import transform as warp_transform

from geochips.errors import InvalidParameterError
from geochips.scene import Scene

LONLAT = "EPSG:4326"
EQUAL_AREA = "EPSG:6933"
"""Default common frame for scenes in different CRSs: global, equal area, metres."""
DENSIFY = 8
"""Points per window side when edges are reprojected (they curve in another CRS)."""
STRAIGHT = 0.01
"""Reprojected window sides that deviate from a straight line by less than this many pixels
are kept straight (4-corner polygons)."""

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
    shape = xs.shape
    out_x, out_y = warp_transform(src_crs, dst_crs, xs.ravel(), ys.ravel())
    return np.asarray(out_x, dtype=np.float64).reshape(shape), np.asarray(
        out_y, dtype=np.float64
    ).reshape(shape)


def same_crs(a: str | None, b: str | None) -> bool:
    """Return whether two CRS strings name the same CRS."""
    if a is None or b is None:
        return a is b
    if a == b:
        return True
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


def _scene_rows(scenes: Sequence[Scene], scene_col: np.ndarray) -> list[tuple[int, np.ndarray]]:
    order = np.argsort(scene_col, kind="stable")
    starts = np.searchsorted(scene_col[order], np.arange(len(scenes) + 1))
    return [
        (s, order[starts[s] : starts[s + 1]])
        for s in range(len(scenes))
        if starts[s + 1] > starts[s]
    ]


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
    scene_col = np.asarray(columns["scene"])
    out = np.full(len(scene_col), None, dtype=object)
    for s, rows in _scene_rows(scenes, scene_col):
        scene = scenes[s]
        r_off, c_off, hgt, wid = (
            np.asarray(columns[k])[rows] for k in ("row_off", "col_off", "height", "width")
        )
        if frame == "pixel":
            r, c, h, w = (v.astype(np.float64) for v in (r_off, c_off, hgt, wid))
            out[rows] = shapely.box(c, r, c + w, r + h)
            continue
        if scene.georef == "none" or (frame != "scene" and not has_ground(scene)):
            continue
        native = frame == "scene" or same_crs(scene.crs, frame)
        window = (r_off, c_off, hgt, wid)
        dense = points_per_side
        if not native:
            # Chips holding a pole are few and need more than a cut at the antimeridian.
            poles = _pole_pixels(scene)
            polar = _polar_footprints(scene, window, poles)
            if polar is not None:
                at_pole, geoms = polar
                out[rows[at_pole]] = geoms if same_crs(frame, LONLAT) else _project(geoms, frame)
                rows, window = rows[~at_pole], tuple(v[~at_pole] for v in window)
                if not len(rows):
                    continue
            if _near_pole(window, poles).any():
                # Near a pole a chip sweeps through many degrees of longitude: its edges
                # curve strongly in lon/lat and need more points than elsewhere.
                dense = max(points_per_side, POLAR_DENSIFY // 4)
        if native and scene.georef == "transform":
            out[rows] = _scene_polygons(scene, frame, native, window, 1)[0]
            continue
        # Probe with the side midpoints: most chips are straight enough for 4 corners,
        # and only the others are densified (a quarter of the points to reproject).
        probe = min(2, points_per_side)
        polys, straight = _scene_polygons(scene, frame, native, window, probe)
        curved = ~straight
        if curved.any() and dense > probe:
            sub = tuple(v[curved] for v in window)
            polys[curved] = _scene_polygons(scene, frame, native, sub, dense)[0]
        out[rows] = polys
    return out


def _scene_polygons(
    scene: Scene,
    frame: str,
    native: bool,
    window: tuple[np.ndarray, ...],
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Footprints of windows of one scene in ``frame`` from ``k`` points per side.

    Returns the polygons and whether each was found straight (and kept as 4 corners).
    """
    r_off, c_off, hgt, wid = window
    pixels = np.maximum(hgt, wid)
    cols, prows = window_rings(r_off, c_off, hgt, wid, k)
    xs, ys = pixel_to_scene_crs(scene, cols, prows)
    if native:
        return _ring_polygons(xs, ys, k, pixels)
    lons, lats = _to_lonlat(scene.crs, xs, ys)
    to_frame = not same_crs(frame, LONLAT)
    crossing = (lons.max(axis=1) > 180.0) | (lons.min(axis=1) < -180.0)
    polys = np.empty(len(r_off), dtype=object)
    straight = np.zeros(len(r_off), dtype=bool)
    if crossing.any():
        cut = cut_antimeridian(_polygons(lons[crossing], lats[crossing]))
        polys[crossing] = _project(cut, frame) if to_frame else cut
    plain = ~crossing
    if plain.any():
        px, py = lons[plain], lats[plain]
        if to_frame:
            px, py = reproject_points(LONLAT, frame, px, py)
        polys[plain], straight[plain] = _ring_polygons(px, py, k, pixels[plain])
    return polys, straight


def _polygons(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    coords = np.stack([xs, ys], axis=-1)
    return np.asarray(shapely.polygons(np.concatenate([coords, coords[:, :1]], axis=1)))


def _ring_polygons(
    xs: np.ndarray, ys: np.ndarray, k: int, pixels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Polygons from densified rings, keeping only the corners where the edges are straight.

    A ring whose intermediate points lie within :data:`STRAIGHT` pixels (a pixel being the
    longest side over ``pixels``) of the chords between its corners becomes a 4-corner
    polygon: small chips barely curve when reprojected, and 5-vertex polygons intersect
    several times faster than 33-vertex ones. Returns the polygons and that test.
    """
    if k == 1:
        return _polygons(xs, ys), np.ones(len(xs), dtype=bool)
    corners = np.arange(4) * k
    cx, cy = xs[:, corners], ys[:, corners]
    t = np.arange(k) / k
    chord_x = (cx[:, :, None] + t * (np.roll(cx, -1, axis=1) - cx)[:, :, None]).reshape(xs.shape)
    chord_y = (cy[:, :, None] + t * (np.roll(cy, -1, axis=1) - cy)[:, :, None]).reshape(ys.shape)
    deviation = np.hypot(xs - chord_x, ys - chord_y).max(axis=1)
    side = np.hypot(np.diff(cx, axis=1), np.diff(cy, axis=1)).max(axis=1)
    straight = deviation <= STRAIGHT * side / pixels
    out = np.empty(len(xs), dtype=object)
    if straight.any():
        out[straight] = _polygons(cx[straight], cy[straight])
    if (~straight).any():
        out[~straight] = _polygons(xs[~straight], ys[~straight])
    return out, straight


def _to_lonlat(crs: str | None, xs: np.ndarray, ys: np.ndarray) -> tuple[Any, Any]:
    """Scene CRS -> lon/lat, unwrapped per ring so a ring never jumps by 360 degrees."""
    if crs is None:
        raise InvalidParameterError("a scene without CRS or GCPs has no ground footprint")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        lons, lats = reproject_points(crs, LONLAT, xs, ys)
    return unwrap_longitudes(lons), lats


def _project(lonlat: np.ndarray, frame: str) -> np.ndarray:
    """Project lon/lat geometries (already cut at the antimeridian) to ``frame``."""
    geoms = np.array(lonlat, dtype=object)
    coords = shapely.get_coordinates(geoms)
    xs, ys = reproject_points(LONLAT, frame, coords[:, 0], coords[:, 1])
    return np.asarray(shapely.set_coordinates(geoms, np.stack([xs, ys], axis=-1)))


# -- chips at the poles ---------------------------------------------------------------------

POLAR_DENSIFY = 256
"""Points per window side of a chip holding a pole: its edges sweep through many degrees of
longitude, and such chips are a handful per pole."""


def _pole_pixels(scene: Scene) -> list[tuple[float, float, float]]:
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


def _near_pole(window: tuple[np.ndarray, ...], poles: list[tuple[float, float, float]]) -> Any:
    """Whether each window lies within 10 window sizes of a pole (in pixels)."""
    r_off, c_off, hgt, wid = (np.asarray(v, dtype=np.float64) for v in window)
    near = np.zeros(len(r_off), dtype=bool)
    for col, row, _ in poles:
        distance = np.hypot(c_off + wid / 2 - col, r_off + hgt / 2 - row)
        near |= distance < 10 * np.maximum(hgt, wid)
    return near


def _polar_footprints(
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
