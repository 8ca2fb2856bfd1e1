"""Writing a scene-sized result: a tiled GeoTIFF under a temporary name, then a COG.

:class:`SceneWriter` writes tiles in any order into ``<path>.partial-<pid>.tif`` (sparse:
tiles never written read as nodata), and :meth:`SceneWriter.finish` turns it into a
Cloud-Optimized GeoTIFF with GDAL's COG driver (tiles, compression, overviews), written
under a second temporary name and renamed onto ``path`` last: a run that stops half way
leaves files named ``.partial-*``, never one that looks complete.

The output is on the scene's grid at the level read: its CRS and transform, or, for a
scene georeferenced only by GCPs (Sentinel-1 GRD), its GCPs.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.control import GroundControlPoint
from rasterio.windows import Window

from geochips.errors import InvalidParameterError
from geochips.scene import Scene

BLOCK = 512
"""Tile side of the outputs (GDAL's COG default)."""


def georeferencing(scene: Scene) -> dict[str, Any]:
    """The profile entries that put a file on the scene's grid: CRS and transform, or GCPs."""
    if scene.georef == "gcps":
        points = [GroundControlPoint(row=r, col=c, x=x, y=y) for r, c, x, y in scene.gcps]
        return {"gcps": points, "crs": scene.crs}
    if scene.transform is not None:
        return {"transform": scene.transform, "crs": scene.crs}
    return {}


def tiled_profile(
    scene: Scene,
    *,
    count: int,
    dtype: str,
    nodata: float | None,
    block: tuple[int, int] = (BLOCK, BLOCK),
    compress: str = "zstd",
) -> dict[str, Any]:
    """The creation profile of a sparse tiled GeoTIFF on ``scene``'s grid.

    Tiles never written are left out of the file (``SPARSE_OK``) and read as ``nodata``;
    ``compress`` is GDAL's name (``"zstd"`` at level 1: fast to write and to read back).
    """
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": scene.width,
        "height": scene.height,
        "count": count,
        "dtype": dtype,
        "nodata": nodata,
        "tiled": True,
        "blockysize": block[0],
        "blockxsize": block[1],
        "sparse_ok": True,
        "bigtiff": "if_safer",
        **georeferencing(scene),
    }
    if compress != "none":
        profile["compress"] = compress
    if compress == "zstd":
        profile["zstd_level"] = 1
    return profile


class SceneWriter:
    """One scene's output, written tile by tile (see the module docstring)."""

    def __init__(
        self,
        path: str,
        scene: Scene,
        *,
        bands: int,
        dtype: str,
        nodata: float,
        overwrite: bool = False,
        scales: tuple[float, ...] | None = None,
    ) -> None:
        if os.path.exists(path) and not overwrite:
            raise InvalidParameterError(
                f"{path!r} exists; remove it, choose another path, or pass overwrite=True"
            )
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        self.path = path
        self.partial = f"{path}.partial-{os.getpid()}.tif"
        self.dtype = dtype
        self.nodata = nodata
        # zstd for the partial file only: fast to write and to read back.
        profile = tiled_profile(scene, count=bands, dtype=dtype, nodata=nodata)
        self._dst = rasterio.open(self.partial, "w", **profile)
        if scales is not None:
            self._dst.scales = scales

    def write(self, data: np.ndarray, row_off: int, col_off: int) -> None:
        """Write ``data`` ``(bands, h, w)`` at ``(row_off, col_off)`` of the scene's grid."""
        _, h, w = data.shape
        self._dst.write(data.astype(self.dtype, copy=False), window=Window(col_off, row_off, w, h))

    def finish(self, resampling: str, compress: str = "deflate") -> str:
        """Close, make the COG (overviews by ``resampling``), rename it onto the path.

        ``compress`` is the COG's compression (GDAL's name: ``deflate``, ``zstd``, ``lzw``,
        ``none``); it takes most of the time of a float output.
        """
        self._dst.close()
        cog = f"{self.path}.partial-{os.getpid()}.cog.tif"
        try:
            predictor = 3 if np.dtype(self.dtype).kind == "f" else 2
            rasterio.shutil.copy(
                self.partial,
                cog,
                driver="COG",
                compress=compress.upper(),
                predictor=predictor if compress.lower() != "none" else "NO",
                blocksize=BLOCK,
                overview_resampling=resampling,
                bigtiff="IF_SAFER",
                num_threads="ALL_CPUS",  # compression takes most of the time
            )
            os.replace(cog, self.path)
        finally:
            for leftover in (self.partial, cog):
                if os.path.exists(leftover):
                    os.remove(leftover)
        return self.path

    def abort(self) -> None:
        """Close and remove the partial file."""
        self._dst.close()
        if os.path.exists(self.partial):
            os.remove(self.partial)


def part_path(path: str, part: int, parts: int) -> str:
    """Where part ``part`` of ``parts`` (a rank's share) keeps one scene's accumulators."""
    return f"{path}.part-{part}-of-{parts}.tif"


class PartWriter:
    """One rank's accumulators of one scene: a sparse float64 GeoTIFF (NaN where untouched).

    Written under a temporary name and renamed by :meth:`finish`, like the outputs.
    """

    def __init__(self, path: str, scene: Scene, bands: int) -> None:
        self.path = path
        self.partial = f"{path}.partial-{os.getpid()}.tif"
        profile = tiled_profile(scene, count=bands, dtype="float64", nodata=float("nan"))
        self._dst = rasterio.open(self.partial, "w", **profile)

    def write(self, data: np.ndarray, row_off: int, col_off: int) -> None:
        """Write planes ``(bands, h, w)`` at ``(row_off, col_off)``."""
        _, h, w = data.shape
        self._dst.write(data.astype(np.float64), window=Window(col_off, row_off, w, h))

    def finish(self) -> str:
        """Close and rename onto the part's path."""
        self._dst.close()
        os.replace(self.partial, self.path)
        return self.path

    def abort(self) -> None:
        """Close and remove the file."""
        self._dst.close()
        if os.path.exists(self.partial):
            os.remove(self.partial)


class PartReader:
    """Reads windows of a part written by :class:`PartWriter` (NaN where it has nothing)."""

    def __init__(self, path: str) -> None:
        self._src = rasterio.open(path)

    def read(self, row_off: int, col_off: int, height: int, width: int) -> np.ndarray:
        """The planes ``(bands, height, width)`` at the window."""
        data: np.ndarray = self._src.read(window=Window(col_off, row_off, width, height))
        return data

    def close(self) -> None:
        """Close the file."""
        self._src.close()
