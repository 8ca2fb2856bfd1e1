"""The leakage proof's engine: the chips of two splits that share ground, at any scale.

:func:`leaks` answers :func:`geochips.select.leakage.check_leakage`'s question by the rule
of :func:`geochips.select.conflicts.conflicts` (which the split obeys), but by other means,
so that a bug in one cannot hide itself in the other (the tests compare the two):

* Every chip lies in a **plane**: the north-up scenes of one projected CRS share the plane
  of that CRS (map units), every other scene is a plane of its own, in pixels. In a plane a
  chip is a rectangle, and chips that can meet lie in neighbouring **cells** of a grid whose
  cell is the largest chip plus the reach of ``buffer``. A cell whose neighbourhood holds
  one split is skipped whole, so only chips near a split's border are compared, by interval
  arithmetic; chips of one window in scenes of one grid (revisits of a tile) are compared
  once, as a **unit**.
* Scenes of different planes whose footprints meet (other CRSs, GCPs) are compared in the
  frame, only their units near a split's border, with :data:`AREA_TOLERANCE`; the scenes of
  a CRS that holds a rotated grid are compared by their exact footprints in it.
"""

from __future__ import annotations

import numpy as np
import rasterio.crs
import shapely

from geochips.errors import InvalidParameterError
from geochips.footprints import footprints, same_crs
from geochips.progress import Counter
from geochips.scene import Scene
from geochips.select.cells import WINDOW, Units, expand, group_units, neighbour_pairs, suspects
from geochips.select.conflicts import AREA_TOLERANCE
from geochips.select.ground import outlines

Found = tuple[np.ndarray, np.ndarray, np.ndarray, int]
"""``(a, b, overlap, compared)``: chip pairs ``a < b`` of two labels in conflict, and how
many candidate pairs (of units that may hold two labels) were compared."""


def leaks(
    scenes: list[Scene],
    columns: dict[str, np.ndarray],
    label: np.ndarray,
    buffer: float,
    frame: str | None,
    pixel_size: np.ndarray,
    counter: Counter | None = None,
) -> Found:
    """Return every pair of chips of two labels in conflict (``overlap``: sharing ground).

    ``pixel_size`` is each scene's pixel in frame units (``buffer`` is measured in them,
    in pixels within a scene); ``counter`` counts each chip twice, in its plane and in the
    frame.
    """
    scene = columns["scene"].astype(np.int64)
    group, crss = _crs_groups(scenes, np.unique(scene))
    rotated = np.zeros(len(crss), dtype=bool)
    for s in np.flatnonzero(group >= 0):
        rotated[group[s]] |= not _north_up(scenes[s])
    planar = (group >= 0) & ~np.r_[rotated, False][group]  # -1: the False at the end
    twin = _twins(scenes, group, planar)
    units = group_units(twin[scene], columns, label)
    found = [_in_planes(scenes, columns, label, units, group, planar, buffer, pixel_size)]
    if counter is not None:
        counter.add(len(scene))
    key = np.where(group >= 0, group, -1 - np.arange(len(scenes)))
    found.append(_in_frame(scenes, columns, label, units, key, twin, buffer, frame))
    for g in np.flatnonzero(rotated):
        rows = np.flatnonzero(group[scene] == g)
        found.append(_rotated(scenes, columns, label, rows, buffer))
    if counter is not None:
        counter.add(len(scene))
    a = np.concatenate([f[0] for f in found]).astype(np.int64)
    b = np.concatenate([f[1] for f in found]).astype(np.int64)
    overlap = np.concatenate([f[2] for f in found]).astype(bool)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    order = np.lexsort((hi, lo))
    return lo[order], hi[order], overlap[order], sum(f[3] for f in found)


