"""Footprints from rings of window points: 4 corners where the edges are straight.

A window's ring is its edge points (``k`` a side, in :func:`geochips.coordinates.window_rings`'
order) in some frame. Most rings are straight enough to keep as their 4 corners (a quad, 5
vertices, several times faster to intersect than 33); the others stay rings of every point,
or are cut at the antimeridian. :class:`Footprints` holds them without shapely objects until
:meth:`Footprints.geometries` is asked, which is what the WKB writer of a saved index wants.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
import shapely

from geochips.coordinates import (
    LONLAT,
    cut_antimeridian,
    reproject_points,
    same_crs,
    unwrap_longitudes,
)

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
            out[self.quad] = polygons(quads[..., 0], quads[..., 1])
        start = 0
        for rings in self.rings:
            rows = self.ring_rows[start : start + len(rings)]
            out[rows] = polygons(rings[..., 0], rings[..., 1])
            start += len(rings)
        return out


Mode = Literal["probe", "final", "bent", "sift"]
"""What to make of rings: ``"probe"`` quads where straight, ``None`` elsewhere; ``"final"``
quads where straight, rings elsewhere; ``"bent"`` rings (chips a probe found curved);
``"sift"`` what a probe then ``"bent"`` make, from the dense rings alone (lon/lat only)."""
PROBE = 2
"""Points a side of the probe: the corners and side midpoints."""


class Parts:
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
                self.other[at] = polygons(rings[..., 0], rings[..., 1])

    def done(self) -> Footprints:
        """The footprints put (a row is put once as a ring at most: rings are final)."""
        rows = np.concatenate(self.ring_rows) if self.ring_rows else np.zeros(0, np.int64)
        return Footprints(self.corners, self.quad, self.other, rows, tuple(self.rings))


def lonlat_polygons(
    rings: np.ndarray, frame: str, k: int, pixels: np.ndarray, mode: Mode
) -> Footprints:
    """Footprints in ``frame`` of ``(n, 4 k, 2)`` rings in lon/lat, unwrapped (cut at 180)."""
    lons, lats = rings[..., 0], rings[..., 1]
    to_frame = not same_crs(frame, LONLAT)
    if lons.size and lons.max() <= 180.0 and lons.min() >= -180.0:  # most calls: no ring
        crossing = np.zeros(len(lons), dtype=bool)
    else:
        crossing = (lons.max(axis=1) > 180.0) | (lons.min(axis=1) < -180.0)
    out = empty(len(lons))
    if crossing.any():
        cut = cut_antimeridian(polygons(lons[crossing], lats[crossing]))
        out.other[crossing] = project(cut, frame) if to_frame else cut
    if crossing.any():
        plain = np.flatnonzero(~crossing)
        rings = rings[plain]
    else:  # the usual case: no copy
        plain = np.arange(len(lons))
    if len(plain):
        if to_frame:
            px, py = reproject_points(LONLAT, frame, rings[..., 0], rings[..., 1])
            rings = np.stack([px, py], axis=-1)
        found = ring_polygons(rings, k, pixels[plain], mode)
        out.corners[plain] = found.corners
        out.quad[plain] = found.quad
        return out._replace(ring_rows=plain[found.ring_rows], rings=found.rings)
    return out


def sifted(rings: np.ndarray, k: int, pixels: np.ndarray, calm: bool = False) -> Footprints:
    """What a probe and then ``"bent"`` rings make, in lon/lat, from ``k`` points a side.

    The probe's points (corners and midpoints) are among the rings' points: its tests
    (across 180, straight) run on them, and the chips it would densify get these rings.
    ``calm``: the rings' points are :func:`within_half_turn` (no ring is cut, no test).
    """
    sub = rings[:, :: k // PROBE]
    lons = rings[..., 0]
    if calm:
        found = ring_polygons(sub, PROBE, pixels, "probe")
        bent = np.flatnonzero(~found.quad)
        return found._replace(
            ring_rows=bent, rings=(rings if len(bent) == len(rings) else rings[bent],)
        )
    if lons.max() <= 180.0 and lons.min() >= -180.0:  # False with NaN
        probe_cut = dense_cut = np.zeros(len(rings), dtype=bool)
    else:
        probe_cut = (sub[..., 0].max(axis=1) > 180.0) | (sub[..., 0].min(axis=1) < -180.0)
        dense_cut = (lons.max(axis=1) > 180.0) | (lons.min(axis=1) < -180.0)
    out = empty(len(rings))
    plain = np.flatnonzero(~probe_cut)
    found = ring_polygons(sub[plain], PROBE, pixels[plain], "probe")
    out.corners[plain] = found.corners
    out.quad[plain] = found.quad
    cut = dense_cut & ~out.quad
    if cut.any():
        out.other[cut] = cut_antimeridian(polygons(lons[cut], rings[cut, :, 1]))
    bent = np.flatnonzero(~out.quad & ~cut)
    if len(bent) == len(rings):  # all bent: no copy
        return out._replace(ring_rows=bent, rings=(rings,))
    return out._replace(ring_rows=bent, rings=(rings[bent],))


def empty(n: int) -> Footprints:
    """``n`` footprints, all unknown (no corners, no rings)."""
    return Footprints(
        np.full((n, 4, 2), np.nan),
        np.zeros(n, dtype=bool),
        np.full(n, None, dtype=object),
        np.zeros(0, dtype=np.int64),
        (),
    )


def polygons(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Shapely polygons of ``(n, m)`` ring coordinates (closed here)."""
    coords = np.stack([xs, ys], axis=-1)
    return np.asarray(shapely.polygons(np.concatenate([coords, coords[:, :1]], axis=1)))


