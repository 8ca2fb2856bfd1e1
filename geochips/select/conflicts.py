"""Which chips share ground: the rule the leakage proof checks and the splits obey.

Every pair of chips that share ground, or come closer than ``buffer``, from candidates of a
shapely STRtree (so 100k chips take about a second): pixel windows for chips of one scene,
exact footprints in the CRS for scenes that share a projected CRS, and footprints in the
common frame otherwise, where reprojected edges allow a sliver of tolerance
(:data:`AREA_TOLERANCE`).

This is the split's engine: :func:`geochips.select.splits.spatial_split` uses it so that it
never builds a split the proof rejects. :func:`geochips.select.leakage.check_leakage`
applies the same rule by other means (:mod:`geochips.select.proof`, which never calls this
module's functions), and ``tests/select/test_proof.py`` compares the two pair for pair. It
imports nothing of the splitting (blocks, dealing, resolving): ``tests/shell/test_architecture.py``
checks both, and ``tests/select/test_splits.py`` checks the rule itself against oracles
that use neither footprints nor the STRtree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

import numpy as np
import rasterio.crs
import shapely

from geochips.footprints import footprints, has_ground, same_crs
from geochips.progress import Counter
from geochips.scene import Scene
from geochips.select.ground import CHUNK, Ground, pixel_sizes

Pairs: TypeAlias = tuple[np.ndarray, np.ndarray, np.ndarray, int]
"""``(i, j, overlap, candidates)``: pairs in conflict and the candidates judged."""

AREA_TOLERANCE = 1e-3
"""Footprints compared in the common frame (scenes in different CRSs, GCP scenes) share
ground when their intersection is larger than this fraction of the smaller one, i.e. a
strip half a pixel wide along a 512-pixel chip. Reprojected footprints are polylines
within a hundredth of a pixel of the truth (GCP fits are good to about a pixel), so chips
that only touch may overlap by a sliver that must not count."""


OVERLAP = "overlap"


NEAR = "buffer"


REASONS = {
    OVERLAP: "shares ground with a chip of another split",
    NEAR: "lies closer than `buffer` to a chip of another split",
}


def _pairs(
    tree_geoms: np.ndarray,
    query_geoms: np.ndarray,
    buffer: float,
    judge: Callable[[np.ndarray, np.ndarray], Pairs],
    counter: Counter | None,
) -> list[Pairs]:
    """Query the STRtree :data:`CHUNK` geometries at a time and ``judge`` each chunk's pairs.

    Chunks keep the pairs of one query in memory and give progress a step (one count per
    geometry queried); ``judge(q, t)`` sees indices into the whole arrays.
    """
    tree = shapely.STRtree(tree_geoms)
    out = []
    for start in range(0, len(query_geoms), CHUNK):
        chunk = query_geoms[start : start + CHUNK]
        if buffer > 0:
            q, t = tree.query(chunk, predicate="dwithin", distance=buffer)
        else:
            q, t = tree.query(chunk, predicate="intersects")
        out.append(judge(q + start, t))
        if counter is not None:
            counter.add(len(chunk))
    return out


def _passes(
    scenes: list[Scene], scene: np.ndarray, georef: np.ndarray
) -> tuple[list[tuple[str, np.ndarray]], np.ndarray, np.ndarray | None]:
    """Rows compared after those of one scene: per shared projected CRS, then in the frame.

    Returns ``(native, key, framed)``: the CRS and rows of each group of scenes compared
    exactly in their CRS (two scenes at least), a group key per scene (its own key for a
    scene in no group), and the georeferenced rows compared in the frame (``None`` when
    every such chip is in one group).
    """
    geo = np.flatnonzero(georef)
    groups, group_crss = _native_groups(scenes, {int(s) for s in np.unique(scene[geo])})
    native = []
    for g, crs in enumerate(group_crss):
        rows = geo[groups[scene[geo]] == g]
        if len(np.unique(scene[rows])) >= 2:
            native.append((crs, rows))
    key = np.where(groups >= 0, groups, -1 - np.arange(len(groups)))
    framed = geo if len(np.unique(key[scene[geo]])) > 1 else None
    return native, key, framed


def comparisons(scenes: list[Scene], columns: dict[str, np.ndarray]) -> int:
    """Return how many chip queries :func:`conflicts` makes (what its counter counts)."""
    scene = np.asarray(columns["scene"]).astype(np.int64)
    georef_scene = np.array([has_ground(s) for s in scenes], dtype=bool)
    georef = georef_scene[scene] if len(scene) else np.zeros(0, bool)
    native, _, framed = _passes(scenes, scene, georef)
    return (
        len(scene)
        + sum(len(rows) for _, rows in native)
        + len(framed if framed is not None else ())
    )


def conflicts(
    ground: Ground,
    buffer: float = 0.0,
    counter: Counter | None = None,
    label: np.ndarray | None = None,
    settled: np.ndarray | None = None,
) -> Pairs:
    """Return ``(i, j, overlap, candidates)``: every pair ``i < j`` of chips in conflict.

    ``overlap`` says whether the pair shares ground (else it is only closer than
    ``buffer``); ``candidates`` is how many pairs the spatial index proposed and were
    judged. With ``label`` (one per chip), only pairs of different labels are judged and
    returned (the split labels the chips that lie in one block by that block), which
    spares the exact comparisons of pairs that can never be split apart. Two ``settled``
    chips (a mask) are never compared in the frame, nor within a scene without a buffer:
    the split's chips that lie inside one block each, whose frame footprints are apart
    when the blocks differ. ``counter``
    counts the chips queried, :func:`comparisons` of them in all.
    """
    scene = ground.columns["scene"].astype(np.int64)
    none = np.zeros(0, np.int64)
    differ = _differ(label)
    same = _same_scene(ground, scene, buffer, counter, differ, settled)
    found = [(none, none, none, 0), *same]
    native, key, framed = _passes(ground.scenes, scene, ground.georef)
    for crs, rows in native:
        found += _same_crs(ground, scene, crs, rows, buffer, counter, differ)
    if framed is not None:
        found += _in_frame(ground, scene, key, framed, buffer, counter, differ, settled)
    i = np.concatenate([f[0] for f in found]).astype(np.int64)
    j = np.concatenate([f[1] for f in found]).astype(np.int64)
    overlap = np.concatenate([f[2] for f in found]).astype(bool)
    return i, j, overlap, sum(f[3] for f in found)


Differ: TypeAlias = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``differ(a, b)``: which pairs of rows are worth judging (all, or those of two labels)."""


