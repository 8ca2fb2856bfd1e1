"""Proof that splits do not leak: no two chips of different splits share ground or pixels.

:func:`check_leakage` knows nothing of how the splits were made. It compares every pair of
chips of different splits (candidates from a shapely STRtree, so 100k chips take about a
second): pixel windows for chips of one scene, exact footprints in the CRS for scenes that
share a projected CRS, and footprints in a common **frame** otherwise (EPSG:6933, global and
equal-area, unless all scenes share one projected CRS), where reprojected edges allow a
sliver of tolerance (:data:`AREA_TOLERANCE`). :func:`conflicts` is the same comparison,
which :func:`geochips.select.splits.spatial_split` uses to keep its splits apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import rasterio.crs
import shapely

from geochips.errors import InvalidParameterError, LeakageError
from geochips.footprints import EQUAL_AREA, footprints, has_ground, same_crs
from geochips.scene import Scene

if TYPE_CHECKING:
    from geochips.index import ChipIndex

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


@dataclass(frozen=True)
class LeakageReport:
    """What :func:`check_leakage` compared and found."""

    chips: int
    """Chips compared, over all splits."""
    pairs_checked: int
    """Candidate pairs (from the spatial index) whose footprints were compared."""
    leaks: list[tuple[str, str, str, str, str]]
    """``(split_a, chip_id_a, split_b, chip_id_b, kind)``, ``kind`` ``"overlap"`` or
    ``"buffer"``."""

    @property
    def ok(self) -> bool:
        """Whether no two chips of different splits share ground (or come too close)."""
        return not self.leaks


def choose_frame(scenes: tuple[Scene, ...] | list[Scene]) -> str | None:
    """Return the CRS to compare ground in: the scenes' own projected CRS, or EPSG:6933."""
    crss = [s.crs for s in scenes if has_ground(s) and s.crs is not None]
    if not crss:
        return None
    first = crss[0]
    if all(same_crs(first, c) for c in crss[1:]) and all(
        s.georef == "transform" for s in scenes if has_ground(s)
    ):
        if rasterio.crs.CRS.from_user_input(first).is_projected:
            return first
    return EQUAL_AREA


@dataclass
class Ground:
    """Footprints of every chip of a (combined) index, as conflicts need them."""

    scenes: list[Scene]
    columns: dict[str, np.ndarray]
    frame: str | None
    polygons: np.ndarray
    """Frame footprints for georeferenced chips, pixel boxes for the others."""
    georef: np.ndarray
    """Whether the chip's scene has ground coordinates."""


def chip_ground(scenes: list[Scene], columns: dict[str, np.ndarray], frame: str | None) -> Ground:
    """Return the footprints of the chips in ``columns``, in ``frame`` (pixels if none).

    Raises:
        InvalidParameterError: if a chip has no usable footprint in ``frame``.
    """
    n = len(columns["scene"])
    georef_scene = np.array([has_ground(s) for s in scenes], dtype=bool)
    georef = georef_scene[columns["scene"]] if n else np.zeros(0, bool)
    polygons = np.full(n, None, dtype=object)
    if georef.any():
        if frame is None:
            raise InvalidParameterError("a frame CRS is needed for georeferenced scenes")
        polygons = footprints(scenes, columns, frame)
    if (~georef).any():
        boxes = footprints(scenes, columns, "pixel")
        polygons[~georef] = boxes[~georef]
    broken = np.flatnonzero(~shapely.is_valid_input(polygons) | shapely.is_missing(polygons))
    if len(broken) == 0:
        bounds = shapely.bounds(polygons)
        broken = np.flatnonzero(~np.isfinite(bounds).all(axis=1))
    if len(broken):
        scene = scenes[int(columns["scene"][broken[0]])]
        raise InvalidParameterError(
            f"{len(broken)} chip(s) have no usable footprint in {frame}, e.g. in scene "
            f"{scene.name} (its CRS {scene.crs} cannot be projected there); give another "
            "frame= or leave the scene out"
        )
    return Ground(scenes, columns, frame, polygons, georef)


def _pixel_sizes(ground: Ground) -> np.ndarray:
    """Ground size of a pixel of each scene, in frame units (1 for pixel-only scenes)."""
    c = ground.columns
    sizes = np.ones(len(ground.scenes))
    if not ground.georef.any():
        return sizes
    area = np.full(len(c["scene"]), np.nan)
    area[ground.georef] = shapely.area(ground.polygons[ground.georef])
    per_px = np.sqrt(area / (c["height"].astype(np.float64) * c["width"]))
    for s, scene in enumerate(ground.scenes):
        if has_ground(scene):
            values = per_px[(c["scene"] == s) & np.isfinite(per_px)]
            if len(values):
                sizes[s] = float(np.median(values))
    return sizes


