"""Local copies (``geochips.localize``): chips/s of ``ds[i]`` and disk size, against the original.

python benchmarks/bench_localize.py [--quick]    # prints JSON

The S1-like DEFLATE COGs of the main grids (``data.py``), 512/512 chips in a shuffled
order; the chips read are localized (codec ``none`` and ``zstd``), then each reader reads
the same chips in the same order, interleaved, best of ``--repeat``: raw rasterio windowed
reads of the original from datasets opened beforehand (the limit), geochips ``ds[i]`` over
the original, and over each copy. Sizes: the copies on disk against the compressed bytes of
the original's tiles the chips touch (GDAL's ``BLOCK_SIZE_<x>_<y>``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.windows import Window

sys.path.insert(0, str(Path(__file__).resolve().parent))

import data  # noqa: E402

import geochips  # noqa: E402

CACHE = {"GDAL_CACHEMAX": 128 * 1024 * 1024}  # geochips' default block cache, in bytes


def limit(index: geochips.ChipIndex, order: list[int]) -> float:
    """Seconds of raw rasterio reads of the chips, datasets opened beforehand."""
    with rasterio.Env(**CACHE):
        handles = [rasterio.open(s.hrefs[0]) for s in index.scenes]
        started = time.perf_counter()
        for i in order:
            s, w = index.locate(i)
            handles[s].read(window=Window(w.col_off, w.row_off, w.width, w.height))
        took = time.perf_counter() - started
        for h in handles:
            h.close()
    return took


def items(index: geochips.ChipIndex, order: list[int], **kwargs: Any) -> float:
    """Seconds of ``ds[i]`` over the chips (the files opened by a first read)."""
    ds = geochips.ChipDataset(index, threads=1, **kwargs)
    ds[order[0]]
    started = time.perf_counter()
    for i in order:
        ds[i]
    return time.perf_counter() - started


def touched_bytes(index: geochips.ChipIndex) -> int:
    """Compressed bytes of the original tiles the chips touch."""
    total = 0
    for position, scene in enumerate(index.scenes):
        th, tw = scene.tile_shape
        tiles = set()
        for i in np.flatnonzero(index.column("scene") == position):
            w = index.window(int(i))
            for r in range(w.row_off // th, (w.row_off + w.height - 1) // th + 1):
                for c in range(w.col_off // tw, (w.col_off + w.width - 1) // tw + 1):
                    tiles.add((r, c))
        with rasterio.open(scene.hrefs[0]) as src:
            total += sum(
                int(src.get_tag_item(f"BLOCK_SIZE_{c}_{r}", "TIFF", bidx=1) or 0) for r, c in tiles
            )
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--chips", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    chips = args.chips or (160 if args.quick else 480)
    scenes = [str(p) for p in data.main_scenes(args.quick)]
    full = geochips.ChipIndex.build(scenes, size=512)
    picked = np.random.default_rng(0).permutation(len(full))[:chips]
    index = full[picked]  # the chips of a training split, shuffled
    order = list(range(len(index)))
    result: dict[str, Any] = {"chips": len(index), "scenes": [Path(s).name for s in scenes]}
    with tempfile.TemporaryDirectory() as folder:
        local = {}
        for codec in ("none", "zstd"):
            started = time.perf_counter()
            local[codec] = geochips.localize(index, os.path.join(folder, codec), codec)
            result[f"localize_{codec}_s"] = time.perf_counter() - started
            result[f"disk_{codec}_bytes"] = sum(
                os.path.getsize(s.hrefs[0]) for s in local[codec].scenes
            )
        result["original_touched_bytes"] = touched_bytes(index)
        cases = {
            "limit_original": lambda: limit(index, order),
            "gc_item_original": lambda: items(index, order),
            "gc_item_none": lambda: items(local["none"], order),
            "gc_item_zstd": lambda: items(local["zstd"], order),
            "gc_item_none_u16": lambda: items(local["none"], order, dtype="uint16"),
        }
        best = {name: float("inf") for name in cases}
        for _ in range(args.repeat):
            for name, case in cases.items():
                best[name] = min(best[name], case())
    for name, seconds in best.items():
        result[f"{name}_chips_per_s"] = len(order) / seconds
    print(json.dumps(result))


if __name__ == "__main__":
    main()
