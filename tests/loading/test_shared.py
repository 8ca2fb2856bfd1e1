"""An index's columns reach spawned DataLoader workers in shared memory, not as copies."""

import multiprocessing
import pickle
from multiprocessing.reduction import ForkingPickler

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from geochips import ChipDataset, ChipIndex, collate
from geochips.loading import shared
from geochips.testing import position_values


@pytest.fixture
def index(make_scene):
    paths = [make_scene(height=96, width=80, count=2, blocksize=32) for _ in range(2)]
    index = ChipIndex.build(paths, size=32, stride=16)
    n = len(index)
    return index.with_columns(weight=np.linspace(0, 1, n), note=np.array(["x"] * n, dtype=object))


def test_forking_pickler_sends_large_numeric_columns_as_shared_tensors(index, monkeypatch):
    monkeypatch.setattr(shared, "MIN_BYTES", 0)
    data = ForkingPickler.dumps(index)
    again = pickle.loads(data)
    assert again.column_names == index.column_names  # order kept
    assert again.chip_ids == index.chip_ids and again.scenes == index.scenes
    for name in index.column_names:
        np.testing.assert_array_equal(again.column(name), index.column(name))
    assert isinstance(again._columns["row_off"].base, torch.Tensor)  # a view, not a copy
    assert not again._columns["row_off"].flags.writeable
    assert list(again.column("note")) == ["x"] * len(index)  # objects travel as they are
    # Each column has one tensor, whatever the number of workers it is sent to.
    assert shared._tensor(index._columns["row_off"]) is shared._tensor(index._columns["row_off"])


def test_plain_pickle_is_untouched_and_needs_no_torch(index, monkeypatch):
    monkeypatch.setattr(shared, "MIN_BYTES", 0)
    data = pickle.dumps(index)
    assert b"torch" not in data
    again = pickle.loads(data)
    assert again.chip_ids == index.chip_ids


class Probe(Dataset):
    """Reports, from the worker, whether its index's window columns are shared tensors."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return 1

    def __getitem__(self, i):
        columns = self.dataset.index._columns
        return {
            name: (isinstance(columns[name].base, torch.Tensor), columns[name].flags.writeable)
            for name in ("row_off", "col_off", "weight")
        }


@pytest.mark.slow
def test_spawned_workers_map_the_columns_and_read_the_right_chips(index, monkeypatch):
    monkeypatch.setattr(shared, "MIN_BYTES", 0)
    dataset = ChipDataset(index)
    spawn = multiprocessing.get_context("spawn")
    probe = DataLoader(
        Probe(dataset), batch_size=None, num_workers=1, multiprocessing_context=spawn
    )
    assert next(iter(probe)) == {name: [True, False] for name in ("row_off", "col_off", "weight")}
    loader = DataLoader(
        dataset, batch_size=7, shuffle=True, collate_fn=collate, num_workers=2,
        multiprocessing_context=spawn,
    )  # fmt: skip
    full = position_values(2, 96, 80, "uint16").astype("int32")
    seen = []
    for batch in loader:
        for chip_id, image in zip(batch["chip_id"], batch["image"], strict=True):
            window = index.window(index.position(chip_id))
            np.testing.assert_array_equal(image.numpy(), full[(slice(None), *window.slices())])
            seen.append(chip_id)
    assert sorted(seen) == sorted(index.chip_ids)
