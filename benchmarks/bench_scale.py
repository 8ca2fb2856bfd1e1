"""Index operations from 100k to 10M chips: time, growth exponent (issue 14).

python benchmarks/bench_scale.py [--sizes 100000 1000000 10000000] [--no-save] [--no-split]

Synthetic headers (no file is opened), as in the issue: 961 chips a scene (4096 px, size
256, stride 128), scenes in three UTM zones. Each operation is timed once per size, in
one process; ``exponent`` is the slope of log(time) against log(chips) from the smallest
to the largest size (1.0 is linear). ``save`` writes the index as a folder (and, up to 1M
chips, as one file) in a temporary directory, ``load`` reads it back whole and one shard of
eight (``shard=(3, 8)``); ``*_rss_mb`` is the peak RSS the operation added to what the
process held before it (Linux: the peak is reset through ``/proc/self/clear_refs``), and
``index_mb`` the index's own arrays, for the target "peak RSS < 2x the index's own size".
``load_fresh_*`` loads the folder again in a new process (``--load PATH``), where no memory
freed by save and kept by the allocators hides part of what load adds.
``split`` is ``spatial_split`` 70/15/15 with the default blocks, ``leakage`` the proof of its
result (target: both together < 60 s and < 4 GiB at 10M chips). Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

import shapely
from affine import Affine

from geochips import ChipIndex, Scene, check_leakage, filter_aoi, spatial_split

CHIPS_PER_SCENE = 961


def scenes(count: int) -> list[Scene]:
    """``count`` 4096 px scenes (10 m pixels) in UTM zones 31-33, as an archive holds them.

    Each zone has 480 tiles, 12 across and 40 down, 41 km apart (lat ~48-63 N, inside the
    zone, where chips are straight in lon/lat); past 1,440 scenes the tiles are revisited.
    """
    out = []
    for i in range(count):
        zone = 31 + i % 3
        tile = (i // 3) % 480
        col, row = tile % 12, tile // 12
        out.append(
            Scene(
                id=f"S2_{i:06d}/B04",
                hrefs=(f"https://example.test/{i:06d}/B04.tif",),
                assets=("B04",),
                overview_level=None,
                height=4096,
                width=4096,
                band_counts=(1,),
                dtype="uint16",
                nodata=0.0,
                crs=f"EPSG:326{zone}",
                transform=Affine(10.0, 0.0, 254_000.0 + col * 41_000, 0.0, -10.0,
                                 7_000_000.0 - row * 41_000),
                georef="transform",
                tile_shape=(512, 512),
                full_shape=(4096, 4096),
            )
        )  # fmt: skip
    return out


def timed(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field))


def peak(fn: Any) -> tuple[float, float, Any]:
    """``(seconds, MB of peak RSS above the RSS before, result)`` of ``fn()``."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # VmHWM := VmRSS
    before = _rss_kb("VmRSS")
    started = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - started
    return seconds, (_rss_kb("VmHWM") - before) / 1024, out


def files(index: ChipIndex, one_file: bool) -> dict[str, float]:
    """Save and load times and peak RSS, as a folder (and one file)."""
    out: dict[str, float] = {
        "index_mb": sum(index.column(n).nbytes for n in index.column_names) / 2**20
    }
    with tempfile.TemporaryDirectory() as folder:
        layouts = {"folder": os.path.join(folder, "chips") + os.sep}
        if one_file:
            layouts["file"] = os.path.join(folder, "chips.parquet")
        for name, path in layouts.items():
            saved = peak(lambda p=path: index.save(p))
            out[f"save_{name}_s"], out[f"save_{name}_rss_mb"] = saved[:2]
            out[f"load_{name}_s"], out[f"load_{name}_rss_mb"], loaded = peak(
                lambda p=path: ChipIndex.load(p)
            )
            assert len(loaded) == len(index)
            del loaded
        out["load_fresh_s"], out["load_fresh_rss_mb"] = fresh_load(layouts["folder"])
        out["load_shard_s"], out["load_shard_rss_mb"], share = peak(
            lambda: ChipIndex.load(layouts["folder"], shard=(3, 8))
        )
        out["shard_chips"] = len(share)
    return out


def fresh_load(path: str) -> tuple[float, float]:
    """``(seconds, MB of peak RSS added)`` of ``ChipIndex.load(path)`` in a new process."""
    command = [sys.executable, __file__, "--load", path]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    seconds, mb = json.loads(done.stdout)
    return seconds, mb


def splits(index: ChipIndex) -> dict[str, float]:
    """``spatial_split`` (70/15/15, default blocks) and ``check_leakage`` of its result."""
    fractions = {"train": 0.7, "val": 0.15, "test": 0.15}
    out: dict[str, float] = {}
    out["split_s"], out["split_rss_mb"], parts = peak(
        lambda: spatial_split(index, fractions, progress=False)
    )
    out["dropped"] = parts.report.dropped
    out["leakage_s"], out["leakage_rss_mb"], report = peak(
        lambda: check_leakage(parts, progress=False)
    )
    assert report.ok
    return out


def measure(chips: int, save: bool, split: bool) -> dict[str, float]:
    index = ChipIndex.from_scenes(scenes(max(1, chips // CHIPS_PER_SCENE)), size=256, stride=128)
    aoi = shapely.box(0.0, 40.0, 6.0, 60.0)  # lon/lat: part of zone 31's scenes
    middle = index.chip_id(len(index) // 2)
    return {
        "chips": len(index),
        "bounds_s": timed(index.bounds),
        "filter_aoi_s": timed(lambda: filter_aoi(index, aoi, crs="EPSG:4326")),
        "first_position_s": timed(lambda: index.position(middle)),
        **(files(index, one_file=chips <= 1_000_000) if save else {}),
        **(splits(index) if split else {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    parser.add_argument("--no-save", action="store_true", help="skip save and load")
    parser.add_argument("--no-split", action="store_true", help="skip split and leakage")
    parser.add_argument("--load", metavar="PATH", help="only load PATH; print [s, rss_mb]")
    args = parser.parse_args()
    if args.load:
        print(json.dumps(peak(lambda: len(ChipIndex.load(args.load)))[:2]))
        return
    rows = [measure(n, not args.no_save, not args.no_split) for n in args.sizes]
    first, last = rows[0], rows[-1]
    growth = {
        key: math.log(last[key] / first[key]) / math.log(last["chips"] / first["chips"])
        for key in first
        if key.endswith("_s") and len(rows) > 1 and first[key] > 0 and key in last
    }
    print(json.dumps({"rows": rows, "exponent": growth}))


if __name__ == "__main__":
    main()
