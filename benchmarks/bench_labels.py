"""Vector labels' own cost per chip: ``ds[i]`` with and without ~100 polygons a chip.

python benchmarks/bench_labels.py      # prints JSON: ms a chip, and the share labels add

The quick scenes of ``benchmarks/data.py``, 512/512, every chip read four times in a
shuffled order, best of 3: after the first pass the tiles are in GDAL's block cache, so the
difference is the labels' own work (query, burn, mask), not decoding.
"""

from __future__ import annotations

import json
import time
import warnings
from typing import Any

import numpy as np
from cases import buildings
from data import main_scenes

import geochips


def per_chip(ds: Any, order: list[int]) -> float:
    ds[0]  # the first chip pays for reprojecting and indexing the scene's polygons
    started = time.perf_counter()
    for i in order:
        ds[i]
    return (time.perf_counter() - started) / len(order)


def main() -> None:
    warnings.simplefilter("ignore", geochips.TileAlignmentWarning)
    index = geochips.ChipIndex.build([str(p) for p in main_scenes(True)], size=512)
    polygons = [g for s in index.scenes for g in buildings(s)]
    labels = geochips.VectorLabels(polygons, crs=index.scenes[0].crs)
    order = np.random.default_rng(0).permutation(len(index)).tolist() * 4
    best = {"plain": np.inf, "labels": np.inf}
    for _ in range(3):
        best["plain"] = min(best["plain"], per_chip(geochips.ChipDataset(index), order))
        ds = geochips.ChipDataset(index, labels=labels)
        best["labels"] = min(best["labels"], per_chip(ds, order))
    print(
        json.dumps(
            {
                "plain_ms": best["plain"] * 1e3,
                "labels_ms": best["labels"] * 1e3,
                "labels_add": best["labels"] / best["plain"] - 1,
            }
        )
    )


if __name__ == "__main__":
    main()
