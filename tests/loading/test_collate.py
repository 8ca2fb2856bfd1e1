import pytest
import torch

import geochips
from geochips import ChipDataset, ChipIndex, collate
from geochips.errors import CollateError


def test_batches_stack_images_and_keep_metadata_as_lists(make_scene):
    paths = [make_scene(height=32, width=32, count=2, nodata=0) for _ in range(2)]
    dataset = ChipDataset(ChipIndex.build(paths, size=16))
    samples = [dataset[i] for i in (0, 5, 2)]
    batch = collate(samples)
    assert batch["image"].shape == (3, 2, 16, 16)
    assert batch["valid"].shape == (3, 1, 16, 16) and batch["valid"].dtype == torch.bool
    assert torch.equal(batch["image"][1], samples[1]["image"])
    assert batch["chip_id"] == [s["chip_id"] for s in samples]
    assert batch["scene_id"] == ["scene0", "scene1", "scene0"]
    assert batch["window"] == [s["window"] for s in samples]
    assert batch["crs"] == ["EPSG:32618"] * 3
    assert len(batch["bounds"]) == 3 and len(batch["transform"]) == 3


def test_chips_that_cannot_stack_are_named(make_scene):
    # ChipDataset refuses such scenes together (test_dataset); samples of two datasets
    # can still meet in a user's batch.
    three = make_scene(height=16, width=16, count=3)
    one = make_scene(height=16, width=16, count=1)
    rgb = ChipDataset(ChipIndex.build({"rgb": three}, size=16))
    gray = ChipDataset(ChipIndex.build({"gray": one}, size=16))
    with pytest.raises(
        CollateError,
        match=r"chip 'rgb/full/0/0/16x16' is \(3, 16, 16\).*"
        r"'gray/full/0/0/16x16' \(1, 16, 16\)",
    ):
        collate([rgb[0], gray[0]])
    floats = ChipDataset(
        ChipIndex.build({"f": make_scene(height=16, width=16, count=3, dtype="float32")}, size=16)
    )
    with pytest.raises(CollateError, match="torch.float32"):
        collate([rgb[0], floats[0]])


def test_samples_with_different_keys_are_refused(make_scene):
    dataset = ChipDataset(ChipIndex.build([make_scene(height=16, width=16)], size=16))
    sample = dataset[0]
    other = dict(sample, extra=1)
    with pytest.raises(CollateError, match="different keys"):
        collate([sample, other])
    with pytest.raises(CollateError, match="empty batch"):
        collate([])


def test_collate_is_exported():
    assert geochips.collate is collate