def _crs_groups(scenes: list[Scene], used: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """A group per scene (-1: none): the scenes on affine grids of one projected CRS."""
    group = np.full(len(scenes), -1, dtype=np.int64)
    crss: list[str] = []
    for s in used.tolist():
        sc = scenes[s]
        if sc.georef != "transform" or sc.crs is None or sc.transform is None:
            continue
        if not rasterio.crs.CRS.from_user_input(sc.crs).is_projected:
            continue
        g = next((g for g, crs in enumerate(crss) if same_crs(crs, sc.crs)), len(crss))
        if g == len(crss):
            crss.append(sc.crs)
        group[s] = g
    return group, crss


def _north_up(scene: Scene) -> bool:
    t = scene.transform
    return t is not None and t.b == 0 and t.d == 0


def _twins(scenes: list[Scene], group: np.ndarray, planar: np.ndarray) -> np.ndarray:
    """One number per scene grid: scenes of one planar group with one transform share it."""
    twin = np.arange(len(scenes), dtype=np.int64)
    seen: dict[tuple[int, tuple[float, ...]], int] = {}
    for s in np.flatnonzero(planar).tolist():
        t = scenes[s].transform
        assert t is not None  # planar scenes are on affine grids
        twin[s] = seen.setdefault((int(group[s]), tuple(t)[:6]), s)
    return twin


def _rects(
    scenes: list[Scene], columns: dict[str, np.ndarray], rows: np.ndarray, planar: np.ndarray
) -> np.ndarray:
    """``(n, 4)`` rectangles ``x0, y0, x1, y1``: map units on planar scenes, else pixels."""
    scene = columns["scene"][rows]
    r0, c0, h, w = (np.asarray(columns[k])[rows].astype(np.float64) for k in WINDOW)
    out = np.stack([c0, r0, c0 + w, r0 + h], axis=1)
    on_map = planar[scene]
    if on_map.any():
        t = np.array([tuple(s.transform)[:6] if s.transform else (1, 0, 0, 0, 1, 0) for s in
                      scenes])[scene[on_map]]  # fmt: skip
        a, c, e, f = t[:, 0], t[:, 2], t[:, 4], t[:, 5]
        x0, x1 = c + c0[on_map] * a, c + (c0[on_map] + w[on_map]) * a
        y0, y1 = f + r0[on_map] * e, f + (r0[on_map] + h[on_map]) * e
        out[on_map] = np.stack(
            [np.minimum(x0, x1), np.minimum(y0, y1), np.maximum(x0, x1), np.maximum(y0, y1)],
            axis=1,
        )
    return out


def _in_planes(
    scenes: list[Scene],
    columns: dict[str, np.ndarray],
    label: np.ndarray,
    units: Units,
    group: np.ndarray,
    planar: np.ndarray,
    buffer: float,
    pixel_size: np.ndarray,
) -> Found:
    """Chips of one plane: windows within a scene, map rectangles across scenes."""
    scene = columns["scene"].astype(np.int64)
    first = units.first
    u_scene = scene[first]
    plane = np.where(planar[u_scene], group[u_scene], len(scenes) + u_scene)
    _, plane = np.unique(plane, return_inverse=True)
    plane = plane.ravel()
    box = _rects(scenes, columns, first, planar)
    buffer_px = buffer / pixel_size
    scale = np.ones(len(scenes))
    for s in np.flatnonzero(planar).tolist():
        t = scenes[s].transform
        assert t is not None
        scale[s] = max(abs(t.a), abs(t.e))
    reach = np.zeros(int(plane.max(initial=-1)) + 1)
    np.maximum.at(reach, plane, np.maximum(buffer_px[u_scene] * scale[u_scene],
                                           np.where(planar[u_scene], buffer, 0.0)))  # fmt: skip
    side = np.zeros_like(reach)
    np.maximum.at(side, plane, np.maximum(box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]))
    side = side + reach + 1e-9 * np.maximum(side, 1.0)
    inner = _inside(units, label)
    which, cell, span = suspects(plane, box, side, units.low, units.high)
    if not len(which):
        return inner
    p, q = neighbour_pairs(cell, span)
    u, v = which[p], which[q]
    capable = units.may_differ(u, v)
    u, v = u[capable], v[capable]
    gap_x = np.maximum(box[u, 0], box[v, 0]) - np.minimum(box[u, 2], box[v, 2])
    gap_y = np.maximum(box[u, 1], box[v, 1]) - np.minimum(box[u, 3], box[v, 3])
    distance = np.hypot(np.maximum(gap_x, 0), np.maximum(gap_y, 0))
    close = ((gap_x < 0) & (gap_y < 0)) | (distance < reach[plane[u]])
    a, b, _, _ = expand(units, label, u[close], v[close])
    return _judge_windows(scenes, columns, a, b, planar, buffer, buffer_px, inner, len(u))


