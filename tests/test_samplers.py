import numpy as np
import pytest
import rasterio
from torch.utils.data import DataLoader

import geochips
from geochips import BlockShuffleSampler, ChipDataset, ChipIndex
from geochips.errors import InvalidParameterError


def block_keys(index, order, block):
    return [
        (
            int(index.column("scene")[p]),
            index.column("row_off")[p] // block,
            index.column("col_off")[p] // block,
        )
        for p in order
    ]


@pytest.fixture
def overlapping(make_scene):
    paths = [make_scene(height=80, width=96, blocksize=16) for _ in range(2)]
    return paths, ChipIndex.build(paths, size=16, stride=8)


def test_every_chip_once_block_by_block(overlapping):
    _, index = overlapping
    sampler = BlockShuffleSampler(index, block=32, seed=3)
    order = list(sampler)
    assert sorted(order) == list(range(len(index))) and len(sampler) == len(index)
    keys = block_keys(index, order, 32)
    runs = 1 + sum(a != b for a, b in zip(keys, keys[1:], strict=False))
    assert runs == len(set(keys))  # each block's chips come together
    assert order != sorted(order)  # shuffled, not the index order


def test_order_depends_on_seed_and_epoch_only(overlapping):
    _, index = overlapping
    a, b = BlockShuffleSampler(index, seed=1), BlockShuffleSampler(index, seed=1)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first and sorted(a) == sorted(first)
    assert list(BlockShuffleSampler(index, seed=2)) != first


def test_a_dataloader_with_workers_serves_every_chip_correctly(overlapping):
    paths, index = overlapping
    dataset = ChipDataset(index)
    loader = DataLoader(
        dataset,
        batch_size=5,
        sampler=BlockShuffleSampler(index, block=(32, 48)),
        num_workers=2,
        collate_fn=geochips.collate,
    )
    arrays = []
    for path in paths:
        with rasterio.open(path) as src:
            arrays.append(src.read())
    scene_of = {s.id: k for k, s in enumerate(index.scenes)}
    seen = []
    for batch in loader:
        for image, scene, window in zip(
            batch["image"], batch["scene"], batch["window"], strict=True
        ):
            rows, cols = window.slices()
            np.testing.assert_array_equal(image.numpy(), arrays[scene_of[scene]][:, rows, cols])
        seen += batch["chip_id"]
    assert sorted(seen) == sorted(index.chip_ids)


def test_padded_edges_and_an_empty_index(make_scene):
    index = ChipIndex.build([make_scene(height=40, width=50)], size=16, stride=12, edge="pad")
    assert sorted(BlockShuffleSampler(index, block=16)) == list(range(len(index)))
    assert list(BlockShuffleSampler(index[:0])) == []


@pytest.mark.parametrize("block", [0, -5, (16, 0), 2.5, True])
def test_bad_blocks_are_refused(overlapping, block):
    with pytest.raises(InvalidParameterError, match="block must be a positive int"):
        BlockShuffleSampler(overlapping[1], block=block)


def test_it_takes_an_index(overlapping):
    with pytest.raises(InvalidParameterError, match=r"takes a ChipIndex \(dataset.index\)"):
        BlockShuffleSampler(ChipDataset(overlapping[1]))
