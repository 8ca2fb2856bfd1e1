"""Labels per chip: vector data burnt into the chip's grid, or label rasters read onto it.

``ChipDataset(index, labels=...)`` takes a :class:`VectorLabels`, a :class:`RasterLabels`,
or anything :class:`VectorLabels` reads (a path, a GeoDataFrame, a GeoJSON mapping), which
then burns 1 into every geometry's pixels and 0 elsewhere. Labels need no torch: the
loading layer turns their arrays into tensors.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from geochips.labels.raster import RasterLabeller, RasterLabels
from geochips.labels.vector import MASK_DTYPES, VectorLabeller, VectorLabels

Labels: TypeAlias = VectorLabels | RasterLabels
Labeller: TypeAlias = VectorLabeller | RasterLabeller

__all__ = [
    "MASK_DTYPES",
    "Labeller",
    "Labels",
    "RasterLabels",
    "VectorLabels",
    "as_labels",
    "labeller",
]


def as_labels(labels: Any) -> Labels | None:
    """The label spec ``labels`` names: vector data not wrapped becomes ``VectorLabels``."""
    if labels is None or isinstance(labels, (VectorLabels, RasterLabels)):
        return labels
    return VectorLabels(labels)


def labeller(spec: Labels) -> Labeller:
    """What reads the labels of ``spec`` chip by chip (vector data is read here, once)."""
    if isinstance(spec, VectorLabels):
        return VectorLabeller(spec)
    return RasterLabeller(spec)
