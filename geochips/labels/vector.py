"""Vector labels: polygons (or lines, points) burnt into each chip's own grid.

The vectors are read once (:mod:`geochips.io.vectors`), in the process that builds the
dataset, so a bad file or value fails there and not in a DataLoader worker. For each scene,
in each process that reads it, the geometries that may touch the scene are placed on its
pixel grid once (:mod:`.parts`); each chip then rasterises only the geometries whose
envelope meets it, never the whole scene.

Rasterisation is GDAL's rule (polygons are burnt by NumPy, :mod:`.rasterize`; anything else,
and ``all_touched=True``, by ``rasterio.features.rasterize``): a pixel is labelled when its
centre is inside a geometry, or, with ``all_touched=True``, when the geometry touches it.
Geometries burn in file order, so where they overlap the later one wins.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import rasterio.features
import shapely
from affine import Affine

from geochips.errors import InvalidParameterError
from geochips.io.vectors import Vectors, read_vectors
from geochips.labels.parts import ScenePart, made_valid, make_part
from geochips.labels.rasterize import burn_edges
from geochips.scene import Scene
from geochips.windows import ChipWindow

MASK_DTYPES = ("int64", "int32", "int16", "uint8")
"""Integer dtypes a label mask may have (int64, the default, is what CrossEntropyLoss takes)."""

_BURN_DTYPES = {"int64": "int32", "int32": "int32", "int16": "int16", "uint8": "uint8"}


@dataclass(frozen=True)
class VectorLabels:
    """Labels from vector data, burnt into each chip as ``sample["mask"]`` ``(1, H, W)``.

    **Usage**::

        labels = geochips.VectorLabels("buildings.gpkg", value="class_id", boxes=True)
        ds = geochips.ChipDataset(index, labels=labels)
        ds[0]["mask"], ds[0]["boxes"], ds[0]["labels"]

    Args:
        source: a vector file in any format OGR reads, a GeoJSON mapping, a GeoDataFrame or
            shapely geometries (see :mod:`geochips.io.vectors`).
        value: the attribute holding each geometry's class, or one class for all (``1``).
        classes: names of the classes the ``value`` attribute holds, numbered from 1 in
            order, or a ``{name: id}`` mapping; without it the attribute holds class ids.
        all_touched: label every pixel a geometry touches, not only those whose centre
            it covers.
        layer: the layer of a multi-layer file (GeoPackage).
        crs: the geometries' CRS, when the source does not say it (or says it wrongly).
        boxes: also return ``sample["boxes"]`` ``(K, 4)`` float32 pixel ``xyxy`` boxes
            of the objects in the chip, clipped to it, and ``sample["labels"]`` ``(K,)``
            int64 class ids (torchvision's detection convention).
        instances: also return ``sample["instances"]`` ``(K, H, W)`` bool, one mask per
            box (needs ``boxes=True``).
        ignore_index: the mask value of pixels outside the scene (``edge="pad"``).
        dtype: the mask's integer dtype, one of :data:`MASK_DTYPES`.
    """

    source: Any
    value: str | int = 1
    classes: Sequence[str] | Mapping[Any, int] | None = None
    all_touched: bool = False
    layer: str | int | None = None
    crs: str | None = None
    boxes: bool = False
    instances: bool = False
    ignore_index: int = 255
    dtype: str = "int64"

    def __post_init__(self) -> None:
        if self.dtype not in MASK_DTYPES:
            raise InvalidParameterError(
                f"VectorLabels dtype must be one of {MASK_DTYPES}, got {self.dtype!r}"
            )
        if self.instances and not self.boxes:
            raise InvalidParameterError("VectorLabels(instances=True) needs boxes=True")
        check_value_fits(self.ignore_index, self.dtype, "ignore_index")
        if isinstance(self.value, bool) or not isinstance(self.value, (str, int)):
            raise InvalidParameterError(
                f"VectorLabels value must be an attribute name or an int class id, got "
                f"{self.value!r}"
            )


def check_value_fits(value: Any, dtype: str, what: str) -> None:
    """Refuse a label value that the mask dtype cannot hold."""
    info = np.iinfo(np.dtype(dtype))
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidParameterError(f"{what} must be an int, got {value!r}")
    if not info.min <= value <= info.max:
        raise InvalidParameterError(
            f"{what}={value} does not fit a {dtype} mask ({info.min}..{info.max}); "
            "choose another value or dtype"
        )


class VectorLabeller:
    """Burns :class:`VectorLabels` into chips; per-scene state is built once per process."""

    def __init__(self, spec: VectorLabels) -> None:
        self.spec = spec
        vectors = read_vectors(spec.source, layer=spec.layer, crs=spec.crs)
        self.geometries = made_valid(vectors.geometries)
        self.values = class_values(vectors, spec)
        self.crs = vectors.crs
        self.where = vectors.where
        self._tree: shapely.STRtree | None = None
        self._parts: dict[tuple[Any, ...], ScenePart] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_tree"] = None  # rebuilt where needed, cheaper than pickled
        state["_parts"] = {}
        return state

    def part(self, scene: Scene) -> ScenePart:
        """The scene's geometries in its pixel grid (made on first use in this process)."""
        key = (scene.id, scene.overview_level, scene.crs, scene.transform, scene.gcps)
        found = self._parts.get(key)
        if found is None:
            if self._tree is None:
                self._tree = shapely.STRtree(self.geometries)
            assert self.crs is not None  # read_vectors refuses vectors without one
            found = make_part(scene, self.geometries, self.values, self._tree, self.crs, self.where)
            self._parts[key] = found
        return found

    def mask(self, scene: Scene, window: ChipWindow, out: np.ndarray | None = None) -> np.ndarray:
        """The chip's label mask, ``(1, height, width)`` (written into ``out`` when given)."""
        burnt = self._burnt(scene, window)
        if out is None:
            if burnt is None:  # np.zeros takes pages the kernel zeroed, with no pass over them
                return np.zeros((1, window.height, window.width), dtype=self.spec.dtype)
            return burnt.astype(self.spec.dtype, copy=False)
        out[...] = 0 if burnt is None else burnt
        return out

    def _burnt(self, scene: Scene, window: ChipWindow) -> np.ndarray | None:
        """The chip's mask ``(1, height, width)`` in the dtype it is burnt in, ``None`` for 0s.

        That dtype holds every value and ``ignore_index``: ``uint8`` for classes up to 255,
        which keeps the chip in cache while it is burnt; it is widened to the mask's dtype
        once, as it is written out. ``None`` when no geometry meets the chip and the chip
        lies inside the scene.
        """
        spec = self.spec
        shape = (window.height, window.width)
        part = self.part(scene)
        hits = part.hits(window)
        inside = (
            window.row_off >= 0
            and window.col_off >= 0
            and window.row_off + window.height <= scene.height
            and window.col_off + window.width <= scene.width
        )
        if not len(hits) and inside:
            return None
        if not len(hits):
            burnt = np.zeros(shape, part.burnt.dtype)
        elif part.edges is not None and not spec.all_touched:
            offset = (window.row_off, window.col_off)
            burnt = burn_edges(part.edges, hits, part.burnt[hits], offset, shape)
        else:
            shapes = zip(part.pixels[hits], part.values[hits].tolist(), strict=True)
            burnt = burn(shapes, window, spec.all_touched, _BURN_DTYPES[spec.dtype])
        if not inside:
            if not np.can_cast(np.min_scalar_type(spec.ignore_index), burnt.dtype):
                burnt = burnt.astype(spec.dtype)
            outside(burnt[None], scene, window, spec.ignore_index)
        return burnt[None]

    def objects(
        self, scene: Scene, window: ChipWindow
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``(boxes (K, 4) float32 xyxy, class ids (K,) int64, instances (K, H, W) or None)``.

        Boxes are the bounds of each object's part inside the chip and the scene, in the
        chip's pixels; objects that only touch the chip (no area in it) are left out.
        """
        part = self.part(scene)
        hits = part.hits(window)
        r0, c0 = max(window.row_off, 0), max(window.col_off, 0)
        r1 = min(window.row_off + window.height, scene.height)
        c1 = min(window.col_off + window.width, scene.width)
        shape = (window.height, window.width)
        if not len(hits) or r1 <= r0 or c1 <= c0:
            empty = np.zeros((0, *shape), dtype=bool) if self.spec.instances else None
            return np.zeros((0, 4), np.float32), np.zeros(0, np.int64), empty
        clipped = shapely.intersection(part.geometries[hits], shapely.box(c0, r0, c1, r1))
        bounds = shapely.bounds(clipped)
        keep = ~shapely.is_empty(clipped)
        keep[keep] &= (bounds[keep, 2] > bounds[keep, 0]) & (bounds[keep, 3] > bounds[keep, 1])
        boxes = bounds[keep] - np.array([window.col_off, window.row_off] * 2, dtype=np.float64)
        labels = part.values[hits][keep].astype(np.int64)
        instances = None
        if self.spec.instances:
            instances = np.zeros((int(keep.sum()), *shape), dtype=bool)
            for k, geometry in enumerate(part.geometries[hits][keep]):
                instances[k] = burn([(geometry, 1)], window, self.spec.all_touched, "uint8")
        return boxes.astype(np.float32), labels, instances


def burn(shapes: Any, window: ChipWindow, all_touched: bool, dtype: str) -> np.ndarray:
    """Rasterise ``(geometry, value)`` pairs in scene pixels onto ``window`` (0 elsewhere)."""
    shape = (window.height, window.width)
    if window.col_off or window.row_off:
        to_chip = Affine.translation(window.col_off, window.row_off)
        burnt: np.ndarray = rasterio.features.rasterize(
            shapes, shape, fill=0, transform=to_chip, all_touched=all_touched, dtype=dtype
        )
        return burnt
    # An identity transform makes rasterio warn that the grid is not georeferenced (and
    # silencing a warning is not thread-safe): burn one column more, shifted, and cut it.
    wider: np.ndarray = rasterio.features.rasterize(
        shapes,
        (shape[0], shape[1] + 1),
        fill=0,
        transform=Affine.translation(-1, 0),
        all_touched=all_touched,
        dtype=dtype,
    )
    return wider[:, 1:]


def outside(mask: np.ndarray, scene: Scene, window: ChipWindow, value: int) -> None:
    """Set the pixels of ``mask`` (``(1, h, w)``) that lie outside the scene to ``value``."""
    top, left = -window.row_off, -window.col_off
    bottom = window.row_off + window.height - scene.height
    right = window.col_off + window.width - scene.width
    if top > 0:
        mask[:, :top] = value
    if left > 0:
        mask[:, :, :left] = value
    if bottom > 0:
        mask[:, window.height - bottom :] = value
    if right > 0:
        mask[:, :, window.width - right :] = value


def class_values(vectors: Vectors, spec: VectorLabels) -> np.ndarray:
    """Each geometry's class id, checked to fit the mask (int64)."""
    n = len(vectors)
    if isinstance(spec.value, int):
        check_value_fits(spec.value, spec.dtype, "value")
        if spec.value == spec.ignore_index:
            raise InvalidParameterError(
                f"value={spec.value} is the ignore_index; choose another value or ignore_index"
            )
        return np.full(n, spec.value, dtype=np.int64)
    raw = vectors.column(spec.value)
    if spec.classes is not None:
        names = (
            dict(spec.classes)
            if isinstance(spec.classes, Mapping)
            else {name: i + 1 for i, name in enumerate(spec.classes)}
        )
        unknown = sorted({str(v) for v in raw.tolist() if v not in names})
        if unknown:
            raise InvalidParameterError(
                f"attribute {spec.value!r} of {vectors.where} holds {unknown[:5]}, which "
                f"classes= does not name (it names {sorted(map(str, names))[:10]})"
            )
        ids = [names[v] for v in raw.tolist()]
    else:
        ids = raw.tolist()
    values = np.zeros(n, dtype=np.int64)
    value: Any
    for number, value in enumerate(ids):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise InvalidParameterError(
                f"feature {number} of {vectors.where} has {spec.value}={value!r}, not a class "
                "id; give classes=[...] to number names, or value=<an int> for one class"
            )
        check_value_fits(int(value), spec.dtype, f"feature {number}'s {spec.value}")
        if value == spec.ignore_index:
            raise InvalidParameterError(
                f"feature {number} of {vectors.where} has class {value}, which is "
                f"ignore_index; choose another ignore_index"
            )
        values[number] = value
    return values
