"""Label-aware selection: keep the chips that hold labels.

:func:`filter_labels` measures, for every chip, the share of its window that labels cover
(``label_fraction``) and, for vector labels, how many objects have area in it
(``label_objects``). Vector labels are measured from their geometry alone (the union of
the geometries of classes other than 0, inside the chip and the scene, over the chip's
area), without reading a pixel; raster labels from a coarse read of each scene's label
raster (:mod:`geochips.select.label_rasters`). The columns are saved with the index, and
the index returned carries the labels (:attr:`ChipIndex.labels`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely

from geochips.errors import InvalidParameterError
from geochips.index import ChipIndex
from geochips.labels import RasterLabels, as_labels
from geochips.labels.vector import VectorLabeller
from geochips.progress import Counter, ProgressSpec, run_counted, start_progress
from geochips.select.label_rasters import raster_fractions
from geochips.select.stats import AUTO_MIN_SCENES, MAX_PIXELS
from geochips.windows import rows_by_scene

FRACTION = "label_fraction"
OBJECTS = "label_objects"


def filter_labels(
    index: ChipIndex,
    labels: Any = None,
    *,
    min_fraction: float | None = None,
    min_objects: int | None = None,
    max_pixels: int = MAX_PIXELS,
    workers: int = 4,
    progress: ProgressSpec = None,
) -> ChipIndex:
    """Keep the chips whose windows hold labels; add ``label_fraction`` (and ``label_objects``).

    **Usage**::

        index = geochips.filter_labels(index, "buildings.gpkg", min_fraction=0.01)
        index.column("label_fraction")   # float32, 0..1 of each chip's area
        index = geochips.filter_labels(index, geochips.RasterLabels("landcover.tif"))

    Args:
        index: the chips.
        labels: :class:`~geochips.VectorLabels` (or vector data as ``ChipDataset`` takes
            it) or :class:`~geochips.RasterLabels`; by default the index's own
            :attr:`ChipIndex.labels`.
        min_fraction: keep chips at least this fraction of whose area is labelled.
        min_objects: keep chips in which at least this many objects have area (vector
            labels only: a label raster has no objects).
        max_pixels: raster labels only: coarse label pixels read per scene at most, as
            :func:`~geochips.band_stats` reads (see below).
        workers: scenes measured concurrently (threads: GDAL reads and shapely's
            geometry work release the GIL).
        progress: ``"label fractions"`` counted in scenes as they complete; ``None``
            shows it on a terminal from 10 scenes, ``False`` never, or a callable
            ``(done, total)`` (see :mod:`geochips.progress`).

    With both bounds, a chip must meet both; with neither, every chip with any labelled
    area is kept.

    **Vector labels** are measured from their geometry: ``label_fraction`` is the area of
    the union of the geometries of classes other than 0, inside the chip and the scene,
    over the chip's area (``all_touched`` does not change it); ``label_objects`` counts
    the objects with area in the chip. No pixel is read.

    **Raster labels**: ``label_fraction`` is the share of the chip's pixels whose label is
    a class other than 0, not the label raster's nodata, inside the label raster and the
    scene (classes are the raw values of ``band``; ``ignore_index`` plays no part). Each
    scene's label raster is read once, over its chips' bounding box, from the finest
    overview whose read fits ``max_pixels``; with no overview it is read whole if it fits,
    else decimated (GDAL nearest) to the budget, with an :class:`OverviewWarning`. A chip
    counts the coarse pixels whose centre lies in it. A label raster on the scene's grid is
    read directly; one on another grid or CRS is read coarse on its own grid and warped
    (nearest) onto the scene's grid decimated to the budget (nearest whatever the
    labels' ``resampling``: a majority would shrink small classes).
    :func:`~geochips.band_stats` picks overviews the same way; unlike it,
    ``filter_labels`` warns only when a label raster is decimated, since one read whole
    is exact.

    Accuracy, measured as the largest error over all chips against full-resolution
    counts (``tests/select/test_filter_raster_labels.py``; 128 px chips of the 900 x 900
    SpaceNet image, labels: its buildings, smooth blobs of three classes, and the
    buildings in lon/lat at another resolution): read whole (no overview, within the
    budget) the fraction is exact on the scene's grid and, on another grid, the same as
    a whole-scene nearest warp cut per chip. From nearest overviews (buildings, blobs,
    lon/lat): 0.0015, 0.0043 and 0.0055 at 1/2 (where the default budget reads label
    rasters of up to ~2000 x 2000 px), 0.011, 0.017 and 0.011 at 1/4, 0.020, 0.058 and
    0.031 at 1/8; with 64 px chips, at most 0.016 at 1/2, 0.051 at 1/4 and 0.146 at 1/8
    (blobs). The error grows with the overview
    factor over the chip side and with how much class edge a chip holds. A label raster
    without overviews decimated to 1/4 came within 0.009 (128 px). Overviews built by
    averaging invent classes on class edges: build label overviews with ``-r nearest``.

    Raises:
        InvalidParameterError: no labels, ``min_objects`` with raster labels, or bad
            bounds.
        SceneReadError: naming the scene, if its label raster cannot be read.
    """
    spec = as_labels(labels if labels is not None else index.labels)
    if spec is None:
        raise InvalidParameterError(
            "filter_labels needs labels and the index has none: give labels="
        )
    if isinstance(spec, RasterLabels) and min_objects is not None:
        raise InvalidParameterError(
            "min_objects counts vector objects and a label raster has none; "
            "filter raster labels with min_fraction= instead"
        )
    if min_fraction is not None and not 0 <= min_fraction <= 1:
        raise InvalidParameterError(f"min_fraction must be within 0..1, got {min_fraction!r}")
    if min_objects is not None and (isinstance(min_objects, bool) or min_objects < 0):
        raise InvalidParameterError(f"min_objects must be an int >= 0, got {min_objects!r}")
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        raise InvalidParameterError(f"max_pixels must be an int >= 1, got {max_pixels!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InvalidParameterError(f"workers must be an int >= 1, got {workers!r}")
    scenes = len(np.unique(index.column("scene")))
    counter = start_progress(
        progress, scenes, label="label fractions", unit="scene", auto_min=AUTO_MIN_SCENES
    )
    if isinstance(spec, RasterLabels):
        fraction = raster_fractions(index, spec, max_pixels, workers, counter)
        measured = index.with_columns(**{FRACTION: fraction}).with_labels(spec)
        return measured.select(fraction > 0 if min_fraction is None else fraction >= min_fraction)
    fraction, objects = measure(index, VectorLabeller(spec), workers, counter)
    keep = np.ones(len(index), dtype=bool)
    if min_fraction is None and min_objects is None:
        keep = fraction > 0
    if min_fraction is not None:
        keep &= fraction >= min_fraction
    if min_objects is not None:
        keep &= objects >= min_objects
    measured = index.with_columns(**{FRACTION: fraction, OBJECTS: objects}).with_labels(spec)
    return measured.select(keep)


def measure(
    index: ChipIndex, labeller: VectorLabeller, workers: int, counter: Counter
) -> tuple[np.ndarray, np.ndarray]:
    """``(label_fraction float32, label_objects int32)`` of every chip of ``index``."""
    fraction = np.zeros(len(index), dtype=np.float32)
    objects = np.zeros(len(index), dtype=np.int32)
    c = {name: index.column(name) for name in ("row_off", "col_off", "height", "width")}

    def run(job: tuple[int, np.ndarray]) -> None:
        s, rows = job
        scene = index.scenes[s]
        part = labeller.part(scene)
        r0, c0 = c["row_off"][rows], c["col_off"][rows]
        h, w = c["height"][rows], c["width"][rows]
        boxes = shapely.box(
            np.maximum(c0, 0),
            np.maximum(r0, 0),
            np.minimum(c0 + w, scene.width),
            np.minimum(r0 + h, scene.height),
        )
        labelled = part.geometries[part.values != 0]
        if not len(labelled):
            return
        # Objects with area in the chip (each counted once, however they overlap).
        pairs = part.tree.query(boxes)  # envelopes; the area below decides
        pairs = pairs[:, part.values[pairs[1]] != 0]
        area = shapely.area(shapely.intersection(boxes[pairs[0]], part.geometries[pairs[1]]))
        objects[rows] = np.bincount(pairs[0][area > 0], minlength=len(rows))
        # The labelled area: the union's parts are disjoint, so their areas add up.
        pieces = shapely.get_parts(shapely.union_all(labelled))
        hits = shapely.STRtree(pieces).query(boxes, predicate="intersects")
        inside = shapely.area(shapely.intersection(boxes[hits[0]], pieces[hits[1]]))
        covered = np.bincount(hits[0], weights=inside, minlength=len(rows))
        fraction[rows] = np.minimum(covered / (h * w).astype(np.float64), 1.0)

    run_counted(run, list(rows_by_scene(index.column("scene"))), workers, counter)
    return fraction, objects
