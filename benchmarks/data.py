"""Benchmark scenes: Sentinel-1-like COGs generated once into benchmarks/.data/ (git-ignored).

Each scene is what Planetary Computer serves for a Sentinel-1 GRD ``vv`` asset, in
miniature: one band of uint16 amplitude with speckle (gamma-distributed, so DEFLATE
compresses it about as poorly as real SAR), a nodata (0) border around a slanted swath,
512x512 DEFLATE tiles and overviews, written by GDAL's COG driver.

    python benchmarks/data.py            # the sizes of the recorded run
    python benchmarks/data.py --quick    # small scenes for a smoke run
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.io import MemoryFile

DATA_DIR = Path(__file__).resolve().parent / ".data"
SAMPLES = Path(__file__).resolve().parents[1] / "geochips" / "sample_data"
# The real uint16 samples (Sentinel-1 GRD with GCPs, two Sentinel-2 bands); RGB.byte.tif is
# striped uint8 with 3 bands and would not stack with them in one batch.
SAMPLE_FILES = ("cog_gcps.tif", "scene_band1.tif", "scene_band2.tif")


def s1_like(height: int, width: int, seed: int) -> np.ndarray:
    """Return ``(1, height, width)`` uint16 SAR-like amplitude with a nodata border."""
    rng = np.random.default_rng(seed)
    # A smooth backscatter field (land/water contrast) times single-look speckle.
    coarse = rng.gamma(2.0, 150.0, size=(height // 256 + 2, width // 256 + 2))
    rows = np.linspace(0, coarse.shape[0] - 1.001, height)
    cols = np.linspace(0, coarse.shape[1] - 1.001, width)
    field = coarse[rows.astype(int)][:, cols.astype(int)].astype(np.float32)
    speckle = rng.gamma(4.0, 0.25, size=(height, width)).astype(np.float32)
    data = np.clip(field * speckle, 1, 65535).astype(np.uint16)
    # Swath edges: GRD frames are parallelograms inside their raster, zero (nodata) outside.
    r = np.arange(height)[:, None]
    c = np.arange(width)[None, :]
    slant = width // 12
    left = slant * (1 - r / height)
    right = width - slant * (r / height)
    data[(c < left) | (c > right)] = 0
    data[: height // 50] = 0
    return data[None]


def write_cog(path: Path, data: np.ndarray, seed: int = 0) -> Path:
    """Write ``data`` as a 512x512-tiled DEFLATE COG with overviews (nodata 0).

    Scenes of different seeds lie side by side (200 km apart), never overlapping, so a
    spatial index (torchgeo) sees one scene per query, as geochips does.
    """
    count, height, width = data.shape
    profile = {
        "driver": "GTiff",
        "height": height,
        "width": width,
        "count": count,
        "dtype": str(data.dtype),
        "nodata": 0,
        "crs": "EPSG:32631",
        "transform": Affine(10.0, 0.0, 200_000.0 * (seed + 1), 0.0, -10.0, 5_000_000.0),
    }
    tmp = path.with_suffix(".tmp.tif")
    with rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS"), MemoryFile() as memfile:
        with memfile.open(**profile) as dst:
            dst.write(data)
        with memfile.open() as src:
            rasterio.shutil.copy(
                src,
                tmp,
                driver="COG",
                blocksize=512,
                compress="DEFLATE",
                overview_resampling="nearest",
                overviews="AUTO",
            )
    os.replace(tmp, path)
    return path


def scene(height: int, width: int, seed: int = 0) -> Path:
    """Return the path of a generated scene, writing it on first use."""
    DATA_DIR.mkdir(exist_ok=True)
    path = DATA_DIR / f"s1like_v2_{height}x{width}_{seed}.tif"
    if not path.exists():
        write_cog(path, s1_like(height, width, seed), seed)
    return path


def sizes(quick: bool) -> dict[str, list[tuple[int, int]]]:
    """Scene sizes: the main pair, and a small/large pair for the memory comparison."""
    if quick:
        return {"main": [(2048, 2560), (2560, 2048)], "memory": [(1024, 1024), (4096, 4096)]}
    return {"main": [(9216, 9728), (9728, 9216)], "memory": [(4096, 4096), (16384, 16384)]}


def main_scenes(quick: bool) -> list[Path]:
    """Generated scenes of the main grids."""
    return [scene(h, w, seed=i) for i, (h, w) in enumerate(sizes(quick)["main"])]


def memory_scenes(quick: bool) -> list[Path]:
    """A small and a large scene: peak RSS must not grow with scene size."""
    return [scene(h, w, seed=i) for i, (h, w) in enumerate(sizes(quick)["memory"])]


def sample_scenes() -> list[Path]:
    """The real sample scenes shipped with geochips."""
    return [SAMPLES / name for name in SAMPLE_FILES]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    for group in sizes(args.quick).values():
        for i, (h, w) in enumerate(group):
            print(scene(h, w, seed=i))
