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

import functools
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
import shapely
from rasterio.errors import NotGeoreferencedWarning, RasterioError

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
    """Footprints, quads kept as their corners and rings as their points (no shapely object).

    The others (cut at the antimeridian, at a pole, in the pixel frame) are shapely geometries.
    """

    corners: np.ndarray
    """``(n, 4, 2)`` float64 ``x, y`` of each quad's corners, in ring order (NaN elsewhere)."""
    quad: np.ndarray
    """``(n,)`` bool: the footprint is the polygon of its four corners."""
    other: np.ndarray
    """``(n,)`` object: the footprint where it is neither a quad nor a ring (``None``: unknown
    or a ring)."""
    ring_rows: np.ndarray
    """``(m,)`` int: the footprints that are the polygon of every point of a ring."""
    rings: tuple[np.ndarray, ...]
    """Those rings' points, not closed: ``(m_i, 4 * points_per_side, 2)`` float64 pieces
    (a piece per scene batch, not copied into one) that follow ``ring_rows`` in order."""

    def geometries(self) -> np.ndarray:
        """Every footprint as a shapely geometry (``None`` where unknown)."""
        out = self.other.copy()
        if self.quad.any():
            quads = self.corners[self.quad]
            out[self.quad] = _polygons(quads[..., 0], quads[..., 1])
        start = 0
        for rings in self.rings:
            rows = self.ring_rows[start : start + len(rings)]
            out[rows] = _polygons(rings[..., 0], rings[..., 1])
            start += len(rings)
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
    """:func:`footprints`, with quads as corners and rings as points (what WKB writers want)."""
    scene_col = np.asarray(columns["scene"])
    parts = _Parts(len(scene_col), 4 * points_per_side)
    # Scenes with an affine transform, reprojected: gathered by CRS (and densification) so
    # that their points go through PROJ in one call, whatever the number of scenes.
    batches: dict[tuple[str, int], list[tuple[Scene, np.ndarray, tuple[np.ndarray, ...]]]] = {}
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
            poles = _pole_pixels(scene, window)
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
            parts.put(rows, _scene_polygons(scene, frame, native, window, 1))
            continue
        if scene.georef == "transform":
            batches.setdefault((str(scene.crs), dense), []).append((scene, rows, window))
            continue
        _densify(parts, rows, dense, _OneScene(scene, frame, native, window).polygons)
    for (crs, dense), members in batches.items():
        batch = _Batch.of(crs, frame, members)
        rows = np.concatenate([rows for _, rows, _ in members])
        _densify(parts, rows, dense, batch.polygons, sift=same_crs(frame, LONLAT))
    return parts.done()


Mode = Literal["probe", "final", "bent", "sift"]
"""What to make of rings: ``"probe"`` quads where straight, ``None`` elsewhere; ``"final"``
quads where straight, rings elsewhere; ``"bent"`` rings (chips a probe found curved);
``"sift"`` what a probe then ``"bent"`` make, from the dense rings alone (lon/lat only)."""
PROBE = 2
"""Points a side of the probe: the corners and side midpoints."""
SAMPLE = 16
"""Every this many chips are probed first, to choose between probing and sifting."""
Make = Callable[[np.ndarray, int, Mode], Footprints]
"""``(chips, k, mode)`` -> the footprints of those chips (positions) from ``k`` points a
side."""


def _densify(
    parts: _Parts, rows: np.ndarray, dense: int, polygons: Make, sift: bool = False
) -> None:
    """Put the footprints of ``rows``: quads where the side midpoints are straight, else rings.

    Rings have ``dense`` points a side. With ``sift`` (``polygons`` knows that mode), a
    sample mostly curved makes every chip from ``dense`` points at once: the probe's
    points would be reprojected twice for nothing.
    """
    # Probe with the side midpoints: most chips are straight enough for 4 corners,
    # and only the others are densified (a quarter of the points to reproject).
    probe = min(PROBE, dense)
    again = dense > probe  # curved chips are made again from more points
    if sift and again and dense % probe == 0 and len(rows) >= 4 * SAMPLE:
        sample = polygons(np.arange(0, len(rows), SAMPLE), probe, "probe")
        if np.count_nonzero(sample.quad) * 10 <= len(sample.quad):  # 90 % curved or more
            parts.put(rows, polygons(np.arange(len(rows)), dense, "sift"))
            return
    found = polygons(np.arange(len(rows)), probe, "probe" if again else "final")
    parts.put(rows, found)
    curved = np.flatnonzero(~found.quad)
    if len(curved) and again:
        # With the probe's points among the dense ones (the midpoints), a chip the probe
        # found curved is curved (its deviation only grows): no test again.
        mode: Mode = "bent" if dense % probe == 0 else "final"
        parts.put(rows[curved], polygons(curved, dense, mode))


