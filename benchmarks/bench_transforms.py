"""The cost of geochips.transforms on a 512x512 chip, as a ratio to reading the chip.

    python benchmarks/bench_transforms.py    # ~20 s

One 2048x2048 uint16 scene (DEFLATE, 512x512 tiles, nodata: samples carry ``valid``),
written to a temporary folder; 16 chips of 512x512, read by ``ds[i]`` with an int32
``image`` and a bool ``valid``, then each D4 element, ``RandomDihedral`` and
``RandomDihedral`` followed by stacking the batch (where a transposed view is copied).
Best of the repeats, per chip, in one thread (as in a DataLoader worker).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

import geochips
from geochips.testing import write_scene
from geochips.transforms import ELEMENTS, Dihedral, RandomDihedral


def best(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_scene(
            Path(tmp) / "scene.tif", height=2048, width=2048, count=1, nodata=0, blocksize=512
        )
        ds = geochips.ChipDataset(geochips.ChipIndex.build([path], size=512))
        n = len(ds)
        samples = [ds[i] for i in range(n)]
        read = best(lambda: [ds[i] for i in range(n)], args.repeat) / n
        rows = [("ds[i] (the read)", read)]
        for name in ELEMENTS:
            element = Dihedral(name)
            rows.append((name, best(lambda e=element: [e(s) for s in samples], args.repeat) / n))
        random = RandomDihedral()
        rows.append(("RandomDihedral", best(lambda: [random(s) for s in samples], args.repeat) / n))

        def stacked() -> None:
            geochips.collate([random(s) for s in samples])

        rows.append(("RandomDihedral + collate", best(stacked, args.repeat) / n))
        rows.append(("collate alone", best(lambda: geochips.collate(samples), args.repeat) / n))
    print(f"{n} chips of 512x512 (int32 image, bool valid), best of {args.repeat}, per chip")
    print(f"{'step':<26} {'ms':>7} {'x read':>7}")
    for name, seconds in rows:
        print(f"{name:<26} {seconds * 1e3:7.3f} {seconds / read:7.2f}")


if __name__ == "__main__":
    main()
