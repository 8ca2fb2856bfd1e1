"""The points of many windows' rings through PROJ once: shared corners, one call per CRS.

Chips on a grid share their corners (four chips at each, more with overlap) and, densified,
the points along their sides: each distinct pixel point is transformed once. Points of
whole-pixel rings are placed on a lattice per scene without sorting (:func:`lattice_points`);
other windows are made distinct scene by scene (:func:`scene_points`). Scenes of one CRS with
an affine transform go to lon/lat together (:class:`Batch`), whatever their number.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import numpy as np
from rasterio.errors import NotGeoreferencedWarning

from geochips.coordinates import LONLAT, pixel_to_scene_crs, reproject_points, window_rings
from geochips.errors import InvalidParameterError
from geochips.footprint_rings import (
    Footprints,
    Mode,
    lonlat_polygons,
    ring_polygons,
    sifted,
    unwrapped,
    within_half_turn,
)
from geochips.scene import Scene


class Batch(NamedTuple):
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
    ) -> Batch:
        """The chips of ``members`` (scene, its rows, its windows), in that order."""
        sizes = [len(rows) for _, rows, _ in members]
        at = np.repeat(np.arange(len(members)), sizes)
        affine = np.array([tuple(scene.transform)[:6] for scene, _, _ in members])  # type: ignore[arg-type]
        window = tuple(np.concatenate([w[i] for _, _, w in members]) for i in range(4))
        return cls(crs, frame, at, affine, window)

    def polygons(self, chips: np.ndarray, k: int, mode: Mode) -> Footprints:
        """Footprints of ``chips`` (positions in the batch) from ``k`` points a side."""
        at, window = self.at[chips], tuple(v[chips] for v in self.window)
        points = lattice_points(at, window, k) or scene_points(at, window, k)
        # A row per coefficient, each contiguous (a column of (p, 6) is strided).
        a, b, c, d, e, f = np.take(self.affine.T, points.scene, axis=1)
        cols, rows = points.cols, points.rows
        xs, ys = a * cols + b * rows + c, d * cols + e * rows + f
        lons, lats = to_lonlat(self.crs, xs, ys)
        lonlat = np.empty((points.size, 2))  # the lattice's unused points stay unset
        lonlat[points.spot, 0], lonlat[points.spot, 1] = lons, lats
        pixels = np.maximum(window[2], window[3])
        calm = within_half_turn(lons)
        rings = unwrapped(lonlat, points.ring, calm)
        if mode == "sift":
            return sifted(rings, k, pixels, calm)
        return lonlat_polygons(rings, self.frame, k, pixels, mode)


class Points(NamedTuple):
    """Distinct pixel points of rings, and where each ring point is among them."""

    scene: np.ndarray
    """``(p,)`` the scene of each point (a row of :attr:`Batch.affine`)."""
    cols: np.ndarray
    rows: np.ndarray
    spot: np.ndarray
    """``(p,)`` where each point goes in a table of :attr:`size` (``arange(p)`` but for a
    lattice)."""
    size: int
    ring: np.ndarray
    """``(n, 4 * k)`` each ring point's spot in that table."""


def lattice_points(at: np.ndarray, window: tuple[np.ndarray, ...], k: int) -> Points | None:
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
    return Points(at[starts][scene], cols, rows, spot, len(used), index)


def scene_points(at: np.ndarray, window: tuple[np.ndarray, ...], k: int) -> Points:
    """The rings' distinct points scene by scene (any windows; chips come by scene)."""
    r_off, c_off, hgt, wid = window
    cols, rows = window_rings(r_off, c_off, hgt, wid, k)
    starts = np.flatnonzero(np.r_[True, at[1:] != at[:-1]]).tolist()
    index = np.empty(cols.shape, dtype=np.int64)
    scene, found_c, found_r = [], [], []
    total = 0
    for a, b in zip(starts, [*starts[1:], len(at)], strict=True):
        uc, ur, back = distinct_points(cols[a:b], rows[a:b])
        index[a:b] = (back + total).reshape(b - a, -1)
        scene.append(np.full(len(uc), at[a]))
        found_c.append(uc)
        found_r.append(ur)
        total += len(uc)
    cols_at, rows_at = (np.concatenate(v).astype(np.float64) for v in (found_c, found_r))
    return Points(np.concatenate(scene), cols_at, rows_at, np.arange(total), total, index)


def scene_polygons(
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
    uc, ur, back = distinct_points(cols, prows)
    xs, ys = pixel_to_scene_crs(scene, uc, ur)
    ring = back.reshape(cols.shape)
    if native:
        return ring_polygons(np.stack([xs, ys], axis=-1)[ring], k, pixels, mode)
    lons, lats = to_lonlat(scene.crs, xs, ys)
    return lonlat_polygons(unwrapped(np.stack([lons, lats], axis=-1), ring), frame, k, pixels, mode)


def distinct_points(
    cols: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


def to_lonlat(crs: str | None, xs: np.ndarray, ys: np.ndarray) -> tuple[Any, Any]:
    """Scene CRS -> lon/lat (not unwrapped: the caller unwraps each ring)."""
    if crs is None:
        raise InvalidParameterError("a scene without CRS or GCPs has no ground footprint")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        return reproject_points(crs, LONLAT, xs, ys)