def _differ(label: np.ndarray | None) -> Differ:
    if label is None:
        return lambda a, b: np.ones(len(a), dtype=bool)
    return lambda a, b: label[a] != label[b]


def _same_scene(
    ground: Ground,
    scene: np.ndarray,
    buffer: float,
    counter: Counter | None,
    differ: Differ,
    settled: np.ndarray | None,
) -> list[Pairs]:
    """Chips of one scene: their pixel windows, exactly.

    Scenes are laid side by side in one plane, far enough apart never to meet. Without a
    buffer, two ``settled`` chips are never paired: windows that overlap share a whole
    pixel, so their frame footprints overlap and lie in one block.
    """
    c = ground.columns
    r0 = c["row_off"].astype(np.float64)
    c0 = c["col_off"].astype(np.float64)
    r1 = r0 + c["height"]
    c1 = c0 + c["width"]
    if buffer > 0:
        buffer_px = buffer / pixel_sizes(ground.scenes, scene, ground.frame)  # per scene
    else:
        buffer_px = np.zeros(len(ground.scenes))
    max_buffer_px = float(buffer_px.max()) if len(buffer_px) else 0.0
    extent = np.zeros(len(ground.scenes))
    if len(scene):
        np.maximum.at(extent, scene, c1)
    gap = max_buffer_px + 1.0
    shift = np.concatenate([[0.0], np.cumsum(extent + gap)[:-1]]) if len(extent) else extent
    boxes = shapely.box(c0 + shift[scene], r0, c1 + shift[scene], r1)

    apart = settled if settled is not None and buffer == 0 else None
    asked = np.flatnonzero(~apart) if apart is not None else np.arange(len(scene))

    def judge(k: np.ndarray, t: np.ndarray) -> Pairs:
        q = asked[k]
        once = (q < t) if apart is None else (apart[t] | (q < t))  # each pair once
        keep = once & (q != t) & (scene[q] == scene[t])
        q, t = q[keep], t[keep]
        keep = differ(q, t)
        q, t = q[keep], t[keep]
        row_gap = np.maximum(r0[q], r0[t]) - np.minimum(r1[q], r1[t])
        col_gap = np.maximum(c0[q], c0[t]) - np.minimum(c1[q], c1[t])
        overlap = (row_gap < 0) & (col_gap < 0)
        near = np.hypot(np.maximum(row_gap, 0), np.maximum(col_gap, 0)) < buffer_px[scene[q]]
        hit = overlap | near
        lo, hi = np.minimum(q[hit], t[hit]), np.maximum(q[hit], t[hit])
        return lo, hi, overlap[hit], len(q)

    out = _pairs(boxes, boxes[asked], max_buffer_px, judge, counter)
    if counter is not None:
        counter.add(len(scene) - len(asked))  # the settled chips, never queried
    return out