class _OneScene(NamedTuple):
    """Chips of one scene (GCPs, or in its own CRS), made in that scene alone."""

    scene: Scene
    frame: str
    native: bool
    window: tuple[np.ndarray, ...]

    def polygons(self, chips: np.ndarray, k: int, mode: Mode) -> Footprints:
        window = tuple(v[chips] for v in self.window)
        return _scene_polygons(self.scene, self.frame, self.native, window, k, mode)


class _Batch(NamedTuple):
    """Chips of scenes that have an affine transform and one CRS, reprojected together."""

    crs: str
    frame: str
    at: np.ndarray
    """``(n,)`` the scene of each chip, a row of ``affine``."""
    affine: np.ndarray
    """``(scenes, 6)`` each scene's transform (``a, b, c, d, e, f``)."""
    window: tuple[np.ndarray, ...]

    @classmethod
    def of(
        cls, crs: str, frame: str, members: list[tuple[Scene, np.ndarray, tuple[np.ndarray, ...]]]
    ) -> _Batch:
        sizes = [len(rows) for _, rows, _ in members]
        at = np.repeat(np.arange(len(members)), sizes)
        affine = np.array([tuple(scene.transform)[:6] for scene, _, _ in members])  # type: ignore[arg-type]
        window = tuple(np.concatenate([w[i] for _, _, w in members]) for i in range(4))
        return cls(crs, frame, at, affine, window)

    def polygons(self, chips: np.ndarray, k: int, mode: Mode) -> Footprints:
        at, window = self.at[chips], tuple(v[chips] for v in self.window)
        points = _lattice(at, window, k) or _each_scene(at, window, k)
        a, b, c, d, e, f = self.affine[points.scene].T
        cols, rows = points.cols, points.rows
        lons, lats = _to_lonlat(self.crs, a * cols + b * rows + c, d * cols + e * rows + f)
        lonlat = np.empty((points.size, 2))  # the lattice's unused points stay unset
        lonlat[points.spot, 0], lonlat[points.spot, 1] = lons, lats
        pixels = np.maximum(window[2], window[3])
        rings = _unwrapped(lonlat, points.ring)
        if mode == "sift":
            return _sifted(rings, k, pixels)
        return _lonlat_polygons(rings, self.frame, k, pixels, mode)


class _Points(NamedTuple):
    """Distinct pixel points of rings, and where each ring point is among them."""

    scene: np.ndarray
    """``(p,)`` the scene of each point (a row of :attr:`_Batch.affine`)."""
    cols: np.ndarray
    rows: np.ndarray
    spot: np.ndarray
    """``(p,)`` where each point goes in a table of :attr:`size` (``arange(p)`` but for a
    lattice)."""
    size: int
    ring: np.ndarray
    """``(n, 4 * k)`` each ring point's spot in that table."""


