"""Synthetic scenes with known pixels, shared by the tests and the benchmarks.

Pixel values encode their position, so every chip read has an exact oracle: the value at
(band b, row r, col c) is ``(b * 7919 + r * width + c) % modulus``, where ``modulus`` keeps
values within the dtype (and exact in float32).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.control import GroundControlPoint
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import MemoryFile

Layout = Literal["cog", "tiled", "striped"]


def position_values(count: int, height: int, width: int, dtype: str = "uint16") -> np.ndarray:
    """Return a ``(count, height, width)`` array whose values encode their position."""
    dt = np.dtype(dtype)
    if dt.kind in "iu":
        modulus = min(int(np.iinfo(dt).max) + 1, 2**24)
    else:
        modulus = 2**24  # integers up to 2**24 are exact in float32
    rows = np.arange(height, dtype=np.int64)[:, None] * width
    cols = np.arange(width, dtype=np.int64)[None, :]
    bands = np.arange(1, count + 1, dtype=np.int64)[:, None, None] * 7919
    return ((bands + rows + cols) % modulus).astype(dt)


def write_scene(
    path: str | os.PathLike[str],
    *,
    height: int = 40,
    width: int = 50,
    count: int = 3,
    dtype: str = "uint16",
    nodata: float | None = None,
    layout: Layout = "tiled",
    blocksize: int = 16,
    compress: str = "deflate",
    overviews: Sequence[int] = (),
    crs: str | None = "EPSG:32618",
    transform: Affine | None = None,
    gcps: Sequence[GroundControlPoint] | None = None,
    data: np.ndarray | None = None,
) -> str:
    """Write a GeoTIFF with position-encoded pixels (or ``data``) and return its path.

    ``layout="cog"`` goes through GDAL's COG driver (tiles of at least 128 px, overviews
    after the data, as published COGs are); ``"tiled"`` (any block size, for small test
    scenes) and ``"striped"`` write plain GeoTIFFs. ``gcps`` (in
    EPSG:4326) replace the CRS and transform, as in Sentinel-1 GRD files.
    """
    if layout == "cog" and blocksize < 128:
        raise ValueError(f"GDAL's COG driver needs blocksize >= 128, got {blocksize}")
    pixels = position_values(count, height, width, dtype) if data is None else data
    count, height, width = pixels.shape
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "height": height,
        "width": width,
        "count": count,
        "dtype": str(pixels.dtype),
        "nodata": nodata,
        "compress": compress,
    }
    if gcps is None and crs is not None:
        profile["crs"] = crs
        profile["transform"] = transform or Affine(10.0, 0.0, 500_000.0, 0.0, -10.0, 4_000_000.0)
    if layout == "tiled" or layout == "cog":
        profile.update(tiled=True, blockxsize=blocksize, blockysize=blocksize)
    else:
        profile.update(tiled=False, blockysize=1)
    target = os.fspath(path)
    with warnings.catch_warnings():
        # Scenes without a CRS are written on purpose.
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        _write(target, pixels, profile, layout, blocksize, compress, overviews, gcps)
    return target


def _write(
    target: str,
    pixels: np.ndarray,
    profile: dict[str, Any],
    layout: Layout,
    blocksize: int,
    compress: str,
    overviews: Sequence[int],
    gcps: Sequence[GroundControlPoint] | None,
) -> None:
    def fill(dst: Any) -> None:
        dst.write(pixels)
        if gcps is not None:
            dst.gcps = (list(gcps), rasterio.crs.CRS.from_epsg(4326))

    if layout != "cog":
        with rasterio.open(target, "w", **profile) as dst:
            fill(dst)
            if overviews:
                dst.build_overviews(list(overviews), Resampling.nearest)
        return
    with MemoryFile() as memfile:
        with memfile.open(**profile) as dst:
            fill(dst)
        with memfile.open() as src:
            options: dict[str, Any] = {
                "blocksize": blocksize,
                "compress": compress,
                "overview_resampling": "nearest",
                "overviews": "AUTO" if overviews else "NONE",
            }
            if overviews:
                options["overview_count"] = len(overviews)
            rasterio.shutil.copy(src, target, driver="COG", **options)


def expected_chip_count(length: int, size: int, stride: int, edge: str) -> int:
    """Count windows along one axis by walking the grid: an oracle independent of the formula.

    Windows start at 0, stride, 2 * stride, ... inside the scene; the walk stops at the first
    window that reaches the scene end. ``drop`` keeps the windows fully inside, ``pad``
    keeps them all, ``shift`` keeps those inside plus one moved in to end on the edge if
    they fell short of it.
    """
    starts = [0]
    while starts[-1] + size < length and starts[-1] + stride < length:
        starts.append(starts[-1] + stride)
    inside = sum(1 for s in starts if s + size <= length)
    if edge == "drop":
        return inside
    if edge == "pad":
        return len(starts)
    covered = inside > 0 and (inside - 1) * stride + size == length
    return inside + (1 if inside > 0 and not covered else 0)
