"""What a scene is: its source (id and hrefs) and its header (size, dtype, georeferencing).

A :class:`SceneSource` is what the user points at, resolved to an id and the hrefs whose
bands are stacked (:mod:`geochips.sources` makes them). A :class:`Scene` is the header of
one raster source as it will be read: one file, or several co-registered files (STAC
assets) whose bands are stacked in order, at one overview level, read by
:mod:`geochips.io.headers`. Overview levels follow GDAL and rioxarray: ``None`` is full
resolution, ``0`` the first overview (usually a factor of 2), and so on. Every pixel
quantity of a scene (height, width, transform, GCPs, tile shape) is given in the grid of
that level.

Scenes georeferenced only by ground control points (Sentinel-1 GRD) keep their GCPs, scaled
to the level, and get the least-squares affine transform that fits them, so bounds and
footprints are approximate but never a silent identity transform. Both are plain data
that pickle cheaply; :mod:`geochips.scene_json` is the codec of a saved index.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from affine import Affine

from geochips import hrefs
from geochips.errors import InvalidParameterError

RESAMPLINGS = ("nearest", "bilinear", "cubic", "cubic_spline", "lanczos", "average", "mode")
"""How files read onto another grid are interpolated (GDAL's names)."""


@dataclass(frozen=True)
class SceneSource:
    """One scene to index: an id and the hrefs whose bands are stacked, in order."""

    id: str
    """Stable scene id; it prefixes every chip id of the scene."""
    hrefs: tuple[str, ...]
    """Unsigned hrefs, one per file (asset); their bands are stacked in this order."""
    assets: tuple[str, ...] = ()
    """STAC asset keys matching ``hrefs``, or ``()`` for plain files."""
    properties: Mapping[str, Any] = field(default_factory=dict)
    """Values that become index columns (e.g. STAC item properties)."""
    bands: tuple[tuple[Mapping[str, float | None], ...], ...] = ()
    """Per href, what the catalog says of each band (STAC ``raster:bands``: ``scale``,
    ``offset``, ``nodata``), or ``()``; applied where the file's own header is silent."""

    def __post_init__(self) -> None:
        if not self.hrefs:
            raise InvalidParameterError(f"scene {self.id!r} has no href")
        if "\n" in self.id or not self.id:
            raise InvalidParameterError(f"scene id must be a non-empty line, got {self.id!r}")


Georef = Literal["transform", "gcps", "none"]


@dataclass(frozen=True)
class Scene:
    """Header of one scene, read once; plain data that pickles cheaply."""

    id: str
    """Stable scene id, the prefix of its chip ids."""
    hrefs: tuple[str, ...]
    """Unsigned hrefs, one per stacked file."""
    assets: tuple[str, ...]
    """STAC asset keys matching ``hrefs`` (``()`` for plain files)."""
    overview_level: int | None
    """Overview level read (``None``: full resolution)."""
    height: int
    width: int
    band_counts: tuple[int, ...]
    """Number of bands of each file in ``hrefs``."""
    dtype: str
    nodata: float | None
    crs: str | None
    """``"EPSG:<code>"`` when the CRS has one, else WKT; ``None`` when not georeferenced."""
    transform: Affine | None
    """Pixel-to-CRS transform of the read grid (fitted to the GCPs for GCP scenes)."""
    georef: Georef
    gcps: tuple[tuple[float, float, float, float], ...] = ()
    """``(row, col, x, y)`` ground control points in the read grid (GCP scenes only)."""
    tile_shape: tuple[int, int] = (1, 1)
    """Shape of the first file's tiles (GDAL's internal blocks: tiles or strips) at the
    read level, ``(height, width)``."""
    scales: tuple[float, ...] = ()
    offsets: tuple[float, ...] = ()
    full_shape: tuple[int, int] = (0, 0)
    """``(height, width)`` of the full-resolution grid."""
    properties: dict[str, Any] = field(default_factory=dict, compare=False)
    resampling: str | None = None
    """Resampling of the files read onto the scene's grid (``None``: all are on it)."""
    warped: tuple[bool, ...] = ()
    """Per file: read through a warp onto the scene's grid (empty: none is)."""
    file_levels: tuple[int | None, ...] = ()
    """Per file: overview level opened (empty: ``overview_level`` for every file)."""

    @property
    def count(self) -> int:
        """Number of bands of the stacked scene."""
        return sum(self.band_counts)

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` of the read grid."""
        return self.height, self.width

    @property
    def name(self) -> str:
        """What messages call the scene: its id and redacted first href."""
        return f"{self.id!r} ({hrefs.redact(self.hrefs[0])})"

    def file_level(self, file: int) -> int | None:
        """Return the overview level the file at position ``file`` is opened at."""
        return self.file_levels[file] if self.file_levels else self.overview_level

    def is_warped(self, file: int) -> bool:
        """Return whether the file at position ``file`` is resampled onto the scene's grid."""
        return bool(self.warped) and self.warped[file]

    def band_map(self) -> list[tuple[int, int]]:
        """Return ``(file position, band index in that file)`` for every stacked band."""
        return [(f, b) for f, n in enumerate(self.band_counts) for b in range(1, n + 1)]


def check_bands(bands: Sequence[int] | int | None, scenes: Sequence[Scene]) -> list[int] | None:
    """Return ``bands`` as a list of 1-based ints that every scene has (``None``: all).

    Raises:
        InvalidParameterError: naming the scene that lacks a band.
    """
    if bands is None:
        return None
    picked = [bands] if isinstance(bands, int) else list(bands)
    if not picked or not all(isinstance(b, (int, np.integer)) for b in picked):
        raise InvalidParameterError(f"bands must be 1-based ints, got bands={bands!r}")
    for scene in scenes:
        bad = [b for b in picked if not 1 <= b <= scene.count]
        if bad:
            raise InvalidParameterError(
                f"bands {bad} do not exist in scene {scene.name}, which has bands "
                f"1..{scene.count} (bands are 1-based, as in rasterio)"
            )
    return [int(b) for b in picked]
