"""Run every benchmark side by side and print (or write) the results table.

    python benchmarks/run.py --quick                 # smoke run, small scenes (~2 min)
    python benchmarks/run.py --write RESULTS.md      # the recorded run (~10 min)

Each case runs in its own process, ``--repeat`` times, interleaved with the others (so
background load hits every case alike); the table keeps each case's best run and the
spread. Ratios are to the limit: raw rasterio reads of the same windows, in the same order,
from datasets opened beforehand, in one thread, with the same GDAL block cache size.
Peers run in their own environments (see README.md) and are skipped when absent.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import data  # noqa: E402
import remote  # noqa: E402

PEER_PYTHONS = {
    "torchgeo": os.environ.get("GEOCHIPS_BENCH_TORCHGEO", "/work/venv-torchgeo/bin/python"),
    "xbatcher": os.environ.get("GEOCHIPS_BENCH_XBATCHER", "/work/venv-peers/bin/python"),
}
CACHE_MB = 128  # geochips' default GDAL_CACHEMAX; the limit gets the same
METRICS: dict[str, Any] = {}  # what the targets table reads, filled by the sections


def run_case(python: str, script: str, name: str, plan: dict[str, Any]) -> dict[str, Any]:
    """Run one case in a fresh process and return its JSON result."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(plan, f)
    try:
        proc = subprocess.run(
            [python, str(HERE / script), name, f.name],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
    except subprocess.TimeoutExpired:
        return {"error": "timed out after 300 s"}
    finally:
        os.unlink(f.name)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def best_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the highest chips/s, plus the spread of chips/s over the runs."""
    good = [r for r in runs if "error" not in r and "skipped" not in r]
    if not good:
        return runs[0]
    rates = [r["chips_per_s"] for r in good]
    best = dict(max(good, key=lambda r: r["chips_per_s"]))
    best["spread"] = (min(rates), max(rates))
    return best


def grid_plan(
    scenes: list[Path],
    size: int,
    stride: int,
    chips: int,
    order: str,
    seed: int = 0,
    region: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """The windows of a grid, as geochips indexes them, in a fixed (shuffled) order.

    ``region`` keeps the chips inside the first ``(rows, cols)`` pixels of the first scene
    (grid B: tiles few enough to stay in GDAL's block cache).
    """
    import geochips
    from geochips.tiles import check_alignment

    index = geochips.ChipIndex.build([str(p) for p in scenes], size=size, stride=stride)
    if region is not None:
        c = index.column
        inside = (c("scene") == 0) & (c("row_off") + size <= region[0])
        index = index.select(np.flatnonzero(inside & (c("col_off") + size <= region[1])))
    positions = np.arange(len(index))
    if order == "shuffled":
        positions = np.random.default_rng(seed).permutation(len(index))
    elif order == "blocks":  # what geochips.BlockShuffleSampler yields
        positions = np.array(list(geochips.BlockShuffleSampler(index, seed=seed)))
    positions = positions[:chips]
    cols = {k: index.column(k)[positions] for k in ("scene", "row_off", "col_off")}
    return {
        "scenes": [str(p) for p in scenes],
        "size": size,
        "stride": stride,
        "order": order,
        "positions": positions.tolist(),
        "windows": [
            [int(s), int(r), int(c), size, size]
            for s, r, c in zip(cols["scene"], cols["row_off"], cols["col_off"], strict=True)
        ],
        # rasterio passes an int GDAL_CACHEMAX to GDAL as bytes (geochips converts its MB)
        "limit_gdal": {"GDAL_CACHEMAX": CACHE_MB * 1024 * 1024},
        "batch_size": 16,
        "tile_shape": list(index.scenes[0].tile_shape),
        "index_chips": len(index),
        "tiles_per_chip": str(check_alignment(index)),
        "scene_shape": list(index.scenes[0].shape),
    }


GRID_B = "512/256 cache-resident (grid B)"
GRID_B_REGION = (5120, 8192)
"""160 tiles of 512x512 uint16 (80 MB decoded), which GDAL's 128 MB block cache keeps."""
GRID_B_CHIPS = 380


LOCAL_CASES = [
    ("limit", "limit_1t", "rasterio loop, 1 thread (the limit)"),
    ("limit", "limit_2t", "rasterio, 2 threads, a handle each"),
    ("limit", "limit_work", "rasterio loop + int32 widening + valid mask (ds[i]'s work)"),
    ("limit", "limit_work_u16", 'rasterio loop + valid mask (`dtype="uint16"`\'s work)'),
    ("main", "gc_item", "geochips `ds[i]`, 1 process"),
    ("main", "gc_item_collate", "geochips `ds[i]` + `collate` every 16 (the same batches)"),
    ("main", "gc_getitems", "geochips `__getitems__`, threads by the rule"),
    ("main", "gc_loader0", "geochips DataLoader, 0 workers"),
    ("main", "gc_loader2", "geochips DataLoader, 2 workers"),
    ("main", "gc_item_u16", 'geochips `ds[i]`, 1 process, `dtype="uint16"`'),
    ("main", "gc_item_checksums", "geochips `ds[i]`, 1 process, checksums checked"),
    ("main", "gc_item_labels", "geochips `ds[i]`, 1 process, ~100 label polygons per chip"),
    ("main", "gc_item_labels_u8", "geochips `ds[i]`, 1 process, the same labels, `uint8` mask"),
    ("main", "gc_loader2_labels", "geochips DataLoader, 2 workers, the same labels"),
    ("main", "gc_getitems_u16", 'geochips `__getitems__`, rule, `dtype="uint16"`'),
    ("main", "gc_loader2_u16", 'geochips DataLoader, 2 workers, `dtype="uint16"`'),
    ("torchgeo", "torchgeo_w0", "torchgeo RasterDataset+GridGeoSampler, 0 workers"),
    ("torchgeo", "torchgeo_w2", "torchgeo RasterDataset+GridGeoSampler, 2 workers"),
    ("xbatcher", "xbatcher", "rioxarray + xbatcher BatchGenerator, 1 process"),
]


def python_for(kind: str) -> tuple[str, str] | None:
    if kind in ("limit", "main"):
        return sys.executable, "cases.py"
    python = PEER_PYTHONS[kind]
    return (python, "peers.py") if Path(python).exists() else None


def local_section(args: argparse.Namespace, grids: list[dict[str, Any]]) -> list[str]:
    """Run the local cases of every grid, interleaved, and return table lines."""
    lines = [
        "| grid | reader | chips/s (best; spread) | × limit | first batch s | peak RSS MB "
        "(workers) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    notes = []
    for grid in grids:
        plan = grid["plan"]
        notes.append(f"- {grid['name']}: {plan['tiles_per_chip']}")
        cases = [c for c in LOCAL_CASES if c[1] in grid["cases"]]
        runs: dict[str, list[dict[str, Any]]] = {c[1]: [] for c in cases}
        for _ in range(args.repeat):
            for kind, name, _label in cases:
                found = python_for(kind)
                if found is None:
                    runs[name].append({"skipped": f"{kind} not installed ({PEER_PYTHONS[kind]})"})
                    continue
                runs[name].append(run_case(found[0], found[1], name, plan))
                print(f"  {grid['name']:<28} {name:<14} {runs[name][-1]}", file=sys.stderr)
        limit = best_of(runs["limit_1t"])["chips_per_s"]
        grid["limit_chips_per_s"] = limit
        for _kind, name, label in cases:
            r = best_of(runs[name])
            grid.setdefault("results", {})[name] = r
            if "chips_per_s" not in r:
                lines.append(f"| {grid['name']} | {label} | {r.get('skipped') or r} | | | |")
                continue
            lo, hi = r["spread"]
            workers = f" ({r['workers_rss_mb']:.0f})" if r.get("workers_rss_mb") else ""
            lines.append(
                f"| {grid['name']} | {label} | {r['chips_per_s']:.0f} ({lo:.0f}–{hi:.0f}) | "
                f"{r['chips_per_s'] / limit:.2f} | {r['first_s']:.3f} | "
                f"{r['rss_mb']:.0f}{workers} |"
            )
    return [*lines, "", "Tiles (`geochips.tiles.check_alignment`):", "", *notes]


def memory_section(args: argparse.Namespace) -> list[str]:
    """Peak RSS reading the same number of chips from a small and a large scene."""
    lines = [
        "| scene | reader | chips | peak RSS MB |",
        "| --- | --- | --- | --- |",
    ]
    small, large = data.memory_scenes(args.quick)
    few = grid_plan([small], 512, 512, 64, "shuffled")["index_chips"]  # every chip of it
    many = 160 if args.quick else 600  # more tiles than the block cache holds
    rss_of: dict[tuple[Path, int, str], float | None] = {}
    for path, chips in ((small, few), (large, few), (large, many)):
        plan = grid_plan([path], 512, 512, chips, "shuffled")
        for name, label in (("limit_1t", "rasterio loop"), ("gc_item", "geochips `ds[i]`")):
            r = run_case(sys.executable, "cases.py", name, plan)
            print(f"  memory {path.name} {name} {r}", file=sys.stderr)
            rss = f"{r['rss_mb']:.0f}" if "rss_mb" in r else r.get("error")
            rss_of[(path, chips, name)] = r.get("rss_mb")
            h, w = plan["scene_shape"]
            lines.append(f"| {h}×{w} | {label} | {r.get('chips')} | {rss} |")
    small_rss, large_rss = rss_of[(small, few, "gc_item")], rss_of[(large, few, "gc_item")]
    if small_rss and large_rss:
        METRICS["memory_growth"] = large_rss - small_rss
    return lines


def stitch_section(args: argparse.Namespace) -> list[str]:
    """Stitching throughput against reading the same chips, and peak RSS against scene size."""
    lines = [
        "| scene | chips | read chips/s | read + stitch chips/s | × reading | peak RSS MB | "
        "tiles spilled |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for path in data.memory_scenes(args.quick):
        plan = grid_plan([path], 512, 448, 1, "shuffled")
        r = run_case(sys.executable, "cases.py", "gc_stitch", plan)
        print(f"  stitch {path.name} {r}", file=sys.stderr)
        h, w = plan["scene_shape"]
        if "error" in r:
            lines.append(f"| {h}×{w} | {r['error']} | | | | | |")
            continue
        lines.append(
            f"| {h}×{w} | {r['chips']} | {r['read_per_s']:.0f} | {r['stitch_per_s']:.0f} | "
            f"{r['stitch_per_s'] / r['read_per_s']:.2f} | {r['rss_mb']:.0f} | {r['spills']} |"
        )
    return lines


def run_json(script: str, *args: str) -> Any:
    """Run a benchmark script of this folder on this checkout's geochips; its last JSON line."""
    proc = subprocess.run(
        [sys.executable, str(HERE / script), *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(HERE.parent)},  # this checkout's geochips
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def index_section(args: argparse.Namespace) -> list[str]:
    res = run_json("bench_index.py")
    METRICS["index"] = res
    return [
        "| measure | value | target |",
        "| --- | --- | --- |",
        f"| build 1,000,000 chips (`ChipIndex.from_scenes`, 100 scenes) | "
        f"{res['build_s']:.3f} s | < 0.5 s |",
        f"| bytes per chip (all columns) | {res['bytes_per_chip']:.1f} | < 64 |",
        f"| pickled index, bytes per chip | {res['pickle_bytes_per_chip']:.1f} | |",
    ]


def stats_section(args: argparse.Namespace) -> list[str]:
    rows = run_json("bench_stats.py")
    METRICS["stats"] = rows
    lines = [
        "| scene | read | full-res pixels (bytes) | overview pixels | band_stats | in chip reads |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['scene']} | {'; '.join(r['levels'])} | {r['full_resolution_pixels']} "
            f"({r['full_resolution_bytes']} B) | {r['overview_pixels']} | "
            f"{r['band_stats_s'] * 1e3:.1f} ms | {r['band_stats_in_chip_reads']:.0f} |"
        )
    return lines


def scale_section(args: argparse.Namespace) -> list[str]:
    sizes = ["100000", "1000000"] + ([] if args.quick else ["10000000"])
    res = run_json("bench_scale.py", "--sizes", *sizes)
    METRICS["scale"] = res
    names = {"bounds_s": "`bounds()`", "filter_aoi_s": "`filter_aoi`", "first_position_s":
             "first `position(chip_id)`", "split_s": "`spatial_split` (70/15/15)",
             "leakage_s": "`check_leakage` of that split", "save_folder_s": "`save` (folder)",
             "load_folder_s": "`load` (folder)",
             "load_fresh_s": "`load` (folder) in a new process",
             "load_shard_s": "`load` one shard of 8",
             "save_file_s": "`save` (one file)", "load_file_s": "`load` (one file)"}  # fmt: skip
    lines = [
        "| operation | "
        + " | ".join(f"{r['chips']:,} chips" for r in res["rows"])
        + " | exponent |",
        "| --- | " + " | ".join("---" for _ in res["rows"]) + " | --- |",
    ]
    for key, name in names.items():
        if not any(key in r for r in res["rows"]):
            continue
        rss = key[: -len("_s")] + "_rss_mb"
        times = " | ".join(
            (f"{r[key]:.3f} s" + (f" (+{r[rss]:.0f} MB)" if rss in r else "")) if key in r else "—"
            for r in res["rows"]
        )
        lines.append(f"| {name} | {times} | {res['exponent'].get(key, float('nan')):.2f} |")
    if all("index_mb" in r for r in res["rows"]):
        sizes = " | ".join(f"{r['index_mb']:.0f} MB" for r in res["rows"])
        lines.append(f"| the index's own arrays | {sizes} | |")
    return lines


def handles_section(args: argparse.Namespace) -> list[str]:
    rows = run_json("bench_handles.py")
    every = rows[-1]["chips_per_s"]
    METRICS["handles"] = rows[1]["chips_per_s"] / every
    lines = [
        "| `max_open` | handles a thread | chips/s | × all open |",
        "| --- | --- | --- | --- |",
    ]
    for r in rows:
        name = "default" if r["max_open"] is None else str(r["max_open"])
        lines.append(
            f"| {name} | {r['per_thread']} | {r['chips_per_s']:.0f} | "
            f"{r['chips_per_s'] / every:.2f} |"
        )
    return lines


def localize_section(args: argparse.Namespace) -> list[str]:
    res = run_json("bench_localize.py", *(["--quick"] if args.quick else []))
    METRICS["localize"] = res
    limit = res["limit_original_chips_per_s"]
    touched = res["original_touched_bytes"]
    lines = [
        "| reader | chips/s | × limit | disk bytes | × original tiles | localize s |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| rasterio loop, original DEFLATE COG (the limit) | {limit:.0f} | 1.00 | "
        f"{touched} | 1.00 | |",
        f"| geochips `ds[i]`, original | {res['gc_item_original_chips_per_s']:.0f} | "
        f"{res['gc_item_original_chips_per_s'] / limit:.2f} | | | |",
    ]
    for codec in ("none", "zstd"):
        rate, size = res[f"gc_item_{codec}_chips_per_s"], res[f"disk_{codec}_bytes"]
        lines.append(
            f"| geochips `ds[i]`, localized `codec={codec!r}` | {rate:.0f} | "
            f"{rate / limit:.2f} | {size} | {size / touched:.2f} | "
            f"{res[f'localize_{codec}_s']:.2f} |"
        )
    rate = res.get("gc_item_none_u16_chips_per_s")
    if rate:
        lines.append(
            f"| geochips `ds[i]`, localized `codec='none'`, `dtype=\"uint16\"` | {rate:.0f} | "
            f"{rate / limit:.2f} | | | |"
        )
    return lines


def cli_section(args: argparse.Namespace) -> list[str]:
    rows = run_json("bench_cli.py", "--repeat", str(max(args.repeat, 3)))
    METRICS["cli"] = {r["command"]: r for r in rows}
    lines = ["| command | best of runs | × `python -c pass` |", "| --- | --- | --- |"]
    for r in rows:
        lines.append(f"| `{r['command']}` | {r['s'] * 1e3:.0f} ms | {r['ratio']:.1f} |")
    return lines


def targets_section(grids: list[dict[str, Any]]) -> list[str]:
    """The issue's targets against this run's numbers (ratios within this run)."""
    rows = ["| target | measured | met |", "| --- | --- | --- |"]

    def row(what: str, value: float | None, fmt: str, ok: bool | None) -> None:
        shown = "not measured" if value is None else format(value, fmt)
        rows.append(f"| {what} | {shown} | {'—' if ok is None else 'yes' if ok else 'no'} |")

    res = grids[0].get("results", {}) if grids else {}

    def rate(name: str) -> float | None:
        r = res.get(name, {})
        return r.get("chips_per_s") if isinstance(r.get("chips_per_s"), float) else None

    limit = rate("limit_1t")
    if limit:
        item = rate("gc_item")
        row(
            "`ds[i]` ≥ 0.95× the limit (512/512), default dtype (int32)",
            item and item / limit,
            ".3f",
            item and item / limit >= 0.95,
        )
        item = rate("gc_item_u16")
        row(
            '`ds[i]` ≥ 0.95× the limit (512/512), `dtype="uint16"`',
            item and item / limit,
            ".3f",
            item and item / limit >= 0.95,
        )
        for labels, plain, what in (
            ("gc_item_labels", "gc_item", "`ds[i]`'s time per chip"),
            ("gc_item_labels_u8", "gc_item", "`ds[i]`'s time per chip, `uint8` mask"),
            ("gc_loader2_labels", "gc_loader2", "a DataLoader's (2 workers) time per chip"),
        ):
            with_labels, without = rate(labels), rate(plain)
            added = without / with_labels - 1 if with_labels and without else None
            row(f"labels (~100 polygons a chip) add ≤ 10 % to {what}", added, ".2f",
                None if added is None else added <= 0.10)  # fmt: skip
        best = max((rate(n) or 0, n) for n in ("gc_getitems", "gc_loader0", "gc_loader2"))
        row(
            f"both cores ≥ 1.8× the limit, default dtype (best: `{best[1]}`)",
            best[0] / limit,
            ".2f",
            best[0] / limit >= 1.8,
        )
        best = max((rate(n) or 0, n) for n in ("gc_getitems_u16", "gc_loader2_u16"))
        row(
            f'both cores ≥ 1.8× the limit, `dtype="uint16"` (best: `{best[1]}`)',
            best[0] / limit,
            ".2f",
            best[0] / limit >= 1.8,
        )
        two = rate("limit_2t")
        row(
            "(the ceiling: rasterio, 2 threads with a handle each)",
            two and two / limit,
            ".2f",
            None,
        )
        for ours, theirs, workers in (
            ("gc_loader0", "torchgeo_w0", "0 workers"),
            ("gc_loader2", "torchgeo_w2", "2 workers"),
            ("gc_loader2_u16", "torchgeo_w2", '2 workers, `dtype="uint16"`'),
        ):
            a, b = rate(ours), rate(theirs)
            ratio = a / b if a and b else None
            row(
                f"≥ 3× torchgeo, {workers}",
                ratio,
                ".1f",
                None if ratio is None else ratio >= 3,
            )
    by_grid = {g["name"]: g.get("results", {}) for g in grids}

    def grid_rate(grid: str, name: str) -> float | None:
        r = by_grid.get(grid, {}).get(name, {})
        return r.get("chips_per_s") if isinstance(r.get("chips_per_s"), float) else None

    def ratio_row(what: str, ours: float | None, base: float | None, target: float) -> None:
        value = ours / base if ours and base else None
        row(what, value, ".2f", None if value is None else value >= target)

    for what, ours, base, target in () if GRID_B not in by_grid else (
        ('`ds[i]` ≥ 0.95× the limit, `dtype="uint16"`', "gc_item_u16", "limit_1t", 0.95),
        ("`ds[i]` ≥ 0.93× a raw loop doing its work (read, int32, mask)", "gc_item",
         "limit_work", 0.93),
        ('`ds[i]`, `dtype="uint16"`, ≥ 0.93× a raw loop doing its work (read, mask)',
         "gc_item_u16", "limit_work_u16", 0.93),
    ):  # fmt: skip
        ratio_row(f"grid B: {what}", grid_rate(GRID_B, ours), grid_rate(GRID_B, base), target)
    for grid in grids:
        for suffix, dtype in (("", "int32"), ("_u16", "uint16")):
            ours, loop = (grid_rate(grid["name"], n + suffix) for n in ("gc_getitems", "gc_item"))
            what = f"{grid['name']}: `__getitems__` (threads by the rule) ≥ `ds[i]`, {dtype}"
            if ours and loop:
                ratio_row(what, ours, loop, 1.0)
        ours, same = (grid_rate(grid["name"], n) for n in ("gc_getitems", "gc_item_collate"))
        if ours and same:
            what = f"{grid['name']}: `__getitems__` (rule) ≥ `ds[i]` + `collate` (same batches)"
            ratio_row(what, ours, same, 1.0)
    if "remote_bytes_ratio" in METRICS:
        m = METRICS
        row(
            "remote bytes ≤ 1.1× the tiles covered (worst geochips row)",
            m["remote_bytes_ratio"],
            ".2f",
            m["remote_bytes_ratio"] <= 1.1,
        )
        row(
            "remote requests per chip ≤ 2 (worst)",
            m["remote_requests_per_chip"],
            ".2f",
            m["remote_requests_per_chip"] <= 2,
        )
        row("failed side-car probes (404s)", m["remote_404s"], "d", m["remote_404s"] == 0)
        row(
            "header re-fetches after the index",
            m["remote_header_requests"],
            "d",
            m["remote_header_requests"] == 0,
        )
    if "latency_speedup" in METRICS:
        v = METRICS["latency_speedup"]
        row("batch of 16 via `__getitems__` ≥ 4× 16 single reads (20 ms)", v, ".1f", v >= 4)
    if "headers_speedup_32" in METRICS:
        v8, v32 = METRICS["headers_speedup_8"], METRICS["headers_speedup_32"]
        row("concurrent headers ≥ 8× one by one, 8 threads (old default)", v8, ".1f", v8 >= 8)
        row("concurrent headers ≥ 8× one by one, 32 threads (default)", v32, ".1f", v32 >= 8)
    if "index" in METRICS:
        ix = METRICS["index"]
        row("1,000,000 chips indexed in < 0.5 s", ix["build_s"], ".3f", ix["build_s"] < 0.5)
        row("< 64 bytes per chip", ix["bytes_per_chip"], ".1f", ix["bytes_per_chip"] < 64)
    if "scale" in METRICS and len(METRICS["scale"]["rows"]) > 2:
        big = METRICS["scale"]["rows"][-1]
        for key, name in (("bounds_s", "bounds"), ("filter_aoi_s", "filter_aoi"),
                          ("first_position_s", "first chip-id lookup")):  # fmt: skip
            row(f"{name} of 10M chips < 5 s", big[key], ".2f", big[key] < 5)
        for key, name in (("save_folder_s", "save"), ("load_folder_s", "load")):
            if key in big:
                row(f"{name} of 10M chips < 30 s (folder)", big[key], ".1f", big[key] < 30)
        if "load_fresh_rss_mb" in big and "index_mb" in big:
            times = big["load_fresh_rss_mb"] / big["index_mb"]
            row("load of 10M chips adds < 2× the index's size (new process)", times, ".2f",
                times < 2)  # fmt: skip
        if "split_s" in big:
            both = big["split_s"] + big["leakage_s"]
            row("spatial_split + check_leakage of 10M chips < 60 s", both, ".1f", both < 60)
    if "localize" in METRICS:
        lo = METRICS["localize"]
        limit = lo["limit_original_chips_per_s"]
        for key, what in (
            ("gc_item_none", "default dtype"),
            ("gc_item_none_u16", '`dtype="uint16"`'),
        ):
            if f"{key}_chips_per_s" in lo:
                v = lo[f"{key}_chips_per_s"] / limit
                row(f"localized `codec='none'` ≥ 4× the DEFLATE limit, {what}", v, ".2f", v >= 4)
        v = lo["gc_item_zstd_chips_per_s"] / limit
        disk = lo["disk_zstd_bytes"] / lo["disk_none_bytes"]
        row("localized `codec='zstd'` ≥ 2× the DEFLATE limit", v, ".2f", v >= 2)
        row("localized `codec='zstd'` ≤ 0.6× the disk of `'none'`", disk, ".2f", disk <= 0.6)
    if "handles" in METRICS:
        v = METRICS["handles"]
        row("shuffled reads over 104 scenes, default handles ≥ 0.9× all open", v, ".2f", v >= 0.9)
    if "cli" in METRICS:
        help_s = METRICS["cli"]["geochips --help"]["s"]
        row("`geochips --help` well under a second (< 0.25 s)", help_s, ".3f", help_s < 0.25)
    if "memory_growth" in METRICS:
        growth = METRICS["memory_growth"]
        row("peak RSS growth, 4k → 16k scene, same chips (MB)", growth, ".0f", abs(growth) < 20)
    return rows


def machine() -> str:
    import rasterio
    import torch

    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, Linux {platform.release()}, "
        f"Python {platform.python_version()}, torch {torch.__version__}, rasterio "
        f"{rasterio.__version__} (GDAL {rasterio.__gdal_version__}), numpy {np.__version__}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small scenes and chip counts")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each case")
    parser.add_argument("--chips", type=int, default=None, help="chips read per case")
    parser.add_argument(
        "--only",
        choices=[
            "local",
            "memory",
            "stitch",
            "index",
            "stats",
            "remote",
            "cli",
            "scale",
            "handles",
            "localize",
        ],
        action="append",
    )
    parser.add_argument("--write", type=Path, help="write the markdown table here")
    args = parser.parse_args()
    sections = args.only or [
        "local", "memory", "stitch", "index", "stats", "remote", "cli", "scale", "handles",
        "localize",
    ]  # fmt: skip
    started = time.time()
    chips = args.chips or (160 if args.quick else 480)
    scenes = data.main_scenes(args.quick)
    print(f"scenes: {[p.name for p in scenes]}", file=sys.stderr)
    all_cases = [c[1] for c in LOCAL_CASES]
    core = ["limit_1t", "gc_item", "gc_getitems", "gc_loader2", "torchgeo_w2", "gc_item_collate"]
    core += ["gc_getitems_u16", "gc_loader2_u16"]
    grid_b = ["limit_1t", "limit_work", "limit_work_u16", "gc_item", "gc_item_collate"]
    grid_b += ["gc_item_u16"]
    grid_b += ["gc_getitems", "gc_getitems_u16", "gc_loader2", "gc_loader2_u16", "torchgeo_w2"]
    grids = [
        {"name": "512/512 aligned", "cases": all_cases},
        {"name": "512/256 overlapping", "cases": core},
        {"name": GRID_B, "cases": grid_b},
        {"name": "512/256, `BlockShuffleSampler` order", "cases": [*core[:4], "gc_item_collate"]},
        {"name": "500/500 not aligned", "cases": core},
        {"name": "real samples 256/256", "cases": ["limit_1t", "gc_item", "gc_getitems"]},
    ]
    specs = [(scenes, 512, 512, "shuffled"), (scenes, 512, 256, "shuffled")]
    specs += [(scenes, 512, 256, "shuffled", GRID_B_REGION)]
    specs += [(scenes, 512, 256, "blocks"), (scenes, 500, 500, "shuffled")]
    specs.append((data.sample_scenes(), 256, 256, "shuffled"))
    for grid, (paths, size, stride, order, *region) in zip(grids, specs, strict=True):
        grid_chips = min(chips, GRID_B_CHIPS) if region else chips
        grid["plan"] = grid_plan(
            paths, size, stride, grid_chips, order, region=region[0] if region else None
        )
    out = [
        "# geochips benchmark results",
        "",
        f"Command: `python benchmarks/run.py {' '.join(sys.argv[1:])}`  ",
        f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC  ",
        f"Machine: {machine()}  ",
        f"Scenes: {', '.join(p.name for p in scenes)} (Sentinel-1-like uint16, DEFLATE, "
        "512×512 tiles, overviews) and the real samples in geochips/sample_data",
        "",
    ]
    if "local" in sections:
        out += [
            f"## Local files: {chips} chips per case, shuffled unless said, best of {args.repeat}",
            "",
        ]
        out += local_section(args, grids)
        out.append("")
    if "memory" in sections:
        out += ["## Memory: peak RSS against scene size", ""] + memory_section(args) + [""]
    if "stitch" in sections:
        out += [
            "## Stitching predictions: 4 bands, cosine blend, chips in shuffled order",
            "",
            *stitch_section(args),
            "",
        ]
    if "index" in sections:
        out += ["## Index", ""] + index_section(args) + [""]
    if "stats" in sections:
        out += ["## Band statistics (`band_stats`, real samples, 256/256)", ""]
        out += stats_section(args) + [""]
    if "remote" in sections:
        out += (
            ["## Remote (loopback HTTP)", ""]
            + remote.section(args, scenes, grid_plan, METRICS)
            + [""]
        )
    if "scale" in sections:
        out += ["## Index operations, 100k to 10M chips (961 a scene, 3 UTM zones)", ""]
        out += scale_section(args) + [""]
    if "handles" in sections:
        out += ["## Open handles: shuffled `ds[i]` over 104 scenes, one thread", ""]
        out += handles_section(args) + [""]
    if "localize" in sections:
        out += [
            "## Local copies (`geochips.localize`): shuffled 512/512 chips read once, best of 3",
            "",
            *localize_section(args),
            "",
        ]
    if "cli" in sections:
        out += ["## Command line: wall time of a fresh `python -m geochips`", ""]
        out += cli_section(args) + [""]
    targets = targets_section(grids if "local" in sections else [])
    out[7:7] = ["## Targets (issue 5)", "", *targets, ""]
    out.append(f"Run time: {time.time() - started:.0f} s")
    text = "\n".join(out) + "\n"
    print(text)
    if args.write:
        args.write.write_text(text)


if __name__ == "__main__":
    main()
