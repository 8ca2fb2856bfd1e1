"""Raster labels: a label raster per scene (or one for all), read onto each chip's grid.

A label raster on the scene's own grid (same CRS, transform and size as the level read)
is read window by window, as the image is. On any other grid or CRS it is resampled onto
the scene's grid by a GDAL warp (nearest by default), one window at a time: only the label
pixels under the chip are read. Reads go through the same :class:`~geochips.io.reader.Reader`
as the image (retries, signing, error messages naming the chip).

Label pixels equal to the label raster's nodata, and chip pixels outside the label raster
or outside the scene, become ``ignore_index``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely

from geochips import hrefs
from geochips.coordinates import (
    pixel_to_scene_crs,
    reproject_points,
    same_crs,
    scene_crs_to_pixel,
    window_rings,
)
from geochips.errors import InvalidParameterError
from geochips.io.headers import read_header
from geochips.io.reader import Reader
from geochips.labels.vector import MASK_DTYPES, burn, check_value_fits, outside
from geochips.scene import RESAMPLINGS, Scene, SceneSource
from geochips.sources.stac import asset_hrefs
from geochips.windows import ChipWindow

LabelHref = str | Mapping[str, str] | Callable[[Scene], str]


@dataclass(frozen=True)
class RasterLabels:
    """Labels from label rasters, read onto each chip's grid as ``sample["mask"]`` ``(1, H, W)``.

    **Usage**::

        labels = geochips.RasterLabels({"scene-a": "a_labels.tif", "scene-b": "b_labels.tif"})
        ds = geochips.ChipDataset(index, labels=labels)
        # or the classification asset of the STAC items the index was built from:
        labels = geochips.RasterLabels.from_stac(items, "classification")

    Args:
        source: the label raster of every scene (one path or URL: a map covering them
            all), a ``{scene id: href}`` mapping (STAC item ids name the scenes built
            from those items, see :meth:`from_stac`), or a callable ``scene -> href``
            given each :class:`~geochips.scene.Scene`.
        band: the band of the label raster holding the classes (1-based).
        ignore_index: the mask value of label nodata and of pixels no label covers.
        resampling: how a label raster on another grid is resampled onto the scene's
            (``"nearest"`` keeps class ids; ``"mode"`` takes the majority when the label
            grid is finer).
        dtype: the mask's integer dtype, one of :data:`~geochips.labels.MASK_DTYPES`.
    """

    source: LabelHref
    band: int = 1
    ignore_index: int = 255
    resampling: str = "nearest"
    dtype: str = "int64"

    def __post_init__(self) -> None:
        if self.dtype not in MASK_DTYPES:
            raise InvalidParameterError(
                f"RasterLabels dtype must be one of {MASK_DTYPES}, got {self.dtype!r}"
            )
        if self.resampling not in RESAMPLINGS:
            raise InvalidParameterError(
                f"RasterLabels resampling must be one of {RESAMPLINGS}, got {self.resampling!r}"
            )
        if isinstance(self.band, bool) or not isinstance(self.band, int) or self.band < 1:
            raise InvalidParameterError(f"RasterLabels band must be an int >= 1, got {self.band!r}")
        check_value_fits(self.ignore_index, self.dtype, "ignore_index")
        if not isinstance(self.source, (str, Mapping)) and not callable(self.source):
            raise InvalidParameterError(
                "RasterLabels source must be an href, a {scene id: href} mapping or a "
                f"callable scene -> href, got {type(self.source).__name__}"
            )

    @classmethod
    def from_stac(cls, items: object, asset: str, **options: Any) -> RasterLabels:
        """Labels from asset ``asset`` (e.g. a classification) of each scene's STAC item.

        ``items`` are the items the index was built from, in any form
        :meth:`ChipIndex.build` takes (Items, an ItemCollection, a search, Item JSON paths
        or URLs); ``options`` are the other fields (``band``, ``ignore_index``, ...). The
        hrefs are kept as a ``{item id: href}`` mapping, so the labels save with the index.
        Hrefs the index's signer signs (Planetary Computer) are signed at read time.

        Raises:
            InvalidParameterError: naming the item, if one lacks the asset.
        """
        return cls(asset_hrefs(items, asset), **options)

    def href(self, scene: Scene) -> str:
        """The href of the label raster of ``scene``."""
        if isinstance(self.source, str):
            return self.source
        if isinstance(self.source, Mapping):
            for key in (scene.id, _item_id(scene)):
                if key is not None and key in self.source:
                    return str(self.source[key])
            raise InvalidParameterError(
                f"RasterLabels has no label raster for scene {scene.id!r}; its mapping "
                f"names {len(self.source)} scene(s) such as {list(self.source)[:3]}"
            )
        return str(self.source(scene))


def _item_id(scene: Scene) -> str | None:
    """The STAC item a scene was built from: its id without ``"/<asset>+<asset>"``."""
    suffix = "/" + "+".join(scene.assets)
    if scene.assets and scene.id.endswith(suffix):
        return scene.id[: -len(suffix)]
    return None


@dataclass(frozen=True)
class _LabelScene:
    """How one scene's labels are read: the label file as a scene on the image's grid."""

    scene: Scene
    nodata: Any
    coverage: shapely.Geometry | None
    """The label raster's extent in the scene's pixels; ``None`` when it covers the scene."""
    file: Scene
    """The label raster's own header (its grid), which a coarse read of it needs."""