def _lattice(at: np.ndarray, window: tuple[np.ndarray, ...], k: int) -> _Points | None:
    """The rings' points on a lattice of whole pixels per scene, or ``None`` if they are not.

    Chips on a grid put the points of their rings on a lattice (every ``sides / k`` pixels
    along the edges): each ring point's place in it is the place of its side's first point
    plus a step, with no sort. ``None`` where a ring point is not a whole pixel, or where
    the lattice would be much larger than the points (a sparse selection of chips).
    """
    r0, c0, h, w = (np.asarray(v, dtype=np.int64) for v in window)
    n = len(r0)
    t = np.arange(k) / k
    steps = []
    for size in (w, h):
        low, high = size.min(), size.max()
        sizes = np.array([low]) if low == high else np.unique(size)  # mostly one size
        step = sizes // k
        # The pixel positions window_rings makes: whole, and a step apart along each side.
        along = np.arange(k) * step[:, None]
        if not (
            np.array_equal(sizes[:, None] * t, along)
            and np.array_equal(sizes[:, None] * (1 - t), sizes[:, None] - along)
        ):
            return None
        steps.append(size // k)
    step_c, step_r = steps
    starts = np.flatnonzero(np.r_[True, at[1:] != at[:-1]])
    if not np.array_equal(np.unique(at), at[starts]):
        return None  # chips must come by scene (a batch gives them so)
    low_c, low_r = np.minimum.reduceat(c0, starts), np.minimum.reduceat(r0, starts)
    gap_c = int(np.gcd.reduce(np.r_[step_c, c0 - np.repeat(low_c, np.diff(np.r_[starts, n]))]))
    gap_r = int(np.gcd.reduce(np.r_[step_r, r0 - np.repeat(low_r, np.diff(np.r_[starts, n]))]))
    ncols = (np.maximum.reduceat(c0 + w, starts) - low_c) // gap_c + 1
    nrows = (np.maximum.reduceat(r0 + h, starts) - low_r) // gap_r + 1
    cells = ncols * nrows
    if float(cells.sum()) > 4.0 * n * 4 * k + 65536:
        return None
    base = np.r_[0, np.cumsum(cells)[:-1]]
    local = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, n]))
    nc = ncols[local]
    left, right = (c0 - low_c[local]) // gap_c, (c0 + w - low_c[local]) // gap_c
    top = base[local] + (r0 - low_r[local]) // gap_r * nc
    bottom = base[local] + (r0 + h - low_r[local]) // gap_r * nc
    across, down = step_c // gap_c, step_r // gap_r * nc
    # top (left to right), right (down), bottom (right to left), left (up): window_rings' order
    first = np.stack([top + left, top + right, bottom + right, bottom + left], axis=1)
    step = np.stack([across, down, -across, -down], axis=1)
    index = (first[:, :, None] + step[:, :, None] * np.arange(k)).reshape(n, 4 * k)
    used = np.zeros(int(cells.sum()), dtype=bool)
    used[index] = True
    spot = np.flatnonzero(used)
    firsts = np.searchsorted(spot, base)  # the spots are sorted, and so are the scenes
    scene = np.repeat(np.arange(len(base)), np.diff(np.r_[firsts, len(spot)]))
    down, across_at = np.divmod(spot - base[scene], ncols[scene])
    cols = (low_c[scene] + across_at * gap_c).astype(np.float64)
    rows = (low_r[scene] + down * gap_r).astype(np.float64)
    return _Points(at[starts][scene], cols, rows, spot, len(used), index)


def _each_scene(at: np.ndarray, window: tuple[np.ndarray, ...], k: int) -> _Points:
    """The rings' distinct points scene by scene (any windows; chips come by scene)."""
    r_off, c_off, hgt, wid = window
    cols, rows = window_rings(r_off, c_off, hgt, wid, k)
    starts = np.flatnonzero(np.r_[True, at[1:] != at[:-1]]).tolist()
    index = np.empty(cols.shape, dtype=np.int64)
    scene, found_c, found_r = [], [], []
    total = 0
    for a, b in zip(starts, [*starts[1:], len(at)], strict=True):
        uc, ur, back = _distinct(cols[a:b], rows[a:b])
        index[a:b] = (back + total).reshape(b - a, -1)
        scene.append(np.full(len(uc), at[a]))
        found_c.append(uc)
        found_r.append(ur)
        total += len(uc)
    cols_at, rows_at = (np.concatenate(v).astype(np.float64) for v in (found_c, found_r))
    return _Points(np.concatenate(scene), cols_at, rows_at, np.arange(total), total, index)


class _Parts:
    """The footprints of a call, filled a scene (or a batch of scenes) at a time."""

    def __init__(self, n: int, points: int) -> None:
        self.corners = np.full((n, 4, 2), np.nan)
        self.quad = np.zeros(n, dtype=bool)
        self.other = np.full(n, None, dtype=object)
        self.points = points
        self.ring_rows: list[np.ndarray] = []
        self.rings: list[np.ndarray] = []

    def put(self, rows: np.ndarray, found: Footprints) -> None:
        """Set ``rows`` from ``found`` (rings of another length become polygons)."""
        self.corners[rows] = found.corners
        self.quad[rows] = found.quad
        self.other[rows] = found.other
        start = 0
        for rings in found.rings:
            at = rows[found.ring_rows[start : start + len(rings)]]
            start += len(rings)
            if rings.shape[1] == self.points:
                self.ring_rows.append(at)
                self.rings.append(rings)
            else:
                self.other[at] = _polygons(rings[..., 0], rings[..., 1])

    def done(self) -> Footprints:
        """The footprints put (a row is put once as a ring at most: rings are final)."""
        rows = np.concatenate(self.ring_rows) if self.ring_rows else np.zeros(0, np.int64)
        return Footprints(self.corners, self.quad, self.other, rows, tuple(self.rings))