def _inside(units: Units, label: np.ndarray) -> Found:
    """Chips of two labels in one unit: one window of one grid, so they share ground."""
    mixed = np.flatnonzero(units.low != units.high)
    a, b, _, compared = expand(units, label, mixed, mixed)
    keep = a < b  # each pair once (expand gives both orders within a unit)
    return a[keep], b[keep], np.ones(int(keep.sum()), dtype=bool), compared


def _judge_windows(
    scenes: list[Scene],
    columns: dict[str, np.ndarray],
    a: np.ndarray,
    b: np.ndarray,
    planar: np.ndarray,
    buffer: float,
    buffer_px: np.ndarray,
    inner: Found,
    compared: int,
) -> Found:
    """Decide chip pairs of one plane: pixel windows in one scene, rectangles across."""
    scene = columns["scene"].astype(np.int64)
    ra, rb = _rects(scenes, columns, a, planar), _rects(scenes, columns, b, planar)
    gap_x = np.maximum(ra[:, 0], rb[:, 0]) - np.minimum(ra[:, 2], rb[:, 2])
    gap_y = np.maximum(ra[:, 1], rb[:, 1]) - np.minimum(ra[:, 3], rb[:, 3])
    same = scene[a] == scene[b]
    r0, c0, h, w = (np.asarray(columns[k]).astype(np.float64) for k in WINDOW)
    row_gap = np.maximum(r0[a], r0[b]) - np.minimum(r0[a] + h[a], r0[b] + h[b])
    col_gap = np.maximum(c0[a], c0[b]) - np.minimum(c0[a] + w[a], c0[b] + w[b])
    overlap = np.where(same, (row_gap < 0) & (col_gap < 0), (gap_x < 0) & (gap_y < 0))
    px = np.hypot(np.maximum(row_gap, 0), np.maximum(col_gap, 0)) < buffer_px[scene[a]]
    on_map = np.hypot(np.maximum(gap_x, 0), np.maximum(gap_y, 0)) < buffer
    hit = overlap | np.where(same, px, on_map)
    return (
        np.r_[inner[0], a[hit]],
        np.r_[inner[1], b[hit]],
        np.r_[inner[2], overlap[hit]],
        inner[3] + compared,
    )


def _in_frame(
    scenes: list[Scene],
    columns: dict[str, np.ndarray],
    label: np.ndarray,
    units: Units,
    key: np.ndarray,
    twin: np.ndarray,
    buffer: float,
    frame: str | None,
) -> Found:
    """Units of scenes of different planes whose footprints meet, compared in ``frame``."""
    none: Found = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool), 0)
    scene = columns["scene"].astype(np.int64)
    used = np.unique(scene)
    if frame is None:
        return none
    geo, outline = outlines(scenes, used, frame)
    if len(np.unique(key[geo])) < 2:
        return none
    outline = _usable(outline, scenes, geo, frame)
    tree = shapely.STRtree(outline)
    if buffer > 0:
        p, q = tree.query(outline, predicate="dwithin", distance=buffer)
    else:
        p, q = tree.query(outline, predicate="intersects")
    meet = key[geo[p]] != key[geo[q]]
    crossing = np.zeros(len(scenes), dtype=bool)
    crossing[twin[geo[p[meet]]]] = True
    first = units.first
    chosen = np.flatnonzero(crossing[twin[scene[first]]])
    if not len(chosen):
        return none
    rep = first[chosen]
    cols = {k: np.asarray(columns[k])[rep] for k in ("scene", *WINDOW)}
    polys = _usable(footprints(scenes, cols, frame), scenes, scene[rep], frame)
    return _compare_polygons(units, label, chosen, polys, key[scene[rep]], buffer, exact=False)


