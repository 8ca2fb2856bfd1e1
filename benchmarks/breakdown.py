"""Where the time goes between raw rasterio reads and a geochips batch, step by step.

    python benchmarks/breakdown.py            # ~30 s (writes the scene first if it is missing)
    python benchmarks/breakdown.py --cached   # cheap reads: ds[i] against the work it must do

Every step adds one thing a batch needs to the raw read, so each row's drop from the one
above is that thing's cost. All steps read the same shuffled 512/512 windows of one
Sentinel-1-like scene of the recorded run (``data.py``; its 171 MB of decoded tiles
overflow the 128 MB block cache, so every read decodes), interleaved and repeated (best
run kept), in one process. The last rows read in one worker process, as a DataLoader
worker does: a forked child with its batch tensors in plain memory or in fresh shared
memory for every batch (what a worker paid before geochips.loading.slots), then a real DataLoader
worker, whose batch slots the main process frees and the worker reuses.

``--cached`` measures the other end (issue 15): reads that are a bare copy out of GDAL's
block cache, a 512/256 grid over the first 2048x2048 pixels of the scene (16 tiles, read
once before timing). There the work the output itself requires (widening uint16 to int32,
the ``valid`` mask) costs as much as the read, and each row adds one part of that work to
the raw read, up to ``ds[i]``: what ``ds[i]`` costs beyond "read + widen + mask" (or
"read + mask" with ``dtype="uint16"``) is geochips' own (sample dict, metadata, GDAL
option scope, bookkeeping).
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from rasterio.windows import Window
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))

import data  # noqa: E402

import geochips  # noqa: E402

BATCH = 16
CACHE = {"GDAL_CACHEMAX": 128 * 1024 * 1024}  # geochips' default, in bytes for rasterio


def steps(path: Path, index: geochips.ChipIndex) -> dict[str, Callable[[], None]]:
    """The steps, from the raw loop to geochips' own batches."""
    windows = [
        Window(w.col_off, w.row_off, w.width, w.height)
        for w in map(index.window, range(len(index)))
    ]
    batches = [windows[s : s + BATCH] for s in range(0, len(windows), BATCH)]
    handles = [rasterio.open(path) for _ in range(2)]
    pool = ThreadPoolExecutor(2)
    reused = np.empty((BATCH, 1, 512, 512), np.uint16)
    ids: dict[int, int] = {}

    def handle() -> Any:  # one handle per pool thread
        return handles[ids.setdefault(threading.get_ident(), len(ids))]

    def batched(fill: Callable[[list[Window]], Callable[[int], None]]) -> Callable[[], None]:
        def run() -> None:
            for batch in batches:
                list(pool.map(fill(batch), range(len(batch))))

        return run

    def read_only(batch: list[Window]) -> Callable[[int], None]:
        def read(k: int) -> None:
            handle().read([1], window=batch[k])

        return read

    def into(make: Callable[[int], np.ndarray]) -> Callable[[list[Window]], Callable[[int], None]]:
        def fill(batch: list[Window]) -> Callable[[int], None]:
            out = make(len(batch))

            def read(k: int) -> None:
                handle().read([1], window=batch[k], out=out[k])

            return read

        return fill

    def widened(batch: list[Window]) -> Callable[[int], None]:
        out = torch.empty((len(batch), 1, 512, 512), dtype=torch.int32).numpy()

        def read(k: int) -> None:
            np.copyto(out[k], handle().read([1], window=batch[k]), casting="unsafe")

        return read

    def dataset_batches(dtype: str | None) -> Callable[[], None]:
        ds = geochips.ChipDataset(index, dtype=dtype, threads=2)
        ds.__getitems__([0, 1])  # open the handles of both threads

        def run() -> None:
            for s in range(0, len(ds), BATCH):
                ds.__getitems__(list(range(s, min(s + BATCH, len(ds)))))

        return run

    def limit() -> None:
        for w in windows:
            handles[0].read(window=w)

    def ceiling() -> None:
        list(pool.map(lambda k: [handles[k].read(window=w) for w in windows[k::2]], range(2)))

    return {
        "rasterio loop, 1 thread (the limit)": limit,
        "rasterio, 2 threads, a handle each (the ceiling)": ceiling,
        "+ batches of 16 (threads wait for the slowest chip)": batched(read_only),
        "+ read into a reused uint16 batch array": batched(into(lambda n: reused)),
        "+ read into a fresh uint16 batch tensor": batched(
            into(lambda n: torch.empty((n, 1, 512, 512), dtype=torch.uint16).numpy())
        ),
        "+ widened to a fresh int32 batch tensor": batched(widened),
        'geochips `__getitems__`, `dtype="uint16"` (+ valid mask, samples)': dataset_batches(
            "uint16"
        ),
        "geochips `__getitems__`, default int32": dataset_batches(None),
    }