def _scene_polygons(
    scene: Scene,
    frame: str,
    native: bool,
    window: tuple[np.ndarray, ...],
    k: int,
    mode: Mode = "final",
) -> Footprints:
    """Footprints of windows of one scene in ``frame`` from ``k`` points per side.

    Those found straight are kept as their 4 corners (``quad``); the others are rings of
    every point (cut at the antimeridian in lon/lat), or ``None`` (see :data:`Mode`).
    """
    r_off, c_off, hgt, wid = window
    pixels = np.maximum(hgt, wid)
    cols, prows = window_rings(r_off, c_off, hgt, wid, k)
    # Chips on a grid share corners (four chips at each, more with overlap): each distinct
    # point goes through the GCP transformer and PROJ once.
    uc, ur, back = _distinct(cols, prows)
    xs, ys = pixel_to_scene_crs(scene, uc, ur)
    ring = back.reshape(cols.shape)
    if native:
        return _ring_polygons(np.stack([xs, ys], axis=-1)[ring], k, pixels, mode)
    lons, lats = _to_lonlat(scene.crs, xs, ys)
    return _lonlat_polygons(
        _unwrapped(np.stack([lons, lats], axis=-1), ring), frame, k, pixels, mode
    )


def _lonlat_polygons(
    rings: np.ndarray, frame: str, k: int, pixels: np.ndarray, mode: Mode
) -> Footprints:
    """Footprints in ``frame`` of ``(n, 4 k, 2)`` rings in lon/lat, unwrapped (cut at 180)."""
    lons, lats = rings[..., 0], rings[..., 1]
    to_frame = not same_crs(frame, LONLAT)
    if lons.size and lons.max() <= 180.0 and lons.min() >= -180.0:  # most calls: no ring
        crossing = np.zeros(len(lons), dtype=bool)
    else:
        crossing = (lons.max(axis=1) > 180.0) | (lons.min(axis=1) < -180.0)
    out = _empty(len(lons))
    if crossing.any():
        cut = cut_antimeridian(_polygons(lons[crossing], lats[crossing]))
        out.other[crossing] = _project(cut, frame) if to_frame else cut
    if crossing.any():
        plain = np.flatnonzero(~crossing)
        rings = rings[plain]
    else:  # the usual case: no copy
        plain = np.arange(len(lons))
    if len(plain):
        if to_frame:
            px, py = reproject_points(LONLAT, frame, rings[..., 0], rings[..., 1])
            rings = np.stack([px, py], axis=-1)
        found = _ring_polygons(rings, k, pixels[plain], mode)
        out.corners[plain] = found.corners
        out.quad[plain] = found.quad
        return out._replace(ring_rows=plain[found.ring_rows], rings=found.rings)
    return out


