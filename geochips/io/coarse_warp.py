"""Coarse reads of a raster on another grid or CRS, onto a coarse copy of a scene's grid.

:func:`read_coarse_onto` is what :func:`geochips.filter_labels` reads of a label raster
that is not on its scene's grid. The part of the raster under an area of the scene is read
coarse by :func:`~geochips.io.coarse.read_coarse` (its finest overview that fits the
budget, or decimated), then resampled in memory by a GDAL nearest warp onto the scene's
grid over that area, decimated to the same budget. Each output pixel takes the value of
the coarse raster pixel under its centre: a sample, as a coarse read's own pixels are, so
counting them estimates areas without the bias a majority (``mode``) would give small
classes. Warping the coarse read, rather than mapping its pixel centres into the scene,
keeps the result on a lattice of the scene's grid that windows can be cut from.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from affine import Affine
from rasterio.enums import Resampling
from rasterio.warp import reproject

from geochips.coordinates import (
    pixel_to_scene_crs,
    reproject_points,
    scene_crs_to_pixel,
    window_rings,
)
from geochips.io.coarse import CoarseRead, read_coarse
from geochips.scene import Scene

OUTLINE_POINTS = 64
"""Points per side of the area's outline mapped into the raster to find what to read."""


def read_coarse_onto(
    scene: Scene,
    raster: Scene,
    signer: Any,
    area: tuple[int, int, int, int],
    band: int,
    max_pixels: int,
    fill: int,
    gdal_options: Mapping[str, Any] | None = None,
) -> CoarseRead:
    """Read ``band`` of ``raster`` coarse onto ``scene``'s grid over ``area``.

    ``area`` is ``(row0, col0, row1, col1)`` of the scene's read grid; ``raster`` is the
    header of a single file with a CRS and a transform. Output pixels no raster pixel
    covers (outside the raster, or its nodata) are ``fill``. The result's ``data`` is
    ``(1, h, w)`` in the raster's dtype, its centres, steps and weight are in the scene's
    grid, and ``how``, ``full_resolution`` and ``decimated`` say how the raster was read.

    Raises:
        SceneReadError: naming the raster, if it cannot be read.
    """
    assert scene.transform is not None and scene.crs is not None
    assert raster.transform is not None and raster.crs is not None
    h, w = area[2] - area[0], area[3] - area[1]
    step = max(1.0, math.sqrt(h * w / max_pixels))
    shape = (max(1, round(h / step)), max(1, round(w / step)))
    row_step, col_step = h / shape[0], w / shape[1]
    out = np.full((1, *shape), fill, dtype=raster.dtype)
    how, full, decimated = "nothing read: the raster does not reach the chips", False, False
    under = _raster_area(scene, raster, area)
    if under is not None:
        coarse = read_coarse(raster, signer, under, [band], max_pixels, gdal_options)
        reproject(
            coarse.data,
            out,
            src_transform=_lattice(
                raster,
                coarse.row_centers[0] - coarse.row_step / 2,
                coarse.col_centers[0] - coarse.col_step / 2,
                coarse.row_step,
                coarse.col_step,
            ),
            src_crs=raster.crs,
            src_nodata=raster.nodata,
            dst_transform=_lattice(scene, area[0], area[1], row_step, col_step),
            dst_crs=scene.crs,
            dst_nodata=fill,
            resampling=Resampling.nearest,
        )
        how = f"{coarse.how}, warped (nearest) onto 1/{step:.3g} of the scene's grid"
        full, decimated = coarse.full_resolution, coarse.decimated
    rows = area[0] + (np.arange(shape[0]) + 0.5) * row_step
    cols = area[1] + (np.arange(shape[1]) + 0.5) * col_step
    return CoarseRead(
        out, rows, cols, row_step * col_step, how, full, decimated, row_step, col_step
    )


def _lattice(grid: Scene, row0: float, col0: float, row_step: float, col_step: float) -> Affine:
    """The transform of a coarse lattice over ``grid``: its origin and steps in its pixels."""
    assert grid.transform is not None
    return grid.transform @ Affine.translation(col0, row0) @ Affine.scale(col_step, row_step)


def _raster_area(
    scene: Scene, raster: Scene, area: tuple[int, int, int, int]
) -> tuple[int, int, int, int] | None:
    """The raster's pixels under ``area`` of the scene, ``(row0, col0, row1, col1)``.

    ``None`` when the raster does not reach the area. The area's outline is mapped point by
    point (a map's image of a rectangle is bounded by the image of its outline); the margin
    covers the bulge of the outline between those points and the pixel a nearest warp
    takes under a centre on the edge.
    """
    assert scene.crs is not None and raster.crs is not None
    cols, rows = window_rings(
        np.array([area[0]]),
        np.array([area[1]]),
        np.array([area[2] - area[0]]),
        np.array([area[3] - area[1]]),
        OUTLINE_POINTS,
    )
    xs, ys = reproject_points(scene.crs, raster.crs, *pixel_to_scene_crs(scene, cols, rows))
    c, r = scene_crs_to_pixel(raster, xs, ys)
    ok = np.isfinite(c) & np.isfinite(r)
    if not ok.any():  # the outline has no place in the raster's CRS: read all of it
        return 0, 0, raster.height, raster.width
    c, r = c[ok], r[ok]
    margin_r = 2 + 0.01 * (r.max() - r.min())
    margin_c = 2 + 0.01 * (c.max() - c.min())
    r0 = int(np.clip(math.floor(r.min() - margin_r), 0, raster.height))
    r1 = int(np.clip(math.ceil(r.max() + margin_r), 0, raster.height))
    c0 = int(np.clip(math.floor(c.min() - margin_c), 0, raster.width))
    c1 = int(np.clip(math.ceil(c.max() + margin_c), 0, raster.width))
    if r1 <= r0 or c1 <= c0:
        return None
    return r0, c0, r1, c1
