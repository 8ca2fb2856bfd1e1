"""Vector labels' own cost per chip: ``ds[i]`` with and without ~100 polygons a chip.

python benchmarks/bench_labels.py                # prints JSON: ms a chip, the share labels add
python benchmarks/bench_labels.py --dtype uint8  # the mask's dtype (int64 by default)

The quick scenes of ``benchmarks/data.py``, 512/512, every chip read four times in a
shuffled order, best of 3: after the first pass the tiles are in GDAL's block cache, so the
difference is the labels' own work (query, burn, mask), not decoding. ``mask_ms`` is the
burn alone (``VectorLabeller.mask`` over the same chips, best of 5), which two processes
sharing the CPU disturb less than a difference of two reads.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

# Run as a script, Python puts benchmarks/ first on sys.path, not the cwd: without this, the
# installed (editable) geochips would be measured, whichever checkout the command runs in.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cases import buildings  # noqa: E402
from data import main_scenes  # noqa: E402

import geochips  # noqa: E402
from geochips.labels.vector import MASK_DTYPES, VectorLabeller  # noqa: E402


def per_chip(ds: Any, order: list[int]) -> float:
    ds[0]  # the first chip pays for reprojecting and indexing the scene's polygons
    started = time.perf_counter()
    for i in order:
        ds[i]
    return (time.perf_counter() - started) / len(order)


def per_mask(labeller: VectorLabeller, chips: list[Any]) -> float:
    started = time.perf_counter()
    for scene, window in chips:
        labeller.mask(scene, window)
    return (time.perf_counter() - started) / len(chips)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="int64", choices=MASK_DTYPES)
    args = parser.parse_args()
    warnings.simplefilter("ignore", geochips.TileAlignmentWarning)
    index = geochips.ChipIndex.build([str(p) for p in main_scenes(True)], size=512)
    polygons = [g for s in index.scenes for g in buildings(s)]
    labels = geochips.VectorLabels(polygons, crs=index.scenes[0].crs, dtype=args.dtype)
    order = np.random.default_rng(0).permutation(len(index)).tolist() * 4
    best = {"plain": np.inf, "labels": np.inf}
    for _ in range(3):
        best["plain"] = min(best["plain"], per_chip(geochips.ChipDataset(index), order))
        ds = geochips.ChipDataset(index, labels=labels)
        best["labels"] = min(best["labels"], per_chip(ds, order))
    labeller = VectorLabeller(labels)
    chips = [(index.scene_of(i), index.window(i)) for i in order]
    per_mask(labeller, chips[:2])  # the scenes' polygons, reprojected and indexed
    mask = min(per_mask(labeller, chips) for _ in range(5))
    print(
        json.dumps(
            {
                "geochips": str(Path(geochips.__file__).parent),
                "dtype": args.dtype,
                "plain_ms": best["plain"] * 1e3,
                "labels_ms": best["labels"] * 1e3,
                "labels_add": best["labels"] / best["plain"] - 1,
                "mask_ms": mask * 1e3,
            }
        )
    )


if __name__ == "__main__":
    main()