def _pairs(
    tree_geoms: np.ndarray, query_geoms: np.ndarray, buffer: float
) -> tuple[np.ndarray, np.ndarray]:
    tree = shapely.STRtree(tree_geoms)
    if buffer > 0:
        q, t = tree.query(query_geoms, predicate="dwithin", distance=buffer)
    else:
        q, t = tree.query(query_geoms, predicate="intersects")
    return q, t


def conflicts(
    ground: Ground, buffer: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Return ``(i, j, overlap, candidates)``: every pair ``i < j`` of chips in conflict.

    ``overlap`` says whether the pair shares ground (else it is only closer than
    ``buffer``); ``candidates`` is how many pairs the spatial index proposed.
    """
    c = ground.columns
    scene = c["scene"].astype(np.int64)
    r0 = c["row_off"].astype(np.float64)
    c0 = c["col_off"].astype(np.float64)
    r1 = r0 + c["height"]
    c1 = c0 + c["width"]
    out_i, out_j, out_o = [], [], []
    candidates = 0

    # 1. Chips of one scene: their pixel windows, exactly. Scenes are laid side by side in
    #    one plane, far enough apart never to meet.
    px = _pixel_sizes(ground)
    buffer_px = buffer / px  # per scene
    max_buffer_px = float(buffer_px.max()) if len(buffer_px) else 0.0
    extent = np.zeros(len(ground.scenes))
    if len(scene):
        np.maximum.at(extent, scene, c1)
    gap = max_buffer_px + 1.0
    shift = np.concatenate([[0.0], np.cumsum(extent + gap)[:-1]]) if len(extent) else extent
    boxes = shapely.box(c0 + shift[scene], r0, c1 + shift[scene], r1)
    q, t = _pairs(boxes, boxes, max_buffer_px)
    keep = (q < t) & (scene[q] == scene[t])
    q, t = q[keep], t[keep]
    candidates += len(q)
    row_gap = np.maximum(r0[q], r0[t]) - np.minimum(r1[q], r1[t])
    col_gap = np.maximum(c0[q], c0[t]) - np.minimum(c1[q], c1[t])
    overlap = (row_gap < 0) & (col_gap < 0)
    near = np.hypot(np.maximum(row_gap, 0), np.maximum(col_gap, 0)) < buffer_px[scene[q]]
    hit = overlap | near
    out_i.append(q[hit])
    out_j.append(t[hit])
    out_o.append(overlap[hit])

    # 2. Chips of different scenes in one projected CRS, on affine grids: their exact
    #    footprints in that CRS (``buffer`` is measured in it).
    geo = np.flatnonzero(ground.georef)
    groups, group_crss = _native_groups(ground.scenes, {int(s) for s in np.unique(scene[geo])})
    for g, crs in enumerate(group_crss):
        rows = geo[groups[scene[geo]] == g]
        if len(np.unique(scene[rows])) < 2:
            continue
        if ground.frame is not None and same_crs(crs, ground.frame):
            exact = ground.polygons[rows]
        else:
            exact = footprints(ground.scenes, _rows(c, rows), "scene")
        q, t = _pairs(exact, exact, buffer)
        keep = (q < t) & (scene[rows[q]] != scene[rows[t]])
        q, t = q[keep], t[keep]
        candidates += len(q)
        overlap, near = _exact_conflicts(ground.scenes, scene[rows], exact, q, t, buffer)
        hit = overlap | near
        out_i.append(rows[q[hit]])
        out_j.append(rows[t[hit]])
        out_o.append(overlap[hit])

    # 3. Chips of scenes in different CRSs, or georeferenced by GCPs: footprints in the
    #    common frame, where reprojected edges allow a sliver of tolerance.
    key = np.where(groups >= 0, groups, -1 - np.arange(len(groups)))
    if len(np.unique(key[scene[geo]])) > 1:
        polys = ground.polygons[geo]
        q, t = _pairs(polys, polys, buffer)
        keep = (q < t) & (key[scene[geo[q]]] != key[scene[geo[t]]])
        q, t = geo[q[keep]], geo[t[keep]]
        candidates += len(q)
        a, b = ground.polygons[q], ground.polygons[t]
        shared = shapely.area(shapely.intersection(a, b))
        smaller = np.minimum(shapely.area(a), shapely.area(b))
        overlap = shared > AREA_TOLERANCE * smaller
        near = np.zeros(len(q), dtype=bool)
        if buffer > 0:
            near = shapely.distance(a, b) < buffer
        hit = overlap | near
        out_i.append(q[hit])
        out_j.append(t[hit])
        out_o.append(overlap[hit])
    i = np.concatenate(out_i).astype(np.int64)
    j = np.concatenate(out_j).astype(np.int64)
    return i, j, np.concatenate(out_o).astype(bool), candidates


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


def _north_up(scene: Scene) -> bool:
    t = scene.transform
    return t is not None and t.b == 0 and t.d == 0


def _rows(columns: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    return {k: columns[k][rows] for k in ("scene", "row_off", "col_off", "height", "width")}


def window_columns(index: ChipIndex) -> dict[str, np.ndarray]:
    """Return the window columns of ``index`` (scene, offsets, sizes) as plain arrays."""
    return {
        k: np.asarray(index.column(k)) for k in ("scene", "row_off", "col_off", "height", "width")
    }


def check_length(value: float | None, name: str) -> float | None:
    """Return ``block`` or ``buffer`` as a float, refusing negatives (and a zero block)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise InvalidParameterError(f"{name} must be a number, got {name}={value!r}")
    if not np.isfinite(value) or value < 0 or (name == "block" and value == 0):
        raise InvalidParameterError(
            f"{name} must be {'positive' if name == 'block' else '>= 0'} and finite, "
            f"got {name}={value!r}"
        )
    return float(value)


def check_leakage(
    splits: Mapping[str, ChipIndex],
    *,
    buffer: float = 0.0,
    frame: str | None = None,
    raise_on_leak: bool = True,
    max_listed: int = 20,
) -> LeakageReport:
    """Verify that no two chips of different splits share ground or pixels.

    Independent of how the splits were made: the indexes may come from
    :func:`spatial_split`, from a saved file, or from anywhere else (scenes are matched by
    their headers). Chips of one scene are compared by their pixel windows; chips of
    different scenes in one CRS by their exact footprints (positive-area intersection);
    others in ``frame`` (default EPSG:6933, or the scenes' common projected CRS), where an
    intersection counts when it exceeds :data:`AREA_TOLERANCE` of the smaller footprint.

    Args:
        splits: split name -> index.
        buffer: also report pairs closer than this (frame units; pixels for scenes with
            neither CRS nor GCPs).
        frame: CRS to compare scenes of different CRSs in.
        raise_on_leak: raise :class:`~geochips.LeakageError` (else only report).
        max_listed: chip-id pairs listed in the error message.

    Raises:
        LeakageError: listing offending chip-id pairs (all of them in ``.leaks``).
    """
    if not isinstance(splits, Mapping):
        raise InvalidParameterError(
            f"check_leakage takes a mapping of split names to ChipIndexes, got "
            f"{type(splits).__name__}"
        )
    buffer_v = check_length(buffer, "buffer") or 0.0
    scenes: list[Scene] = []
    positions: dict[Scene, int] = {}
    parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("scene", "row_off", "col_off", "height", "width")
    }
    labels: list[np.ndarray] = []
    ids: list[str] = []
    names = list(splits)
    for k, name in enumerate(names):
        index = splits[name]
        remap = np.array(
            [positions.setdefault(s, len(positions)) for s in index.scenes], dtype=np.int64
        )
        for s in index.scenes:
            if positions[s] == len(scenes):
                scenes.append(s)
        cols = window_columns(index)
        parts["scene"].append(
            remap[cols["scene"]] if len(index) else cols["scene"].astype(np.int64)
        )
        for key in ("row_off", "col_off", "height", "width"):
            parts[key].append(cols[key])
        labels.append(np.full(len(index), k, dtype=np.int64))
        ids.extend(index.chip_ids)
    columns = {k: np.concatenate(v) if v else np.zeros(0, np.int64) for k, v in parts.items()}
    label = np.concatenate(labels) if labels else np.zeros(0, np.int64)
    n = len(label)
    if n == 0:
        return LeakageReport(0, 0, [])
    used = {int(s) for s in np.unique(columns["scene"])}
    frame = frame or choose_frame([scenes[s] for s in used])
    ground = chip_ground(scenes, columns, frame)
    i, j, overlap, candidates = conflicts(ground, buffer_v)
    leak = label[i] != label[j]
    leaks = [
        (names[label[a]], ids[a], names[label[b]], ids[b], OVERLAP if o else NEAR)
        for a, b, o in zip(i[leak].tolist(), j[leak].tolist(), overlap[leak].tolist(), strict=True)
    ]
    report = LeakageReport(n, candidates, leaks)
    if leaks and raise_on_leak:
        listed = "\n  ".join(
            f"{sa}:{a} <-> {sb}:{b} ({'share ground' if kind == OVERLAP else 'closer than buffer'})"
            for sa, a, sb, b, kind in leaks[:max_listed]
        )
        more = f"\n  ... and {len(leaks) - max_listed} more" if len(leaks) > max_listed else ""
        a, b = int(i[leak][0]), int(j[leak][0])
        where = " and ".join(
            f"scene {scenes[int(columns['scene'][p])].name}"
            for p in ((a, b) if columns["scene"][a] != columns["scene"][b] else (a,))
        )
        raise LeakageError(
            f"{len(leaks)} pair(s) of chips in different splits share ground or pixels "
            f"(of {n} chips), the first in {where}:\n  {listed}{more}\nSplit with "
            "geochips.spatial_split, or drop one chip of each pair",
            report,
        )
    return report
