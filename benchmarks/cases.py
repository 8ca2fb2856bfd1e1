"""One measurement per process: ``python benchmarks/cases.py CASE PLAN.json`` prints JSON.

Every case reads the windows of a *plan* (written by ``run.py``): the scenes, the grid and
the chip positions, in the order to read them. The limit cases use rasterio only; the
geochips cases build the same index and read the same positions. Running each case in a
fresh process keeps GDAL's block cache, open handles and peak RSS from leaking between
cases.

Reported: ``chips``, ``seconds`` (all chips), ``first_s`` (time to the first chip or
batch, opening included), ``chips_per_s`` (steady state: the chips after the first batch
over the time after it), ``rss_mb`` (peak RSS of this process) and ``workers_rss_mb``
(largest peak RSS of a DataLoader worker).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import rasterio
from rasterio.windows import Window

Plan = dict[str, Any]
CASES: dict[str, Callable[[Plan], dict[str, Any]]] = {}


def case(fn: Callable[[Plan], dict[str, Any]]) -> Callable[[Plan], dict[str, Any]]:
    CASES[fn.__name__] = fn
    return fn


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """Peak RSS in MB: of this process (VmHWM), or the largest of its finished children.

    ``ru_maxrss`` of the process itself survives ``exec`` (it would report the parent's
    peak); VmHWM belongs to the current address space. A forked worker's peak counts the
    pages it shares with its parent.
    """
    if who == resource.RUSAGE_SELF:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    return resource.getrusage(who).ru_maxrss / 1024  # KiB on Linux


def result(chips: int, starts: Sequence[float], first_chips: int) -> dict[str, Any]:
    """``starts`` = (t0, t_first, t_end); steady chips/s excludes the first batch."""
    t0, t_first, t_end = starts
    steady = (chips - first_chips) / (t_end - t_first) if t_end > t_first else float("nan")
    return {
        "chips": chips,
        "seconds": t_end - t0,
        "first_s": t_first - t0,
        "chips_per_s": steady if chips > first_chips else chips / (t_end - t0),
        "rss_mb": peak_rss_mb(),
        "workers_rss_mb": peak_rss_mb(resource.RUSAGE_CHILDREN) or None,
    }


def hrefs(plan: Plan) -> list[str]:
    base = plan.get("base_url")
    names = plan["scenes"]
    return [f"{base}/{os.path.basename(p)}" if base else p for p in names]


def windows(plan: Plan) -> list[tuple[int, Window]]:
    return [
        (s, Window(col_off=c, row_off=r, width=w, height=h)) for s, r, c, h, w in plan["windows"]
    ]


# -- the limit: rasterio alone ------------------------------------------------------------


@case
def limit_1t(plan: Plan) -> dict[str, Any]:
    """Raw rasterio windowed reads from datasets opened beforehand, one thread."""
    with rasterio.Env(**plan.get("limit_gdal", {})):
        handles = [rasterio.open(h) for h in hrefs(plan)]
        todo = windows(plan)
        reset_server(plan)
        t0 = time.perf_counter()
        handles[todo[0][0]].read(window=todo[0][1])
        t_first = time.perf_counter()
        for s, w in todo[1:]:
            handles[s].read(window=w)
        t_end = time.perf_counter()
    out = result(len(todo), (t0, t_first, t_end), 1)
    out["server"] = server_stats(plan)
    return out


def _limit_doing(plan: Plan, widen: bool) -> dict[str, Any]:
    """The raw loop, plus the work ``ds[i]``'s output itself needs: a mask, int32 pixels."""
    with rasterio.Env(**plan.get("limit_gdal", {})):
        handles = [rasterio.open(h) for h in hrefs(plan)]
        nodata = [np.array(h.nodata or 0).astype(h.dtypes[0]) for h in handles]
        todo = windows(plan)

        def read(s: int, w: Window) -> None:
            data = handles[s].read(window=w)
            if widen:
                np.copyto(np.empty(data.shape, np.int32), data, casting="unsafe")
            np.not_equal(data[:1], nodata[s], out=np.empty((1, *data.shape[1:]), bool))

        t0 = time.perf_counter()
        read(*todo[0])
        t_first = time.perf_counter()
        for s, w in todo[1:]:
            read(s, w)
        t_end = time.perf_counter()
    return result(len(todo), (t0, t_first, t_end), 1)


