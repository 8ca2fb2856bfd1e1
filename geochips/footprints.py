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
from typing import NamedTuple

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
from geochips.footprint_points import Batch, scene_polygons
from geochips.footprint_rings import PROBE, STRAIGHT, Footprints, Mode, Parts, project
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
"""The coordinate functions (and :class:`Footprints`, :data:`STRAIGHT`) stay importable
from here, where they lived first."""

EQUAL_AREA = "EPSG:6933"
"""Default common frame for scenes in different CRSs: global, equal area, metres."""
DENSIFY = 8
"""Points per window side when edges are reprojected (they curve in another CRS)."""


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
    parts = Parts(len(scene_col), 4 * points_per_side)
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
                parts.other[rows[at_pole]] = geoms if lonlat else project(geoms, frame)
                rows, window = rows[~at_pole], tuple(v[~at_pole] for v in window)
                if not len(rows):
                    continue
            if near_pole(window, poles).any():
                # Near a pole a chip sweeps through many degrees of longitude: its edges
                # curve strongly in lon/lat and need more points than elsewhere.
                dense = max(points_per_side, POLAR_DENSIFY // 4)
        if native and scene.georef == "transform":
            parts.put(rows, scene_polygons(scene, frame, native, window, 1))
            continue
        if scene.georef == "transform":
            batches.setdefault((str(scene.crs), dense), []).append((scene, rows, window))
            continue
        _densify(parts, rows, dense, _OneScene(scene, frame, native, window).polygons)
    for (crs, dense), members in batches.items():
        batch = Batch.of(crs, frame, members)
        rows = np.concatenate([rows for _, rows, _ in members])
        _densify(parts, rows, dense, batch.polygons, sift=same_crs(frame, LONLAT))
    return parts.done()


SAMPLE = 16
"""Every this many chips are probed first, to choose between probing and sifting."""
Make = Callable[[np.ndarray, int, Mode], Footprints]
"""``(chips, k, mode)`` -> the footprints of those chips (positions) from ``k`` points a
side."""


def _densify(
    parts: Parts, rows: np.ndarray, dense: int, polygons: Make, sift: bool = False
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
        return scene_polygons(self.scene, self.frame, self.native, window, k, mode)


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
