"""Index build time and size: 1,000,000 chips from synthetic headers (no file is opened).

python benchmarks/bench_index.py      # prints JSON
"""

from __future__ import annotations

import json
import pickle
import time

from affine import Affine

from geochips import ChipIndex, Scene


def scenes(count: int, side: int) -> list[Scene]:
    return [
        Scene(
            id=f"S1A_IW_GRDH_{i:04d}",
            hrefs=(f"https://example.test/{i:04d}/vv.tif",),
            assets=("vv",),
            overview_level=None,
            height=side,
            width=side,
            band_counts=(1,),
            dtype="uint16",
            nodata=0.0,
            crs="EPSG:32631",
            transform=Affine(10.0, 0.0, 600_000.0 + i * 1e5, 0.0, -10.0, 5_000_000.0),
            georef="transform",
            tile_shape=(512, 512),
            full_shape=(side, side),
        )
        for i in range(count)
    ]


def main() -> None:
    # 100 scenes of 25,600 px a side: 100 x 100 x 100 = 1,000,000 chips of 256 px.
    headers = scenes(100, 25_600)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        index = ChipIndex.from_scenes(headers, size=256, stride=256)
        best = min(best, time.perf_counter() - t0)
    assert len(index) == 1_000_000, len(index)
    nbytes = sum(index.column(name).nbytes for name in index.column_names)
    pickled = len(pickle.dumps(index))
    print(
        json.dumps(
            {
                "chips": len(index),
                "build_s": best,
                "bytes_per_chip": nbytes / len(index),
                "pickle_bytes_per_chip": pickled / len(index),
            }
        )
    )


if __name__ == "__main__":
    main()