def cached_steps(path: Path, index: geochips.ChipIndex) -> dict[str, Callable[[], None]]:
    """One thread, cached tiles: the raw loop with each part of the output's work added."""
    windows = [
        Window(w.col_off, w.row_off, w.width, w.height)
        for w in map(index.window, range(len(index)))
    ]
    src = rasterio.open(path)
    nodata = np.uint16(src.nodata or 0)
    for w in windows:  # every tile in the block cache
        src.read(window=w)

    def read() -> None:
        for w in windows:
            src.read(window=w)

    def masked() -> None:
        for w in windows:
            data = src.read(window=w)
            np.not_equal(data, nodata, out=np.empty(data.shape, bool))

    def widened() -> None:
        for w in windows:
            np.copyto(np.empty((1, 512, 512), np.int32), src.read(window=w), casting="unsafe")

    def widened_masked() -> None:
        for w in windows:
            data = src.read(window=w)
            np.copyto(np.empty(data.shape, np.int32), data, casting="unsafe")
            np.not_equal(data, nodata, out=np.empty(data.shape, bool))

    def dataset(dtype: str | None) -> Callable[[], None]:
        ds = geochips.ChipDataset(index, dtype=dtype)
        ds[0]  # opens the handle

        def run() -> None:
            for k in range(len(ds)):
                ds[k]

        return run

    return {
        "rasterio loop, 1 thread (the limit)": read,
        "+ valid mask (read + mask)": masked,
        "+ widened to int32 (read + widen)": widened,
        "+ widened and masked (read + widen + mask)": widened_masked,
        'geochips `ds[i]`, `dtype="uint16"`': dataset("uint16"),
        "geochips `ds[i]`, default int32": dataset(None),
    }


def cached(path: Path, repeat: int) -> None:
    """Print the cheap-read breakdown, with what ``ds[i]`` adds to the work it must do."""
    index = geochips.ChipIndex.build([path], size=512, stride=256)
    inside = (index.column("row_off") <= 1536) & (index.column("col_off") <= 1536)
    index = index.select(np.flatnonzero(inside))
    index = index.select(np.random.default_rng(0).permutation(len(index)))
    with rasterio.Env(**CACHE):
        rates = best_rates(cached_steps(path, index), len(index) * 20, repeat, times=20)
    limit = rates["rasterio loop, 1 thread (the limit)"]
    command = " ".join(["python benchmarks/breakdown.py", *sys.argv[1:]])
    print(f"`{command}` on {path.name}: {len(index)} chips of 512 px (512/256) over 16")
    print(f"cached tiles, each read 20 times a run, best of {repeat}\n")
    print("| step | chips/s | µs a chip | × limit |\n| --- | --- | --- | --- |")
    for name, rate in rates.items():
        print(f"| {name} | {rate:.0f} | {1e6 / rate:.0f} | {rate / limit:.2f} |")
    work = {
        'geochips `ds[i]`, `dtype="uint16"`': "+ valid mask (read + mask)",
        "geochips `ds[i]`, default int32": "+ widened and masked (read + widen + mask)",
    }
    print("\n| reader | × the raw loop doing the same work (target ≥ 0.93) |\n| --- | --- |")
    for name, raw in work.items():
        print(f"| {name} | {rates[name] / rates[raw]:.2f} (of {raw!r}) |")


def best_rates(
    todo: dict[str, Callable[[], None]], chips: int, repeat: int, times: int = 1
) -> dict[str, float]:
    """Chips a second of each step (``chips`` read by ``times`` runs), best of ``repeat``."""
    best = dict.fromkeys(todo, 0.0)
    for _ in range(repeat):
        for name, run in todo.items():
            t0 = time.perf_counter()
            for _ in range(times):
                run()
            best[name] = max(best[name], chips / (time.perf_counter() - t0))
    return best


def in_worker(index: geochips.ChipIndex, shared: bool, repeat: int, queue: Any) -> None:
    """Batches of one thread in a forked child, in plain or in fresh shared memory."""
    if shared:  # as inside a DataLoader worker; no main process frees a slot: fresh memory
        import torch.utils.data._utils.worker as worker

        worker._worker_info = object()  # type: ignore[assignment]
    ds = geochips.ChipDataset(index, dtype="uint16", threads=1)

    def run() -> None:
        for s in range(0, len(ds), BATCH):
            geochips.collate(ds.__getitems__(list(range(s, min(s + BATCH, len(ds))))))

    run()
    queue.put(best_rates({"run": run}, len(ds), repeat)["run"])


def worker_rates(index: geochips.ChipIndex, repeat: int) -> dict[str, float]:
    context = multiprocessing.get_context("fork")
    rates = {}
    for shared, name in ((False, "plain memory"), (True, "fresh shared memory")):
        queue = context.Queue()
        child = context.Process(target=in_worker, args=(index, shared, repeat, queue))
        child.start()
        rates[f'1 thread in a forked child, `dtype="uint16"`, batches in {name}'] = queue.get()
        child.join()
    ds = geochips.ChipDataset(index, dtype="uint16")
    loader = DataLoader(
        ds, batch_size=BATCH, num_workers=1, persistent_workers=True, collate_fn=geochips.collate
    )

    def epoch() -> None:
        for _ in loader:
            pass

    epoch()  # starts the worker
    name = 'DataLoader, 1 worker, `dtype="uint16"`, batch slots reused (geochips.loading.slots)'
    rates[name] = best_rates({"run": epoch}, len(ds), repeat)["run"]
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs of each step")
    parser.add_argument("--cached", action="store_true", help="cheap reads (cached tiles)")
    args = parser.parse_args()
    path = data.main_scenes(quick=False)[0]
    if args.cached:
        cached(path, args.repeat)
        return
    index = geochips.ChipIndex.build([path], size=512)
    index = index.select(np.random.default_rng(0).permutation(len(index)))
    with rasterio.Env(**CACHE):
        rates = best_rates(steps(path, index), len(index), args.repeat)
    rates.update(worker_rates(index, args.repeat))
    limit = rates["rasterio loop, 1 thread (the limit)"]
    command = " ".join(["python benchmarks/breakdown.py", *sys.argv[1:]])
    print(f"`{command}` on {path.name}, {len(index)} chips of 512 px, best of {args.repeat}\n")
    print("| step | chips/s | × limit |\n| --- | --- | --- |")
    for name, rate in rates.items():
        print(f"| {name} | {rate:.0f} | {rate / limit:.2f} |")


if __name__ == "__main__":
    main()
