"""Shuffled reads over many scenes: how many open handles a thread keeps (issue 14).

python benchmarks/bench_handles.py      # prints JSON: chips/s per max_open

104 COGs of 1024x1024 uint16 (DEFLATE, 512 tiles), 4 chips of 512 each, read by ``ds[i]``
in one thread in a shuffled order three times over. ``max_open=8`` (the old default)
reopens a file for most chips; the default sizes the handles from the descriptor limit;
1000 keeps every scene open. Target: the default ≥ 0.9× all open.
"""

from __future__ import annotations

import json
import os
import tempfile
import time

import numpy as np
import rasterio
from affine import Affine

import geochips


def scenes(folder: str, count: int = 104) -> list[str]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = os.path.join(folder, f"s{i:03d}.tif")
        profile = {
            "driver": "COG", "width": 1024, "height": 1024, "count": 1, "dtype": "uint16",
            "blocksize": 512, "compress": "deflate", "crs": "EPSG:32631",
            "transform": Affine(10, 0, 500_000 + i * 20_000, 0, -10, 5_000_000),
        }  # fmt: skip
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(rng.integers(0, 4000, (1, 1024, 1024), dtype="uint16"))
        paths.append(path)
    return paths


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        index = geochips.ChipIndex.build(scenes(folder), size=512)
        order = np.random.default_rng(1).permutation(len(index)).tolist() * 3
        rows = []
        for max_open in (8, None, 1000):
            ds = geochips.ChipDataset(index, max_open=max_open, dtype="uint16", threads=1)
            for i in order[:50]:  # warm: GDAL's block cache and the handles
                ds[i]
            started = time.perf_counter()
            for i in order:
                ds[i]
            rate = len(order) / (time.perf_counter() - started)
            rows.append(
                {"max_open": max_open, "per_thread": ds.reader.max_open, "chips_per_s": rate}
            )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