def _rotated(
    scenes: list[Scene], columns: dict[str, np.ndarray], label: np.ndarray, rows: np.ndarray,
    buffer: float,
) -> Found:  # fmt: skip
    """Chips of different scenes of a CRS that holds a rotated grid: exact footprints."""
    units = group_units(rows, {k: np.zeros(len(rows), np.int64) for k in WINDOW}, label[rows])
    cols = {k: np.asarray(columns[k])[rows] for k in ("scene", *WINDOW)}
    polys = footprints(scenes, cols, "scene")
    key = np.asarray(columns["scene"])[rows].astype(np.int64)
    a, b, overlap, compared = _compare_polygons(
        units, label[rows], np.arange(len(rows)), polys, key, buffer, exact=True
    )
    return rows[a], rows[b], overlap, compared


def _compare_polygons(
    units: Units,
    label: np.ndarray,
    chosen: np.ndarray,
    polys: np.ndarray,
    key: np.ndarray,
    buffer: float,
    *,
    exact: bool,
) -> Found:
    """Units ``chosen`` (footprints ``polys``) of different ``key`` s near a split's border.

    ``exact``: interiors that meet (one CRS); else an intersection above
    :data:`AREA_TOLERANCE` of the smaller footprint (the frame).
    """
    parts, owner = shapely.get_parts(polys, return_index=True)
    bounds = shapely.bounds(parts)
    side = np.array([np.max(np.maximum(bounds[:, 2] - bounds[:, 0],
                                       bounds[:, 3] - bounds[:, 1]), initial=0.0)])  # fmt: skip
    side = side + buffer + 1e-9 * np.maximum(side, 1.0)
    plane = np.zeros(len(parts), np.int64)
    low, high = units.low[chosen][owner], units.high[chosen][owner]
    which, _, _ = suspects(plane, bounds, side, low, high)
    suspect = np.unique(owner[which])
    # Boxes first (no predicate): most pairs are of one key or one label and never
    # reach the exact comparison below.
    box = shapely.bounds(polys[suspect])
    tree = shapely.STRtree(shapely.box(*box.T))
    p, q = tree.query(shapely.box(*(box + np.array([-buffer, -buffer, buffer, buffer])).T))
    p, q = suspect[p], suspect[q]
    u, v = chosen[p], chosen[q]
    keep = (p < q) & (key[p] != key[q])
    keep &= units.may_differ(u, v)
    p, q = p[keep], q[keep]
    a, b = polys[p], polys[q]
    if exact:
        overlap = shapely.relate_pattern(a, b, "T********")
    else:
        shared = shapely.area(shapely.intersection(a, b))
        overlap = shared > AREA_TOLERANCE * np.minimum(shapely.area(a), shapely.area(b))
    near = np.zeros(len(p), dtype=bool)
    if buffer > 0:
        near = ~overlap & (shapely.distance(a, b) < buffer)
    hit = overlap | near
    x, y, pair, _ = expand(units, label, chosen[p[hit]], chosen[q[hit]])
    return x, y, overlap[hit][pair], len(p)


def _usable(polys: np.ndarray, scenes: list[Scene], scene: np.ndarray, frame: str) -> np.ndarray:
    """``polys``, or an error naming a scene whose chips have no footprint in ``frame``."""
    broken = np.flatnonzero(~shapely.is_valid_input(polys) | shapely.is_missing(polys))
    if len(broken) == 0:
        broken = np.flatnonzero(~np.isfinite(shapely.bounds(polys)).all(axis=1))
    if len(broken):
        sc = scenes[int(scene[broken[0]])]
        raise InvalidParameterError(
            f"{len(broken)} footprint(s) cannot be placed in {frame}, e.g. of scene "
            f"{sc.name} (its CRS {sc.crs} cannot be projected there); give another frame= "
            "or leave the scene out"
        )
    return polys