def _sifted(rings: np.ndarray, k: int, pixels: np.ndarray) -> Footprints:
    """What a probe and then ``"bent"`` rings make, in lon/lat, from ``k`` points a side.

    The probe's points (corners and midpoints) are among the rings' points: its tests
    (across 180, straight) run on them, and the chips it would densify get these rings.
    """
    sub = rings[:, :: k // PROBE]
    lons = rings[..., 0]
    if lons.max() <= 180.0 and lons.min() >= -180.0:  # False with NaN
        probe_cut = dense_cut = np.zeros(len(rings), dtype=bool)
    else:
        probe_cut = (sub[..., 0].max(axis=1) > 180.0) | (sub[..., 0].min(axis=1) < -180.0)
        dense_cut = (lons.max(axis=1) > 180.0) | (lons.min(axis=1) < -180.0)
    out = _empty(len(rings))
    plain = np.flatnonzero(~probe_cut)
    found = _ring_polygons(sub[plain], PROBE, pixels[plain], "probe")
    out.corners[plain] = found.corners
    out.quad[plain] = found.quad
    cut = dense_cut & ~out.quad
    if cut.any():
        out.other[cut] = cut_antimeridian(_polygons(lons[cut], rings[cut, :, 1]))
    bent = np.flatnonzero(~out.quad & ~cut)
    if len(bent) == len(rings):  # all bent: no copy
        return out._replace(ring_rows=bent, rings=(rings,))
    return out._replace(ring_rows=bent, rings=(rings[bent],))


def _empty(n: int) -> Footprints:
    return Footprints(
        np.full((n, 4, 2), np.nan),
        np.zeros(n, dtype=bool),
        np.full(n, None, dtype=object),
        np.zeros(0, dtype=np.int64),
        (),
    )


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


def _ring_polygons(rings: np.ndarray, k: int, pixels: np.ndarray, mode: Mode) -> Footprints:
    """Footprints of ``(n, 4 k, 2)`` rings, keeping only the corners where edges are straight.

    A ring whose intermediate points lie within :data:`STRAIGHT` pixels (a pixel being the
    longest side over ``pixels``) of the chords between its corners is a quad, its 4
    corners: small chips barely curve when reprojected, and 5-vertex polygons intersect
    several times faster than 33-vertex ones. The others are rings of every point (or
    ``None``: see :data:`Mode`).
    """
    xs, ys = rings[..., 0], rings[..., 1]
    out = _empty(len(xs))
    if mode == "bent":
        return out._replace(ring_rows=np.arange(len(xs)), rings=(rings,))
    corner = np.arange(4) * k
    cx, cy = xs[:, corner], ys[:, corner]
    corners = np.stack([cx, cy], axis=-1)
    if k == 1:
        return out._replace(corners=corners, quad=np.ones(len(xs), dtype=bool))
    t = np.arange(k) / k
    chord_x = (cx[:, :, None] + t * (np.roll(cx, -1, axis=1) - cx)[:, :, None]).reshape(xs.shape)
    chord_y = (cy[:, :, None] + t * (np.roll(cy, -1, axis=1) - cy)[:, :, None]).reshape(ys.shape)
    deviation = np.hypot(xs - chord_x, ys - chord_y).max(axis=1)
    side = np.hypot(np.diff(cx, axis=1), np.diff(cy, axis=1)).max(axis=1)
    straight = deviation <= STRAIGHT * side / pixels
    corners[~straight] = np.nan
    out = out._replace(corners=corners, quad=straight)
    if mode == "final" and not straight.all():
        bent = np.flatnonzero(~straight)
        out = out._replace(ring_rows=bent, rings=(rings[bent],))
    return out


def _unwrapped(lonlat: np.ndarray, ring: np.ndarray) -> np.ndarray:
    """Rings ``lonlat[ring]``, longitudes unwrapped by :func:`unwrap_longitudes`'s rule.

    The values are that function's, to the bit. Where every longitude is within 180
    degrees of its ring's first (all rings but those across the antimeridian or around a
    pole), the remainder by 360 that function takes is the identity and is skipped: it
    costs more than the rest of the unwrap.
    """
    rings: np.ndarray = np.take(lonlat, ring, axis=0)  # faster than lonlat[ring]
    lons = rings[..., 0]
    if not lons.size:
        return rings
    first = lons[:, :1].copy()
    lons -= first
    lons += 180.0
    if lons.min() >= 0.0 and lons.max() < 360.0:  # False with NaN
        lons -= 180.0
        lons += first
    else:
        rings[..., 0] = unwrap_longitudes(lonlat[ring, 0])
    return rings


def _pole_pixels(scene: Scene, window: tuple[np.ndarray, ...]) -> list[tuple[float, float, float]]:
    """:func:`pole_pixels` of ``scene``, or ``[]`` where no pole is near any of ``window``.

    A pole is near where :func:`near_pole` says so, at the pixel :func:`pole_pixels` checks
    (the pole's place in the CRS, found once per CRS, through the scene's transform): most
    scenes are far from both poles and skip the check's two reprojections.
    """
    places = _poles_in(str(scene.crs)) if scene.georef == "transform" else None
    if places is not None:
        cols, rows = scene_crs_to_pixel(scene, *places)
        candidates = [
            (float(c), float(r), 0.0)
            for c, r in zip(cols, rows, strict=True)
            if np.isfinite(c) and np.isfinite(r)
        ]
        if not near_pole(window, candidates).any():
            return []
    return pole_pixels(scene)


@functools.lru_cache(maxsize=256)
def _poles_in(crs: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Where the north and south poles are in ``crs`` (``None`` if PROJ cannot say)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return reproject_points(LONLAT, crs, np.array([0.0, 0.0]), np.array([90.0, -90.0]))
    except (RasterioError, ValueError):
        return None


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
