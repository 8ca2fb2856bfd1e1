"""``geochips demo``: the tutorial's workflow on the sample scenes shipped with geochips."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from geochips import sample_data
from geochips.index import ChipIndex
from geochips.select.leakage import check_leakage
from geochips.select.splits import spatial_split
from geochips.select.valid import estimate_valid

NEXT = """\
next, on your own scenes:
  geochips index 'scenes/*.tif' --size 512 --overlap 256 --min-valid 0.5 \\
      --split train=0.8,val=0.2 -o chips.parquet
  geochips info chips.parquet
  geochips preview chips.parquet -o preview.png    (pip install 'geochips[plot]')
  geochips show chips.parquet -n 16 -o chips.png
then in Python: geochips.ChipDataset(geochips.ChipIndex.load("chips.parquet"))"""


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
        f"check_leakage: {report.pairs_checked} candidate pairs compared, no chip shares "
        "ground across splits"
    )
    _save_and_reload(splits["train"])
    # The loading layer (and torch) only for the batches: --help and index stay light.
    from torch.utils.data import DataLoader

    from geochips.loading.collate import collate
    from geochips.loading.dataset import ChipDataset

    # The scenes have 1, 2 and 3 bands: a batch stacks chips, so read band 1 of each.
    print("reading band 1 of every scene (bands=[1]): the scenes have 1 to 3 bands")
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
        scenes = sorted(set(batch["scene_id"]))
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
    print(NEXT)
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
