"""What a sample holds: the :class:`Sample` dict, a chip's geometry, valid mask and labels.

``bounds``, ``crs`` and ``transform`` are in the scene's own CRS and grid (no reprojection);
for GCP-only scenes they come from the transform fitted to the GCPs (approximate).
"""

from __future__ import annotations

import datetime
from typing import Any, TypedDict

import numpy as np
import torch
from affine import Affine

from geochips.errors import InvalidParameterError
from geochips.labels import Labeller
from geochips.labels.raster import RasterLabeller
from geochips.labels.vector import VectorLabeller
from geochips.scene import Scene
from geochips.windows import ChipWindow


class Sample(TypedDict, total=False):
    """One chip as :class:`ChipDataset` returns it (``valid`` only when relevant)."""

    image: torch.Tensor
    valid: torch.Tensor
    chip_id: str
    scene_id: str
    """The id of the chip's scene (the saved index's ``scene_id`` column)."""
    window: ChipWindow
    bounds: tuple[float, float, float, float] | None
    crs: str | None
    transform: Affine | None
    mask: torch.Tensor
    """``(1, H, W)`` class ids, with labels (:mod:`geochips.labels`)."""
    boxes: torch.Tensor
    """``(K, 4)`` float32 pixel ``xyxy`` boxes, with ``VectorLabels(boxes=True)``."""
    labels: torch.Tensor
    """``(K,)`` int64 class ids of ``boxes``."""
    instances: torch.Tensor
    """``(K, H, W)`` bool, one mask per box, with ``VectorLabels(instances=True)``."""


RESERVED = frozenset(
    ("image", "valid", "mask", "boxes", "labels", "instances", "chip_id", "scene_id", "window",
     "bounds", "crs", "transform", "dihedral", "scene")
)  # fmt: skip
"""Sample keys a scene property may not take (``scene``, the scene id's key before 0.1.0's
re-layout, stays taken: a property there would answer code written for the id)."""


def scene_values(scene: Scene) -> dict[str, Any]:
    """What every sample of ``scene`` carries of its properties (STAC item properties).

    A property holding an RFC 3339 date-time (``datetime``, ``start_datetime``, ...) is
    given as a timezone-aware ISO string (UTC when the item gives no offset, as STAC says),
    with ``<name>_posix``, the same instant in POSIX seconds (float), for time-aware models.
    """
    values: dict[str, Any] = {}
    for name, value in scene.properties.items():
        if name in RESERVED:
            raise InvalidParameterError(
                f"scene {scene.name} has a property {name!r}, which would replace the "
                f"sample's own {name!r}; build the index without it in properties=[...]"
            )
        when = _datetime(value)
        if when is None:
            values[name] = value
        else:
            values[name] = when.isoformat()
            values[f"{name}_posix"] = when.timestamp()
    return values


def _datetime(value: Any) -> datetime.datetime | None:
    if isinstance(value, datetime.datetime):
        when = value
    elif isinstance(value, str) and len(value) >= 19 and value[4] == "-" and "T" in value.upper():
        try:
            when = datetime.datetime.fromisoformat(value.replace("z", "Z"))
        except ValueError:
            return None
    else:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=datetime.timezone.utc)


def chip_transform(transform: Affine | None, w: ChipWindow) -> Affine | None:
    """``transform @ Affine.translation(col_off, row_off)``, in plain floats (4x faster)."""
    if transform is None:
        return None
    a, b, c, d, e, f = transform.a, transform.b, transform.c, transform.d, transform.e, transform.f
    return Affine(a, b, w.col_off * a + w.row_off * b + c, d, e, w.col_off * d + w.row_off * e + f)


def chip_bounds(
    transform: Affine | None, w: ChipWindow
) -> tuple[float, float, float, float] | None:
    """The box of the chip's four corners in the scene CRS (plain floats: ~30 us faster)."""
    if transform is None:
        return None
    a, b, c, d, e, f = transform.a, transform.b, transform.c, transform.d, transform.e, transform.f
    c0, r0 = w.col_off, w.row_off
    c1, r1 = c0 + w.width, r0 + w.height
    xs = (c0 * a + r0 * b + c, c1 * a + r0 * b + c, c0 * a + r1 * b + c, c1 * a + r1 * b + c)
    ys = (c0 * d + r0 * e + f, c1 * d + r0 * e + f, c0 * d + r1 * e + f, c1 * d + r1 * e + f)
    return (min(xs), min(ys), max(xs), max(ys))


def typed_nodata(scene: Scene) -> Any:
    """The scene's nodata as a scalar of its dtype, when it is exactly one.

    Comparing uint16 pixels with the float ``0.0`` of a header makes NumPy convert every
    pixel to float64 first (6x slower than comparing with ``np.uint16(0)``).
    """
    if scene.nodata is None or np.isnan(scene.nodata):
        return scene.nodata
    dtype = np.dtype(scene.dtype)
    if dtype.kind in "iu" and not (
        float(scene.nodata).is_integer()
        and np.iinfo(dtype).min <= scene.nodata <= np.iinfo(dtype).max
    ):
        return scene.nodata  # no pixel can equal it; compare as it is
    return dtype.type(scene.nodata)


def valid_mask(
    data: np.ndarray, scene: Scene, window: ChipWindow, nodata: Any, out: np.ndarray | None
) -> np.ndarray:
    """Valid pixels: inside the scene and, where nodata is set, any band not nodata (GDAL).

    Written into ``out`` (bool, ``(1, height, width)``) when given, else into a new array.
    """
    valid = np.empty((1, window.height, window.width), dtype=bool) if out is None else out
    if nodata is None:
        valid[...] = True
    elif np.isnan(nodata):
        np.logical_not(np.isnan(data).all(axis=0, keepdims=True), out=valid)
    elif len(data) == 1:
        np.not_equal(data, nodata, out=valid)  # one band: one pass, no reduction
    else:
        np.any(data != nodata, axis=0, keepdims=True, out=valid)
    if (
        window.row_off >= 0
        and window.col_off >= 0
        and window.row_off + window.height <= scene.height
        and window.col_off + window.width <= scene.width
    ):
        return valid
    rows, cols = window.slices()
    outside_rows = (np.arange(rows.start, rows.stop) < 0) | (
        np.arange(rows.start, rows.stop) >= scene.height
    )
    outside_cols = (np.arange(cols.start, cols.stop) < 0) | (
        np.arange(cols.start, cols.stop) >= scene.width
    )
    valid[0, outside_rows, :] = False
    valid[0, :, outside_cols] = False
    return valid


def add_labels(
    sample: Sample,
    labeller: Labeller,
    scene: Scene,
    window: ChipWindow,
    chip_id: str,
    row: torch.Tensor | None,
) -> None:
    """Add the chip's ``mask`` (into ``row`` when given), and its boxes for detection."""
    out = None if row is None else row.numpy()
    if isinstance(labeller, RasterLabeller):
        mask = labeller.mask(scene, window, out, chip_id=chip_id)
    else:
        mask = labeller.mask(scene, window, out)
    sample["mask"] = torch.from_numpy(mask) if row is None else row
    if isinstance(labeller, VectorLabeller) and labeller.spec.boxes:
        boxes, classes, instances = labeller.objects(scene, window)
        sample["boxes"] = torch.from_numpy(boxes)
        sample["labels"] = torch.from_numpy(classes)
        if instances is not None:
            sample["instances"] = torch.from_numpy(instances)
