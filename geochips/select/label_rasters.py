"""The labelled fraction of each chip under raster labels, from a coarse read of each scene's.

:func:`raster_fractions` is what :func:`geochips.filter_labels` measures for
:class:`~geochips.RasterLabels`: each scene's label raster is read once, coarse, over the
bounding box of its chips, and every chip counts the coarse pixels whose centre is in it.
See :func:`geochips.filter_labels` for the accuracy.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np

from geochips import hrefs
from geochips.errors import OverviewWarning
from geochips.io.coarse import CoarseRead, read_coarse
from geochips.io.coarse_warp import read_coarse_onto
from geochips.io.reader import Reader
from geochips.labels.raster import RasterLabeller, RasterLabels
from geochips.progress import Counter, run_counted
from geochips.scene import Scene
from geochips.windows import rows_by_scene, windows_area

if TYPE_CHECKING:
    from geochips.index import ChipIndex

UNLABELLED = 0
"""The class that is no label, as in a mask; label pixels outside the raster read as it."""


def raster_fractions(
    index: ChipIndex, spec: RasterLabels, max_pixels: int, workers: int, counter: Counter
) -> np.ndarray:
    """``label_fraction`` (float32) of every chip of ``index`` under the label rasters ``spec``.

    A chip's fraction is the share of its pixels whose label is a class other than 0, not
    the label raster's nodata, inside the label raster and inside the scene. Scenes are
    read on ``workers`` threads, each counted by ``counter`` as it completes.
    """
    reader = Reader(signer=index.signer, gdal_options=index.gdal_options)
    labeller = RasterLabeller(spec, reader)
    fraction = np.zeros(len(index), dtype=np.float32)
    windows = {k: index.column(k) for k in ("row_off", "col_off", "height", "width")}

    def run(job: tuple[int, np.ndarray]) -> str | None:
        """Measure one scene's chips; the scene's name when its labels were decimated."""
        s, rows = job
        scene = index.scenes[s]
        win = {k: v[rows] for k, v in windows.items()}
        area = windows_area(scene, win)
        if area[2] <= area[0] or area[3] <= area[1]:
            return None  # every window lies outside the scene: nothing of it is labelled
        coarse, nodata = _read_labels(labeller, scene, index, area, max_pixels)
        labelled = coarse.data[0] != UNLABELLED
        if nodata is not None:
            labelled &= coarse.data[0] != nodata
        fraction[rows] = window_fractions(scene, coarse, labelled, win)
        if coarse.full_resolution and coarse.decimated:
            return f"{scene.id!r} ({hrefs.redact(spec.href(scene))})"
        return None

    jobs = list(rows_by_scene(index.column("scene")))
    decimated = [name for name in run_counted(run, jobs, workers, counter) if name]
    if decimated:
        warnings.warn(
            f"the label rasters of {len(decimated)} scene(s) have no overview and more pixels "
            f"than max_pixels={max_pixels}, so filter_labels read them decimated (GDAL decodes "
            f"the blocks under every sample): {', '.join(decimated)}. Add overviews once, "
            "e.g. gdaladdo -r nearest <labels> 2 4 8 16 (nearest keeps class ids)",
            OverviewWarning,
            stacklevel=3,
        )
    return fraction


def _read_labels(
    labeller: RasterLabeller,
    scene: Scene,
    index: ChipIndex,
    area: tuple[int, int, int, int],
    max_pixels: int,
) -> tuple[CoarseRead, object]:
    """The scene's labels over ``area``, coarse on its grid, and the label nodata value."""
    labels = labeller.label_scene(scene)
    band = labeller.spec.band
    if not labels.scene.is_warped(0):  # on the scene's grid: read its own overviews
        coarse = read_coarse(
            labels.scene, index.signer, area, [band], max_pixels, index.gdal_options
        )
    else:
        coarse = read_coarse_onto(
            scene,
            labels.file,
            index.signer,
            area,
            band,
            max_pixels,
            UNLABELLED,
            index.gdal_options,
        )
    return coarse, labels.nodata


def window_fractions(
    scene: Scene, coarse: CoarseRead, labelled: np.ndarray, win: dict[str, np.ndarray]
) -> np.ndarray:
    """Labelled fraction of each window: its labelled coarse pixels over all of its own.

    A coarse pixel is a window's when its centre lies in the part of the window inside the
    scene; that part's share of the window scales the result (``edge="pad"`` windows reach
    outside the scene, which is never labelled). A window too small to hold a centre takes
    the coarse pixel nearest to its middle. At full resolution every pixel is counted, so
    the fraction is exact.
    """
    r0, c0 = win["row_off"].astype(np.float64), win["col_off"].astype(np.float64)
    r1, c1 = r0 + win["height"], c0 + win["width"]
    ir0, ir1 = np.clip(r0, 0, scene.height), np.clip(r1, 0, scene.height)
    ic0, ic1 = np.clip(c0, 0, scene.width), np.clip(c1, 0, scene.width)
    inside = (ir1 - ir0) * (ic1 - ic0) / ((r1 - r0) * (c1 - c0))
    i0, i1 = _spans(coarse.row_centers, ir0, ir1)
    j0, j1 = _spans(coarse.col_centers, ic0, ic1)
    table = np.zeros((labelled.shape[0] + 1, labelled.shape[1] + 1), dtype=np.int64)
    table[1:, 1:] = labelled.cumsum(0).cumsum(1)
    count = table[i1, j1] - table[i0, j1] - table[i1, j0] + table[i0, j0]
    share = count / ((i1 - i0) * (j1 - j0))
    result: np.ndarray = np.where(inside > 0, share * inside, 0.0)
    return result


def _spans(centres: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``[i0, i1)``: the centres in ``[lo, hi)``, or the one nearest the middle if none is."""
    i0, i1 = np.searchsorted(centres, lo), np.searchsorted(centres, hi)
    mid = (lo + hi) / 2
    after = np.clip(np.searchsorted(centres, mid), 0, len(centres) - 1)
    before = np.maximum(after - 1, 0)
    nearest = np.where(np.abs(centres[before] - mid) <= np.abs(centres[after] - mid), before, after)
    empty = i1 <= i0
    return np.where(empty, nearest, i0), np.where(empty, nearest + 1, i1)
