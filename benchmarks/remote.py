"""Remote reads through a loopback HTTP server (support.localserver), side by side.

Measured: chips/s over ``/vsicurl/``; HTTP requests and bytes per chip against the
compressed bytes of the tiles each chip covers (TileByteCounts, read through GDAL's
``BLOCK_SIZE_<x>_<y>`` TIFF metadata), in sorted and shuffled order; failed side-file
probes (404s); header requests per scene; latency hiding of ``__getitems__`` with 20 ms per
request; concurrent header reads of many scenes.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import data
import rasterio

# The loopback servers are test infrastructure (tests/support), not part of the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.localserver import ServerProcess  # noqa: E402

HERE = Path(__file__).resolve().parent


@contextmanager
def server(latency: float) -> Iterator[str]:
    """Serve benchmarks/.data from support.localserver in its own process; yield its URL."""
    with ServerProcess(data.DATA_DIR, latency=latency) as running:
        yield running.url


def tile_layout(path: Path) -> tuple[int, dict[tuple[int, int], int]]:
    """Return the offset of the first tile (all levels) and full-res tile byte counts."""
    sizes: dict[tuple[int, int], int] = {}
    with rasterio.open(path) as src:
        bh, bw = src.block_shapes[0]
        first = None
        for y in range(-(-src.height // bh)):
            for x in range(-(-src.width // bw)):
                sizes[(y, x)] = int(src.get_tag_item(f"BLOCK_SIZE_{x}_{y}", "TIFF", bidx=1))
                off = int(src.get_tag_item(f"BLOCK_OFFSET_{x}_{y}", "TIFF", bidx=1))
                first = off if first is None else min(first, off)
        levels = len(src.overviews(1))
    for level in range(levels):
        with rasterio.open(path, overview_level=level) as ovr:
            off = int(ovr.get_tag_item("BLOCK_OFFSET_0_0", "TIFF", bidx=1))
            first = min(first or off, off)
    return int(first or 0), sizes


def with_tiles(plan: dict[str, Any], base_url: str) -> dict[str, Any]:
    """Add the server URL, each file's data start and the bytes of the covered tiles."""
    layouts = [tile_layout(Path(p)) for p in plan["scenes"]]
    bh, bw = plan["tile_shape"]
    covered = 0
    for s, r, c, h, w in plan["windows"]:
        sizes = layouts[s][1]
        covered += sum(
            sizes[(y, x)]
            for y in range(r // bh, (r + h - 1) // bh + 1)
            for x in range(c // bw, (c + w - 1) // bw + 1)
        )
    return {
        **plan,
        "base_url": base_url,
        "data_start": {
            os.path.basename(p): layout[0]
            for p, layout in zip(plan["scenes"], layouts, strict=True)
        },
        "covered_bytes": covered,
    }


def traffic_row(label: str, plan: dict[str, Any], r: dict[str, Any]) -> str:
    if "error" in r:
        return f"| {label} | {r['error']} | | | | | |"
    st = r["server"]
    n = r["chips"]
    return (
        f"| {label} | {r['chips_per_s']:.0f} | {st['data_requests'] / n:.2f} | "
        f"{st['data_bytes'] / n / 1024:.0f} KiB | {st['data_bytes'] / plan['covered_bytes']:.2f} | "
        f"{st['header_requests']} / {len(plan['scenes'])} | {st['not_found']} |"
    )


def section(
    args: argparse.Namespace,
    scenes: list[Path],
    grid_plan: Callable[..., dict[str, Any]],
    metrics: dict[str, Any],
) -> list[str]:
    """Run the remote cases; return table lines and put the figures targets need in metrics."""
    from run import run_case

    py = sys.executable
    chips = 96 if args.quick else 256
    lines = [
        "### Traffic per chip, loopback, no latency",
        "",
        "Bytes ratio: bytes of tile data sent / compressed bytes of the tiles each chip covers "
        "(≤ 1.1 is the target). Header requests: requests for bytes before the first tile, "
        "over the number of scenes (`__getitems__` reads with 8 threads, a handle each).",
        "",
        "| reader, grid, order | chips/s | requests/chip | bytes/chip | bytes ratio | "
        "header requests / scenes | 404s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    traffic: list[tuple[float, float, int, int]] = []
    with server(0.0) as url:
        for size, stride in ((512, 512), (500, 500)):
            for order in ("sorted", "shuffled"):
                plan = with_tiles(grid_plan(scenes, size, stride, chips, order), url)
                for name, label in (
                    ("limit_1t", "rasterio, GDAL defaults"),
                    ("gc_item", "geochips `ds[i]`"),
                    ("gc_getitems", "geochips `__getitems__`"),
                ):
                    r = run_case(py, "cases.py", name, plan)
                    print(f"  remote {size}/{stride} {order} {name} {r}", file=sys.stderr)
                    if name != "limit_1t" and "server" in r:
                        st = r["server"]
                        traffic.append(
                            (
                                st["data_bytes"] / plan["covered_bytes"],
                                st["data_requests"] / r["chips"],
                                st["not_found"],
                                st["header_requests"],
                            )
                        )
                    lines.append(traffic_row(f"{label}, {size}/{stride}, {order}", plan, r))
    if traffic:
        metrics["remote_bytes_ratio"] = max(t[0] for t in traffic)
        metrics["remote_requests_per_chip"] = max(t[1] for t in traffic)
        metrics["remote_404s"] = sum(t[2] for t in traffic)
        metrics["remote_header_requests"] = sum(t[3] for t in traffic)
    lines += [
        "",
        "### Latency hiding: 20 ms per request",
        "",
        "| measure | one by one | concurrent | speed-up | target |",
        "| --- | --- | --- | --- | --- |",
    ]
    with server(0.02) as url:
        n, size = (16, 256) if args.quick else (64, 512)
        plan = with_tiles(grid_plan(scenes, size, size, 2 * n + 17, "shuffled", seed=1), url)
        plan["measure"] = n
        r = run_case(py, "cases.py", "latency_batch", plan)
        print(f"  latency_batch {r}", file=sys.stderr)
        if "error" in r:
            lines.append(f"| chips | {r['error']} | | | |")
        else:
            metrics["latency_speedup"] = r["speedup"]
            lines.append(
                f"| {r['chips']} chips of {size} px: `ds[i]` vs batches of 16 via `__getitems__` "
                f"({r['threads']} threads) | {r['single_chips_per_s']:.0f} chips/s | "
                f"{r['batch_chips_per_s']:.0f} chips/s | {r['speedup']:.1f}× | ≥ 4× |"
            )
        k = 32 if args.quick else 100
        small = data.scene(*data.sizes(args.quick)["memory"][0], seed=0).name
        plan = {
            "base_url": url,
            "header_urls": {
                # one file under many URLs (GDAL caches per URL): a query string each
                key: {f"{key}{i}": f"{url}/{small}?copy={key}{i}" for i in range(k)}
                for key in ("sequential", "workers_8", "workers_32")
            },
        }
        r = run_case(py, "cases.py", "headers", plan)
        print(f"  headers {r}", file=sys.stderr)
        if "error" in r:
            lines.append(f"| headers | {r['error']} | | | |")
        else:
            metrics["headers_speedup_8"] = r["sequential"] / r["workers_8"]
            metrics["headers_speedup_32"] = r["sequential"] / r["workers_32"]
            for key, label in (("workers_8", "8 threads"), ("workers_32", "32 threads")):
                lines.append(
                    f"| headers of {r['scenes']} scenes, {label} (`read_headers(workers=)`) | "
                    f"{r['sequential']:.2f} s | {r[key]:.2f} s | "
                    f"{r['sequential'] / r[key]:.1f}× | ≥ 8× |"
                )
    return lines