@case
def limit_work(plan: Plan) -> dict[str, Any]:
    """Raw reads widened to int32 and masked (one band: one comparison), one thread."""
    return _limit_doing(plan, widen=True)


@case
def limit_work_u16(plan: Plan) -> dict[str, Any]:
    """Raw reads and their valid mask, no widening (what ``dtype="uint16"`` must do)."""
    return _limit_doing(plan, widen=False)


@case
def limit_2t(plan: Plan) -> dict[str, Any]:
    """Two threads, each with its own handles, reading alternate windows."""
    todo = windows(plan)
    threads = int(plan.get("threads", 2))
    with rasterio.Env(**plan.get("limit_gdal", {})):
        handles = [[rasterio.open(h) for h in hrefs(plan)] for _ in range(threads)]
        barrier = threading.Barrier(threads + 1)

        def work(k: int) -> None:
            barrier.wait()
            for s, w in todo[k::threads]:
                handles[k][s].read(window=w)

        pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
        for t in pool:
            t.start()
        t0 = time.perf_counter()
        barrier.wait()
        for t in pool:
            t.join()
        t_end = time.perf_counter()
    return result(len(todo), (t0, t0, t_end), 0)


# -- geochips -------------------------------------------------------------------------------


def dataset(plan: Plan, **kwargs: Any) -> Any:
    import geochips

    index = geochips.ChipIndex.build(
        hrefs(plan), size=plan["size"], stride=plan["stride"], edge=plan.get("edge", "drop")
    )
    index = index.select(np.asarray(plan["positions"], dtype=np.int64))
    return geochips.ChipDataset(index, **{**plan.get("dataset", {}), **kwargs})


@case
def gc_item(plan: Plan) -> dict[str, Any]:
    """``ds[i]`` chip by chip in one process."""
    return time_items(plan, dataset(plan))


@case
def gc_item_collate(plan: Plan) -> dict[str, Any]:
    """``ds[i]`` chip by chip, collated every 16: the batches ``__getitems__`` gives."""
    import geochips

    ds = dataset(plan)
    batch = int(plan.get("batch_size", 16))
    t0 = time.perf_counter()
    t_first = t0
    for start in range(0, len(ds), batch):
        geochips.collate([ds[i] for i in range(start, min(start + batch, len(ds)))])
        if start == 0:
            t_first = time.perf_counter()
    return result(len(ds), (t0, t_first, time.perf_counter()), min(batch, len(ds)))


@case
def gc_item_checksums(plan: Plan) -> dict[str, Any]:
    """``ds[i]`` over an index with checksums: every chip is checked (a CRC-32 pass)."""
    import geochips

    base = dataset(plan)
    index = geochips.record_checksums(base.index)  # recorded before the timing starts
    return time_items(plan, geochips.ChipDataset(index, **plan.get("dataset", {})))


LABELS_PER_CHIP = 100  # building-sized polygons (6-24 px) per 512x512 chip


def buildings(scene: Any, seed: int = 0) -> Any:
    """Random rotated rectangles over ``scene``, in its CRS: ~100 per 512x512 pixels."""
    import shapely

    rng = np.random.default_rng(seed)
    n = int(scene.height * scene.width / (512 * 512) * LABELS_PER_CHIP)
    cols, rows = rng.uniform(0, scene.width, n), rng.uniform(0, scene.height, n)
    half = rng.uniform(3, 12, (n, 2))
    angle = rng.uniform(0, np.pi, n)
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64)
    local = corners[None] * half[:, None, :]
    cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
    c = cols[:, None] + local[..., 0] * cos - local[..., 1] * sin
    r = rows[:, None] + local[..., 0] * sin + local[..., 1] * cos
    a, b, x0, d, e, y0 = tuple(scene.transform)[:6]
    xs, ys = a * c + b * r + x0, d * c + e * r + y0
    return shapely.polygons(np.stack([xs, ys], axis=-1))


def labelled(plan: Plan, **kwargs: Any) -> Any:
    """The plan's dataset with ~100 building polygons a chip (``kwargs`` to VectorLabels)."""
    import geochips

    base = dataset(plan)
    scene = base.index.scenes[0]
    polygons = [g for s in base.index.scenes for g in buildings(s)]
    labels = geochips.VectorLabels(polygons, crs=scene.crs, **kwargs)
    return geochips.ChipDataset(base.index, labels=labels, **plan.get("dataset", {}))


