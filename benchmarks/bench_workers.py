"""What a DataLoader worker pays in private memory for a large index, fork and spawn (issue 14).

python benchmarks/bench_workers.py [--chips 10000000]     # prints JSON

The synthetic 961-chips-a-scene index of ``bench_scale.py`` (no file is opened). Each
worker reports its private memory (``Private_Clean + Private_Dirty`` of
``/proc/self/smaps_rollup``: pages no other process shares) after it has the dataset and
has touched every window column, once with a one-scene index and once with the large one;
``index_mb`` is the difference, the target "< 100 MB a worker under fork and spawn".
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
from typing import Any

import numpy as np
from bench_scale import CHIPS_PER_SCENE, scenes
from torch.utils.data import DataLoader, Dataset

from geochips import ChipDataset, ChipIndex


def private_mb() -> float:
    with open("/proc/self/smaps_rollup") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    kb = sum(int(fields[k].split()[0]) for k in ("Private_Clean", "Private_Dirty"))
    return kb / 1024


class Probe(Dataset[float]):
    """A worker's private memory once it holds ``dataset`` and has read its windows."""

    def __init__(self, dataset: ChipDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> float:
        index = self.dataset.index
        for name in ("scene", "row_off", "col_off", "height", "width"):
            int(np.max(index.column(name)))  # every page read, no copy made
        return private_mb()


def worker_mb(chips: int, context: str) -> float:
    index = ChipIndex.from_scenes(scenes(max(1, chips // CHIPS_PER_SCENE)), size=256, stride=128)
    loader = DataLoader(
        Probe(ChipDataset(index)),
        batch_size=None,
        num_workers=1,
        multiprocessing_context=multiprocessing.get_context(context),
    )
    return max(float(v) for v in loader)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chips", type=int, default=10_000_000)
    args = parser.parse_args()
    out: dict[str, Any] = {"chips": args.chips}
    for context in ("fork", "spawn"):
        small, big = worker_mb(1, context), worker_mb(args.chips, context)
        out[context] = {"worker_mb": big, "one_scene_mb": small, "index_mb": big - small}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
