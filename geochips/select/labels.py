"""Label-aware selection: keep the chips that hold labels, from geometry alone.

:func:`filter_labels` measures, for every chip, the area of its window that vector labels
cover (``label_fraction``: the union of the geometries of classes other than 0, inside the
chip and the scene, over the chip's area) and how many objects have area in it
(``label_objects``), without reading a pixel. Both become index columns, saved with the
index, and the index returned carries the labels (:attr:`ChipIndex.labels`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely

from geochips.errors import InvalidParameterError
from geochips.index import ChipIndex
from geochips.labels import VectorLabels, as_labels
from geochips.labels.vector import VectorLabeller
from geochips.windows import rows_by_scene

FRACTION = "label_fraction"
OBJECTS = "label_objects"


def filter_labels(
    index: ChipIndex,
    labels: Any = None,
    *,
    min_fraction: float | None = None,
    min_objects: int | None = None,
) -> ChipIndex:
    """Keep the chips whose windows hold labels; add ``label_fraction`` and ``label_objects``.

    **Usage**::

        index = geochips.filter_labels(index, "buildings.gpkg", min_fraction=0.01)
        index.column("label_fraction")   # float32, 0..1 of each chip's area

    Args:
        index: the chips.
        labels: vector labels (:class:`~geochips.VectorLabels`, or vector data as
            ``ChipDataset`` takes it); by default the index's own :attr:`ChipIndex.labels`.
        min_fraction: keep chips at least this fraction of whose area is labelled.
        min_objects: keep chips in which at least this many objects have area.

    With both, a chip must meet both; with neither, every chip with any labelled area is
    kept. Areas are geometric (``all_touched`` does not change them).

    Raises:
        InvalidParameterError: raster labels (measuring them needs pixels), or bad bounds.
    """
    spec = as_labels(labels if labels is not None else index.labels)
    if not isinstance(spec, VectorLabels):
        raise InvalidParameterError(
            "filter_labels measures vector labels from their geometry; "
            + (
                "the index has no labels: give labels="
                if spec is None
                else "RasterLabels would need pixels: filter on a column you compute instead"
            )
        )
    if min_fraction is not None and not 0 <= min_fraction <= 1:
        raise InvalidParameterError(f"min_fraction must be within 0..1, got {min_fraction!r}")
    if min_objects is not None and (isinstance(min_objects, bool) or min_objects < 0):
        raise InvalidParameterError(f"min_objects must be an int >= 0, got {min_objects!r}")
    fraction, objects = measure(index, VectorLabeller(spec))
    keep = np.ones(len(index), dtype=bool)
    if min_fraction is None and min_objects is None:
        keep = fraction > 0
    if min_fraction is not None:
        keep &= fraction >= min_fraction
    if min_objects is not None:
        keep &= objects >= min_objects
    measured = index.with_columns(**{FRACTION: fraction, OBJECTS: objects}).with_labels(spec)
    return measured.select(keep)


def measure(index: ChipIndex, labeller: VectorLabeller) -> tuple[np.ndarray, np.ndarray]:
    """``(label_fraction float32, label_objects int32)`` of every chip of ``index``."""
    fraction = np.zeros(len(index), dtype=np.float32)
    objects = np.zeros(len(index), dtype=np.int32)
    scene_col = index.column("scene")
    c = {name: index.column(name) for name in ("row_off", "col_off", "height", "width")}
    for s, rows in rows_by_scene(scene_col):
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
            continue
        # Objects with area in the chip (each counted once, however they overlap).
        pairs = part.tree.query(boxes, predicate="intersects")
        pairs = pairs[:, part.values[pairs[1]] != 0]
        area = shapely.area(shapely.intersection(boxes[pairs[0]], part.geometries[pairs[1]]))
        objects[rows] = np.bincount(pairs[0][area > 0], minlength=len(rows))
        # The labelled area: the union's parts are disjoint, so their areas add up.
        pieces = shapely.get_parts(shapely.union_all(labelled))
        hits = shapely.STRtree(pieces).query(boxes, predicate="intersects")
        inside = shapely.area(shapely.intersection(boxes[hits[0]], pieces[hits[1]]))
        covered = np.bincount(hits[0], weights=inside, minlength=len(rows))
        fraction[rows] = np.minimum(covered / (h * w).astype(np.float64), 1.0)
    return fraction, objects