class RasterLabeller:
    """Reads :class:`RasterLabels` chip by chip through a :class:`Reader`."""

    def __init__(self, spec: RasterLabels, reader: Reader | None = None) -> None:
        self.spec = spec
        self.reader = reader if reader is not None else Reader()
        self._scenes: dict[tuple[Any, ...], _LabelScene] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"spec": self.spec, "reader": self.reader, "_scenes": {}}

    def label_scene(self, scene: Scene) -> _LabelScene:
        """The label file of ``scene`` as a scene on its grid (its header read once)."""
        key = (scene.id, scene.overview_level)
        found = self._scenes.get(key)
        if found is None:
            found = self._scenes[key] = self._make(scene)
        return found

    def _make(self, scene: Scene) -> _LabelScene:
        href = self.spec.href(scene)
        header = read_header(
            SceneSource(f"labels of {scene.id}", (href,)),
            signer=self.reader.signer,
            gdal_options=self.reader.gdal_options,
        )
        where = f"label raster {hrefs.redact(href)} of scene {scene.id!r}"
        if self.spec.band > header.count:
            raise InvalidParameterError(
                f"{where} has {header.count} band(s); RasterLabels(band={self.spec.band})"
            )
        if np.dtype(header.dtype).kind not in "iu":
            raise InvalidParameterError(
                f"{where} holds {header.dtype} values, not class ids; labels must be integers"
            )
        if header.georef == "none" or header.crs is None or scene.crs is None:
            raise InvalidParameterError(
                f"{where} or its scene has no CRS, so the two cannot be aligned; georeference both"
            )
        nodata = None if header.nodata is None else np.dtype(header.dtype).type(header.nodata)
        if _same_grid(header, scene):
            on_grid = dataclasses.replace(header, id=scene.id, overview_level=None)
            return _LabelScene(on_grid, nodata, None, header)
        if header.georef == "gcps" or scene.georef == "gcps":
            raise InvalidParameterError(
                f"{where} is not on its scene's grid, and one of them is georeferenced only "
                "by GCPs, which a warp cannot target; give a label raster with the scene's "
                "size and GCPs, or vector labels"
            )
        warped = dataclasses.replace(
            scene,
            hrefs=(href,),
            assets=(),
            band_counts=(header.count,),
            dtype=header.dtype,
            nodata=header.nodata,
            resampling=self.spec.resampling,
            warped=(True,),
            file_levels=(None,),
            scales=(),
            offsets=(),
        )
        return _LabelScene(warped, nodata, _coverage(header, scene), header)

    def mask(
        self,
        scene: Scene,
        window: ChipWindow,
        out: np.ndarray | None = None,
        chip_id: str | None = None,
    ) -> np.ndarray:
        """The chip's label mask, ``(1, height, width)`` (written into ``out`` when given)."""
        spec = self.spec
        labels = self.label_scene(scene)
        data = self.reader.read(labels.scene, window, [spec.band], fill_value=0, chip_id=chip_id)
        mask = np.empty((1, window.height, window.width), spec.dtype) if out is None else out
        np.copyto(mask, data, casting="unsafe")
        if labels.nodata is not None:
            mask[data == labels.nodata] = spec.ignore_index
        if labels.coverage is not None:
            _outside_coverage(mask, labels.coverage, window, spec.ignore_index)
        outside(mask, scene, window, spec.ignore_index)
        return mask


def _same_grid(header: Scene, scene: Scene) -> bool:
    if header.shape != scene.shape or not same_crs(header.crs, scene.crs):
        return False
    if header.georef == "gcps" or scene.georef == "gcps":
        return header.georef == scene.georef and header.gcps == scene.gcps
    assert header.transform is not None and scene.transform is not None
    unit = max(abs(v) for v in tuple(scene.transform)[:6])
    return bool(header.transform.almost_equals(scene.transform, precision=1e-9 * max(unit, 1)))


def _coverage(header: Scene, scene: Scene) -> shapely.Geometry | None:
    """The label raster's outline in the scene's pixels, or None if it covers the scene."""
    cols, rows = window_rings(
        np.array([0]), np.array([0]), np.array([header.height]), np.array([header.width]), 64
    )
    assert header.crs is not None and scene.crs is not None
    xs, ys = reproject_points(header.crs, scene.crs, *pixel_to_scene_crs(header, cols, rows))
    c, r = scene_crs_to_pixel(scene, xs, ys)
    outline = shapely.make_valid(shapely.polygons(np.stack([c[0], r[0]], axis=-1)))
    if outline.contains(shapely.box(0, 0, scene.width, scene.height)):
        return None
    return outline


def _outside_coverage(
    mask: np.ndarray, coverage: shapely.Geometry, window: ChipWindow, value: int
) -> None:
    box = shapely.box(
        window.col_off,
        window.row_off,
        window.col_off + window.width,
        window.row_off + window.height,
    )
    if coverage.contains(box):
        return
    inside = burn([(coverage, 1)], window, False, "uint8")
    mask[0][inside == 0] = value