def ring_polygons(rings: np.ndarray, k: int, pixels: np.ndarray, mode: Mode) -> Footprints:
    """Footprints of ``(n, 4 k, 2)`` rings, keeping only the corners where edges are straight.

    A ring whose intermediate points lie within :data:`STRAIGHT` pixels (a pixel being the
    longest side over ``pixels``) of the chords between its corners is a quad, its 4
    corners: small chips barely curve when reprojected, and 5-vertex polygons intersect
    several times faster than 33-vertex ones. The others are rings of every point (or
    ``None``: see :data:`Mode`).
    """
    xs, ys = rings[..., 0], rings[..., 1]
    out = empty(len(xs))
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


def within_half_turn(lons: np.ndarray) -> bool:
    """Whether ``lons`` (the points of some rings) span less than 179 degrees inside +-179.999.

    Then every ring's longitudes lie within 180 degrees of its first (:func:`unwrapped`
    needs no remainder) and stay inside [-180, 180] once unwrapped (no ring is cut): the
    tests on every ring point are left out. False with NaN.
    """
    if not lons.size:
        return False
    low, high = float(lons.min()), float(lons.max())
    return high - low < 179.0 and low > -179.999 and high < 179.999


def unwrapped(lonlat: np.ndarray, ring: np.ndarray, calm: bool = False) -> np.ndarray:
    """Rings ``lonlat[ring]``, longitudes unwrapped by :func:`unwrap_longitudes`'s rule.

    The values are that function's, to the bit. Where every longitude is within 180
    degrees of its ring's first (all rings but those across the antimeridian or around a
    pole), the remainder by 360 that function takes is the identity and is skipped: it
    costs more than the rest of the unwrap. ``calm``: the points of ``lonlat`` are
    :func:`within_half_turn`, so that test on every ring point is left out too.
    """
    rings: np.ndarray = np.take(lonlat, ring, axis=0)  # faster than lonlat[ring]
    lons = rings[..., 0]
    if not lons.size:
        return rings
    first = lons[:, :1].copy()
    lons -= first
    lons += 180.0
    if calm or (lons.min() >= 0.0 and lons.max() < 360.0):  # False with NaN
        lons -= 180.0
        lons += first
    else:
        rings[..., 0] = unwrap_longitudes(lonlat[ring, 0])
    return rings


def project(lonlat: np.ndarray, frame: str) -> np.ndarray:
    """Project lon/lat geometries (already cut at the antimeridian) to ``frame``."""
    geoms = np.array(lonlat, dtype=object)
    coords = shapely.get_coordinates(geoms)
    xs, ys = reproject_points(LONLAT, frame, coords[:, 0], coords[:, 1])
    return np.asarray(shapely.set_coordinates(geoms, np.stack([xs, ys], axis=-1)))