@case
def gc_item_labels(plan: Plan) -> dict[str, Any]:
    """``ds[i]`` with vector labels: ~100 polygons burnt into each chip's mask (int64)."""
    return time_items(plan, labelled(plan))


@case
def gc_item_labels_u8(plan: Plan) -> dict[str, Any]:
    """``ds[i]`` with the same labels, a ``uint8`` mask: an eighth of the bytes to write."""
    return time_items(plan, labelled(plan, dtype="uint8"))


@case
def gc_loader2_labels(plan: Plan) -> dict[str, Any]:
    """DataLoader, 2 workers, with the labels: masks burnt into the batch's shared memory."""
    return _loader(plan, 2, labelled(plan))


@case
def gc_stitch(plan: Plan) -> dict[str, Any]:
    """Every chip of a full-coverage grid read, then read again and stitched (4 bands, cosine).

    Shuffled, the worst order for the stitcher's memory: tiles wait for their last chip.
    """
    import tempfile

    import geochips

    index = geochips.ChipIndex.build(hrefs(plan), size=512, overlap=64, edge="shift")
    ds = geochips.ChipDataset(index, dtype="float32")
    order = np.random.default_rng(0).permutation(len(ds)).tolist()
    t0 = time.perf_counter()
    for i in order:
        ds[i]
    t1 = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        t2 = time.perf_counter()
        with geochips.Stitcher(index, f"{folder}/out.tif", bands=4, blend="cosine") as out:
            for start in range(0, len(order), 16):
                batch = geochips.collate([ds[i] for i in order[start : start + 16]])
                out.add(batch, batch["image"].expand(-1, 4, -1, -1))
        t3 = time.perf_counter()
    return {
        "chips": len(ds),
        "read_per_s": len(ds) / (t1 - t0),
        "stitch_per_s": len(ds) / (t3 - t2),
        "rss_mb": peak_rss_mb(),
        "spills": out.spills,
    }


def time_items(plan: Plan, ds: Any) -> dict[str, Any]:
    """Read every chip of ``ds`` with ``ds[i]``: time to the first, then the steady rate."""
    reset_server(plan)
    t0 = time.perf_counter()
    ds[0]
    t_first = time.perf_counter()
    for i in range(1, len(ds)):
        ds[i]
    t_end = time.perf_counter()
    out = result(len(ds), (t0, t_first, t_end), 1)
    out["server"] = server_stats(plan)
    return out


@case
def gc_getitems(plan: Plan) -> dict[str, Any]:
    """Batches through ``__getitems__`` (threads inside the batch), one process."""
    ds = dataset(plan, **plan.get("getitems", {}))
    batch = int(plan.get("batch_size", 16))
    reset_server(plan)
    t0 = time.perf_counter()
    t_first = t0
    for start in range(0, len(ds), batch):
        ds.__getitems__(list(range(start, min(start + batch, len(ds)))))
        if start == 0:
            t_first = time.perf_counter()
    t_end = time.perf_counter()
    out = result(len(ds), (t0, t_first, t_end), min(batch, len(ds)))
    out["server"] = server_stats(plan)
    return out


def _loader(plan: Plan, workers: int, ds: Any = None) -> dict[str, Any]:
    from torch.utils.data import DataLoader

    import geochips

    ds = dataset(plan) if ds is None else ds
    batch = int(plan.get("batch_size", 16))
    loader = DataLoader(
        ds, batch_size=batch, shuffle=False, num_workers=workers, collate_fn=geochips.collate
    )
    return time_loader(loader, batch)


def time_loader(loader: Any, batch: int) -> dict[str, Any]:
    """Iterate a DataLoader once: time to the first batch, then the steady rate."""
    t0 = time.perf_counter()
    it = iter(loader)
    first = next(it)
    t_first = time.perf_counter()
    n = len(first["image"])
    for b in it:
        n += len(b["image"])
    t_end = time.perf_counter()
    del it  # shuts the workers down, so their peak RSS is counted
    return result(n, (t0, t_first, t_end), batch)


@case
def gc_loader0(plan: Plan) -> dict[str, Any]:
    """DataLoader, no worker process (batches through ``__getitems__``)."""
    return _loader(plan, 0)


@case
def gc_loader2(plan: Plan) -> dict[str, Any]:
    """DataLoader with 2 worker processes."""
    return _loader(plan, 2)


