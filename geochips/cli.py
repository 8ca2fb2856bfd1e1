"""The ``geochips`` command line: ``demo`` and ``index``. Nothing depends on this module."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from geochips import sample_data
from geochips.errors import GeochipsError
from geochips.index import ChipIndex
from geochips.select.leakage import check_leakage
from geochips.select.splits import spatial_split
from geochips.select.valid import estimate_valid


def demo(workers: int = 2) -> int:
    """Run the tutorial's workflow on the sample scenes shipped with geochips."""
    start = time.perf_counter()
    s1 = sample_data.path("cog_gcps.tif")
    print(f"Sentinel-1 GRD sample (GCPs only): {s1.name}")
    for level in (None, 0):
        plain = ChipIndex.build([s1], size=256, overview_level=level)
        overlapping = ChipIndex.build([s1], size=256, overlap=128, overview_level=level)
        scene = plain.scenes[0]
        print(
            f"  overview_level={level}: {scene.height}x{scene.width} px -> {len(plain)} chips of "
            f"256, {len(overlapping)} with overlap 128"
        )
    sources = {
        "S1_GRD": [s1],
        "S2_tile_2bands": [
            sample_data.path("scene_band1.tif"),
            sample_data.path("scene_band2.tif"),
        ],
        "Landsat7_RGB": [sample_data.path("RGB.byte.tif")],
    }
    index = ChipIndex.build(sources, size=256, overlap=128)
    print(index.describe())
    kept = estimate_valid(index, min_valid=0.5)  # from overviews, not full-resolution reads
    print(f"{len(kept)} of {len(index)} chips are at least half valid (nodata borders)")
    splits = spatial_split(kept, {"train": 0.7, "val": 0.15, "test": 0.15}, seed=0)
    print(splits.report)
    report = check_leakage(splits)  # raises if two splits share any ground
    print(
        f"check_leakage: {report.pairs_checked} candidate pairs, no chip shares ground "
        "across splits"
    )
    _save_and_reload(splits["train"])
    # The loading layer (and torch) only for the batches: --help and index stay light.
    from torch.utils.data import DataLoader

    from geochips.loading.collate import collate
    from geochips.loading.dataset import ChipDataset

    dataset = ChipDataset(splits["train"], bands=[1], dtype="float32")
    loader = DataLoader(
        dataset,
        batch_size=10,
        shuffle=True,
        num_workers=workers,
        collate_fn=collate,
        generator=None,
    )
    seen = 0
    for number, batch in enumerate(loader, start=1):
        scenes = sorted(set(batch["scene"]))
        valid = batch["valid"].float().mean().item() if "valid" in batch else 1.0
        print(
            f"  batch {number}: image {tuple(batch['image'].shape)} {batch['image'].dtype}, "
            f"{valid:.0%} valid pixels, scenes {scenes}"
        )
        seen += len(batch["chip_id"])
    print(
        f"read {seen} of {len(dataset)} chips with {workers} worker(s) in "
        f"{time.perf_counter() - start:.1f} s"
    )
    return 0


def _save_and_reload(index: ChipIndex) -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        print("(saving the index needs pyarrow: pip install geochips[parquet])")
        return
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "train.parquet"
        index.save(path)
        again = ChipIndex.load(path)
        same = again.chip_ids == index.chip_ids
        print(f"saved and reloaded {len(again)} chips as GeoParquet, ids identical: {same}")


def index_command(args: argparse.Namespace) -> int:
    """Build an index and print its summary (saving it when ``--out`` is given)."""
    index = ChipIndex.build(
        args.sources,
        size=args.size,
        stride=args.stride,
        overlap=args.overlap,
        edge=args.edge,
        overview_level=args.overview_level,
        assets=args.assets.split(",") if args.assets else None,
    )
    print(index.describe())
    if args.out:
        index.save(args.out)
        print(f"saved {len(index)} chips to {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = argparse.ArgumentParser(prog="geochips", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run_demo = commands.add_parser("demo", help="chip the shipped sample scenes (no network)")
    run_demo.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    build = commands.add_parser("index", help="build a chip index and summarise it")
    build.add_argument("sources", nargs="+", help="raster paths/URLs or STAC item JSON")
    build.add_argument("--size", type=int, default=512)
    build.add_argument("--stride", type=int)
    build.add_argument("--overlap", type=int)
    build.add_argument("--edge", choices=("drop", "pad", "shift"), default="drop")
    build.add_argument("--overview-level", type=int)
    build.add_argument("--assets", help="comma-separated STAC asset keys")
    build.add_argument("--out", help="save the index here (GeoParquet)")
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            return demo(args.workers)
        return index_command(args)
    except GeochipsError as exc:
        print(f"geochips: error: {exc}", file=sys.stderr)
        return 2
