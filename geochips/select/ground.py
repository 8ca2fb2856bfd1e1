"""The ground of each chip: its footprint in one frame CRS, or its pixel box without one.

What :func:`~geochips.select.leakage.check_leakage` compares and what
:func:`~geochips.select.splits.spatial_split` cuts into blocks: :func:`choose_frame` picks
the frame (the scenes' own projected CRS, else EPSG:6933), :func:`chip_ground` places every
chip in it. Nothing here decides which chips conflict; that rule is the proof's
(:func:`geochips.select.leakage.conflicts`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import rasterio.crs
import shapely

from geochips.errors import InvalidParameterError
from geochips.footprints import EQUAL_AREA, footprints, has_ground, same_crs
from geochips.progress import Counter
from geochips.scene import Scene

if TYPE_CHECKING:
    from geochips.index import ChipIndex

CHUNK = 1 << 16
"""Chips placed (and compared, in :mod:`~geochips.select.conflicts`) at a time: the step of
their progress, large enough that the chunking costs nothing measurable."""


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


def chip_ground(
    scenes: list[Scene],
    columns: dict[str, np.ndarray],
    frame: str | None,
    counter: Counter | None = None,
) -> Ground:
    """Return the footprints of the chips in ``columns``, in ``frame`` (pixels if none).

    Args:
        scenes: the scenes ``columns["scene"]`` points into.
        columns: the window columns (:func:`window_columns`).
        frame: the CRS to place georeferenced chips in.
        counter: counts the chips placed, :data:`CHUNK` at a time.

    Raises:
        InvalidParameterError: if a chip has no usable footprint in ``frame``.
    """
    n = len(columns["scene"])
    georef_scene = np.array([has_ground(s) for s in scenes], dtype=bool)
    georef = georef_scene[columns["scene"]] if n else np.zeros(0, bool)
    if georef.any() and frame is None:
        raise InvalidParameterError("a frame CRS is needed for georeferenced scenes")
    polygons = np.full(n, None, dtype=object)
    for start in range(0, n, CHUNK):
        rows = slice(start, start + CHUNK)
        part = {k: v[rows] for k, v in columns.items()}
        on_ground, placed = georef[rows], polygons[rows]  # a view: filled in place
        if on_ground.any():
            placed[:] = footprints(scenes, part, str(frame))
        if (~on_ground).any():
            placed[~on_ground] = footprints(scenes, part, "pixel")[~on_ground]
        if counter is not None:
            counter.add(len(on_ground))
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


def outlines(scenes: list[Scene], used: np.ndarray, frame: str) -> tuple[np.ndarray, np.ndarray]:
    """Whole-scene footprints in ``frame`` of the ``used`` scenes that have ground.

    Returns ``(scene, outline)``. Scenes on one grid (one CRS, transform and size: the
    revisits of a tile) are projected once.
    """
    geo = [s for s in np.unique(used).tolist() if has_ground(scenes[s])]
    grid: dict[object, int] = {}
    first: list[int] = []
    reps_list: list[int] = []
    for s in geo:
        sc = scenes[s]
        on_grid = sc.georef == "transform" and sc.transform is not None
        key = (sc.crs, tuple(sc.transform or ()), sc.height, sc.width) if on_grid else s
        if key not in grid:
            grid[key] = len(reps_list)
            reps_list.append(s)
        first.append(grid[key])
    reps = np.array(reps_list, dtype=np.int64)
    h = np.array([scenes[s].height for s in reps], dtype=np.int64)
    w = np.array([scenes[s].width for s in reps], dtype=np.int64)
    zero = np.zeros(len(reps), np.int64)
    whole = {"scene": reps, "row_off": zero, "col_off": zero, "height": h, "width": w}
    shapes = footprints(scenes, whole, frame) if len(reps) else np.zeros(0, dtype=object)
    return np.array(geo, dtype=np.int64), shapes[np.array(first, dtype=np.int64)]


def pixel_sizes(scenes: list[Scene], used: np.ndarray, frame: str | None) -> np.ndarray:
    """The ground size of a pixel of each scene in ``frame`` units (1: no ground, unused).

    The square root of the scene's whole footprint area over its pixel count: how
    ``buffer`` (frame units) becomes pixels between chips of one scene, for the split and
    the proof alike.
    """
    sizes = np.ones(len(scenes))
    if frame is None:
        return sizes
    geo, shapes = outlines(scenes, used, frame)
    if not len(geo):
        return sizes
    h = np.array([scenes[s].height for s in geo], dtype=np.float64)
    w = np.array([scenes[s].width for s in geo], dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_px = np.sqrt(shapely.area(shapes).astype(np.float64) / (h * w))
    fine = np.isfinite(per_px) & (per_px > 0)
    sizes[geo[fine]] = per_px[fine]
    return sizes


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