def as_uint16(plan: Plan) -> Plan:
    """The same plan, samples as torch.uint16 (``dtype="uint16"``, converted on the GPU)."""
    return {**plan, "dataset": {**plan.get("dataset", {}), "dtype": "uint16"}}


@case
def gc_item_u16(plan: Plan) -> dict[str, Any]:
    """``ds[i]`` with ``dtype="uint16"``: the per-chip overhead without the widening."""
    return gc_item(as_uint16(plan))


@case
def gc_getitems_u16(plan: Plan) -> dict[str, Any]:
    """``__getitems__`` with ``dtype="uint16"``: GDAL writes into the batch tensor."""
    return gc_getitems(as_uint16(plan))


@case
def gc_loader2_u16(plan: Plan) -> dict[str, Any]:
    """DataLoader, 2 workers, ``dtype="uint16"``: half the bytes through shared memory."""
    return gc_loader2(as_uint16(plan))


# -- the HTTP server's counters -------------------------------------------------------------


def server_log(plan: Plan, reset: bool) -> list[dict[str, Any]]:
    """The requests support.localserver recorded (``/__log__``), optionally starting anew."""
    url = plan["base_url"] + "/__log__" + ("?reset=1" if reset else "")
    log: dict[str, Any] = json.loads(urllib.request.urlopen(url).read())
    return list(log["requests"])


def reset_server(plan: Plan) -> None:
    if plan.get("base_url"):
        server_log(plan, reset=True)


def server_stats(plan: Plan) -> dict[str, Any] | None:
    """What the server sent since the last reset; header = bytes before the first tile."""
    if not plan.get("base_url"):
        return None
    out = dict.fromkeys(("requests", "bytes", "not_found", "ranges"), 0)
    out |= dict.fromkeys(("header_requests", "data_requests", "data_bytes"), 0)
    for r in server_log(plan, reset=False):
        out["requests"] += 1
        out["bytes"] += r["sent"]
        out["not_found"] += r["status"] == 404
        if r["status"] == 404 or r["method"] != "GET":
            continue
        out["ranges"] += r["range"] is not None
        start = int(r["range"].removeprefix("bytes=").split("-")[0] or 0) if r["range"] else 0
        if start < plan.get("data_start", {}).get(os.path.basename(r["path"]), 0):
            out["header_requests"] += 1
        else:
            out["data_requests"] += 1
            out["data_bytes"] += r["sent"]
    return out


@case
def latency_batch(plan: Plan) -> dict[str, Any]:
    """``plan["measure"]`` chips read one by one, as many others in batches (__getitems__)."""
    ds = dataset(plan)
    batch = int(plan.get("batch_size", 16))
    n = int(plan["measure"])  # chips [0, n) one by one, [n, 2n) in batches, then warm-ups
    ds.__getitems__(list(range(2 * n, 2 * n + batch)))  # the pool's handles (headers cached)
    ds[2 * n + batch]  # and the main thread's
    t0 = time.perf_counter()
    for i in range(0, n):
        ds[i]
    t1 = time.perf_counter()
    for start in range(n, 2 * n, batch):
        ds.__getitems__(list(range(start, start + batch)))
    t2 = time.perf_counter()
    return {
        "chips": n,
        "single_chips_per_s": n / (t1 - t0),
        "batch_chips_per_s": n / (t2 - t1),
        "speedup": (t1 - t0) / (t2 - t1),
        "threads": ds._batches.threads(ds.threads),
    }


@case
def headers(plan: Plan) -> dict[str, Any]:
    """Header reads of many remote scenes, one by one and concurrently (distinct URLs)."""
    from geochips.io.headers import read_headers
    from geochips.sources import find_sources

    out: dict[str, Any] = {}
    for key, workers in (("sequential", 1), ("workers_8", 8), ("workers_32", 32)):
        sources = find_sources(plan["header_urls"][key])
        t0 = time.perf_counter()
        read_headers(sources, workers=workers)
        out[key] = time.perf_counter() - t0
    out["scenes"] = len(plan["header_urls"]["sequential"])
    return out


if __name__ == "__main__":
    name, plan_path = sys.argv[1], sys.argv[2]
    with open(plan_path) as f:
        loaded = json.load(f)
    print(json.dumps(CASES[name](loaded)))