def _same_crs(
    ground: Ground,
    scene: np.ndarray,
    crs: str,
    rows: np.ndarray,
    buffer: float,
    counter: Counter | None,
    differ: Differ,
) -> list[Pairs]:
    """Chips of different scenes in one projected CRS, on affine grids.

    Their exact footprints in that CRS are compared (``buffer`` is measured in it).
    """
    if ground.frame is not None and same_crs(crs, ground.frame):
        exact = ground.polygons[rows]
    elif all(_north_up(ground.scenes[s]) for s in np.unique(scene[rows]).tolist()):
        exact = _rectangles(ground.scenes, _rows(ground.columns, rows))  # no PROJ needed
    else:
        exact = footprints(ground.scenes, _rows(ground.columns, rows), "scene")

    def judge(q: np.ndarray, t: np.ndarray) -> Pairs:
        keep = (q < t) & (scene[rows[q]] != scene[rows[t]])
        q, t = q[keep], t[keep]
        keep = differ(rows[q], rows[t])
        q, t = q[keep], t[keep]
        overlap, near = _exact_conflicts(ground.scenes, scene[rows], exact, q, t, buffer)
        hit = overlap | near
        return rows[q[hit]], rows[t[hit]], overlap[hit], len(q)

    return _pairs(exact, exact, buffer, judge, counter)


def _in_frame(
    ground: Ground,
    scene: np.ndarray,
    key: np.ndarray,
    geo: np.ndarray,
    buffer: float,
    counter: Counter | None,
    differ: Differ,
    settled: np.ndarray | None,
) -> list[Pairs]:
    """Chips of scenes in different CRSs, or georeferenced by GCPs.

    Their footprints in the common frame are compared, where reprojected edges allow a
    sliver of tolerance. Each group's chips are queried against a tree of the groups after
    it only, so pairs of one group (compared exactly elsewhere) are never proposed; two
    ``settled`` chips are never paired either.
    """
    group = key[scene[geo]]
    order = np.argsort(group, kind="stable")
    starts = np.flatnonzero(np.r_[True, group[order][1:] != group[order][:-1]])
    ends = np.r_[starts[1:], len(order)]
    out: list[Pairs] = []
    for start, end in zip(starts[:-1].tolist(), ends[:-1].tolist(), strict=True):
        mine, later = geo[order[start:end]], geo[order[end:]]
        halves = [(mine, later)]
        if settled is not None:
            halves = [(mine[~settled[mine]], later), (mine[settled[mine]], later[~settled[later]])]
        for m, t in halves:
            if len(m) and len(t):
                judge = _frame_judge(ground, m, t, buffer, differ)
                out += _pairs(ground.polygons[t], ground.polygons[m], buffer, judge, None)
        if counter is not None:
            counter.add(end - start)
    if counter is not None and len(starts):
        counter.add(int(ends[-1] - starts[-1]))
    return out


