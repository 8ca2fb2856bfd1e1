"""What ``geochips.band_stats`` reads from the real sample scenes, and what it costs.

python benchmarks/bench_stats.py      # prints JSON, one entry per sample scene

For each scene: every ``DatasetReader.read`` during ``band_stats`` is recorded (a spy; the
reads still happen), split into reads from the file's full resolution and from overviews,
as pixels requested (window area x bands, in the grid of the dataset read) and their bytes
in the scene's dtype; then the time of ``band_stats`` over the scene's 256/256 chips
against the time of one chip read (``ds[i]``, the median over every chip). The target is
zero full-resolution pixels; a scene without overviews (``RGB.byte.tif``) is read
decimated from full resolution, with an ``OverviewWarning``, and is reported as such.
"""

from __future__ import annotations

import json
import statistics
import time
import warnings
from typing import Any

import numpy as np
import rasterio
import rasterio.io

import geochips
from geochips import sample_data


def measure(name: str, repeat: int = 5) -> dict[str, Any]:
    path = str(sample_data.path(name))
    with rasterio.open(path) as src:
        full_shape, itemsize = (src.height, src.width), np.dtype(src.dtypes[0]).itemsize
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        index = geochips.ChipIndex.build([path], size=256, edge="pad")
    reads: list[tuple[bool, int]] = []
    real = rasterio.io.DatasetReader.read

    def spy(self: Any, indexes: Any = None, **kwargs: Any) -> Any:
        window = kwargs.get("window")
        h, w = (window.height, window.width) if window is not None else (self.height, self.width)
        bands = self.count if indexes is None else len(np.atleast_1d(indexes))
        reads.append(((self.height, self.width) == full_shape, int(h * w * bands)))
        return real(self, indexes, **kwargs)

    rasterio.io.DatasetReader.read = spy  # type: ignore[method-assign]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", geochips.OverviewWarning)
            stats = geochips.band_stats(index)
    finally:
        rasterio.io.DatasetReader.read = real  # type: ignore[method-assign]
    best = float("inf")
    for _ in range(repeat):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", geochips.OverviewWarning)
            t0 = time.perf_counter()
            geochips.band_stats(index)
            best = min(best, time.perf_counter() - t0)
    ds = geochips.ChipDataset(index)
    ds[0]  # open the file once, as a training run has
    chip_times = []
    for i in range(len(ds)):
        t0 = time.perf_counter()
        ds[i]
        chip_times.append(time.perf_counter() - t0)
    chip = statistics.median(chip_times)
    full_px = sum(n for full, n in reads if full)
    return {
        "scene": name,
        "levels": list(stats.levels),
        "full_resolution_pixels": full_px,
        "full_resolution_bytes": full_px * itemsize,
        "overview_pixels": sum(n for full, n in reads if not full),
        "band_stats_s": best,
        "chip_read_s": chip,
        "band_stats_in_chip_reads": best / chip,
    }


def main() -> None:
    print(json.dumps([measure(name) for name in sample_data.SCENES]))


if __name__ == "__main__":
    main()