def inner_boxes(polygons: np.ndarray) -> np.ndarray:
    """``(n, 4)`` boxes inside each footprint: between the middle two of its corners' x and y.

    Chip footprints are convex quadrilaterals within a hundredth of a pixel (their sides
    densified), so the box spanned by the 2nd and 3rd smallest corner x and y lies inside,
    shrunk here by 1 % of its size for the curvature; empty (NaN) for anything else.
    """
    out = np.full((len(polygons), 4), np.nan)
    simple = shapely.get_type_id(polygons) == 3  # Polygon; MultiPolygons cut at a seam: none
    simple &= shapely.get_num_interior_rings(polygons) == 0
    rows = np.flatnonzero(simple)
    counts = shapely.get_num_coordinates(polygons[rows])
    rows = rows[(counts - 1) % 4 == 0]  # rings of 4 sides of equal points, closed
    if not len(rows):
        return out
    counts = shapely.get_num_coordinates(polygons[rows])
    xy = shapely.get_coordinates(polygons[rows])
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    side = (counts - 1) // 4
    corners = xy[starts[:, None] + side[:, None] * np.arange(4)]  # (m, 4, 2)
    x, y = np.sort(corners[..., 0], axis=1), np.sort(corners[..., 1], axis=1)
    box = np.stack([x[:, 1], y[:, 1], x[:, 2], y[:, 2]], axis=1)
    pad = 0.01 * np.stack([box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]], axis=1)
    box[:, :2] += pad
    box[:, 2:] -= pad
    out[rows] = box
    return out


def _frame_judge(
    ground: Ground, mine: np.ndarray, later: np.ndarray, buffer: float, differ: Differ
) -> Callable[[np.ndarray, np.ndarray], Pairs]:
    """Judge pairs ``(mine[q], later[t])`` by their footprints in the frame.

    Pairs whose inner boxes (:func:`inner_boxes`) already share more than the tolerance
    overlap for sure; only the others are intersected exactly.
    """
    boxes = {"mine": inner_boxes(ground.polygons[mine]),
             "later": inner_boxes(ground.polygons[later])}  # fmt: skip

    def judge(q: np.ndarray, t: np.ndarray) -> Pairs:
        keep = differ(mine[q], later[t])
        q, t = q[keep], t[keep]
        a_rows, b_rows = mine[q], later[t]
        a, b = ground.polygons[a_rows], ground.polygons[b_rows]
        smaller = np.minimum(shapely.area(a), shapely.area(b))
        ba, bb = boxes["mine"][q], boxes["later"][t]
        w = np.minimum(ba[:, 2], bb[:, 2]) - np.maximum(ba[:, 0], bb[:, 0])
        h = np.minimum(ba[:, 3], bb[:, 3]) - np.maximum(ba[:, 1], bb[:, 1])
        with np.errstate(invalid="ignore"):
            overlap = np.maximum(w, 0) * np.maximum(h, 0) > AREA_TOLERANCE * smaller
        unsure = ~overlap
        shared = shapely.area(shapely.intersection(a[unsure], b[unsure]))
        overlap[unsure] = shared > AREA_TOLERANCE * smaller[unsure]
        near = np.zeros(len(a_rows), dtype=bool)
        if buffer > 0:
            near = shapely.distance(a, b) < buffer
        hit = overlap | near
        lo, hi = np.minimum(a_rows, b_rows), np.maximum(a_rows, b_rows)
        return lo[hit], hi[hit], overlap[hit], len(a_rows)

    return judge


def _native_groups(scenes: list[Scene], used: set[int]) -> tuple[np.ndarray, list[str]]:
    """Return a group per scene (-1: none) and the CRS of each group.

    Scenes of one group share a projected CRS and lie on affine grids, so their chips can
    be compared exactly in it; the others (GCPs, geographic CRSs) go through the frame.
    """
    groups = np.full(len(scenes), -1, dtype=np.int64)
    crss: list[str] = []
    for s in sorted(used):
        scene = scenes[s]
        if scene.georef != "transform" or scene.crs is None:
            continue
        if not rasterio.crs.CRS.from_user_input(scene.crs).is_projected:
            continue
        for g, crs in enumerate(crss):
            if same_crs(crs, scene.crs):
                groups[s] = g
                break
        else:
            crss.append(scene.crs)
            groups[s] = len(crss) - 1
    return groups, crss


def _exact_conflicts(
    scenes: list[Scene],
    scene: np.ndarray,
    exact: np.ndarray,
    q: np.ndarray,
    t: np.ndarray,
    buffer: float,
) -> tuple[np.ndarray, np.ndarray]:
    """``(overlap, near)`` of pairs of exact footprints in one CRS.

    North-up grids give rectangles, compared by their intervals; rotated ones are
    compared by their interiors (DE-9IM ``T********``).
    """
    north_up = np.array([_north_up(s) for s in scenes], dtype=bool)
    rect = north_up[scene[q]] & north_up[scene[t]]
    overlap = np.zeros(len(q), dtype=bool)
    near = np.zeros(len(q), dtype=bool)
    bq, bt = shapely.bounds(exact[q[rect]]), shapely.bounds(exact[t[rect]])
    gap_x = np.maximum(bq[:, 0], bt[:, 0]) - np.minimum(bq[:, 2], bt[:, 2])
    gap_y = np.maximum(bq[:, 1], bt[:, 1]) - np.minimum(bq[:, 3], bt[:, 3])
    overlap[rect] = (gap_x < 0) & (gap_y < 0)
    near[rect] = ~overlap[rect] & (np.hypot(np.maximum(gap_x, 0), np.maximum(gap_y, 0)) < buffer)
    skew = ~rect
    if skew.any():
        a, b = exact[q[skew]], exact[t[skew]]
        overlap[skew] = shapely.relate_pattern(a, b, "T********")
        if buffer > 0:
            near[skew] = ~overlap[skew] & (shapely.distance(a, b) < buffer)
    return overlap, near


def _rectangles(scenes: list[Scene], columns: dict[str, np.ndarray]) -> np.ndarray:
    """Footprints of chips of north-up scenes in their CRS: boxes from the transforms."""
    t = np.array([tuple(s.transform or (1, 0, 0, 0, 1, 0))[:6] for s in scenes])
    t = t[columns["scene"]]
    r0, c0 = columns["row_off"].astype(np.float64), columns["col_off"].astype(np.float64)
    r1, c1 = r0 + columns["height"], c0 + columns["width"]
    x0, x1 = t[:, 2] + c0 * t[:, 0], t[:, 2] + c1 * t[:, 0]
    y0, y1 = t[:, 5] + r0 * t[:, 4], t[:, 5] + r1 * t[:, 4]
    lo_x, lo_y, hi_x, hi_y = (
        np.minimum(x0, x1),
        np.minimum(y0, y1),
        np.maximum(x0, x1),
        np.maximum(y0, y1),
    )
    return np.asarray(shapely.box(lo_x, lo_y, hi_x, hi_y))


def _north_up(scene: Scene) -> bool:
    t = scene.transform
    return t is not None and t.b == 0 and t.d == 0


def _rows(columns: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    return {k: columns[k][rows] for k in ("scene", "row_off", "col_off", "height", "width")}
