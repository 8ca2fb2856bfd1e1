"""DataLoader, worker processes and torch.distributed: real processes, marked slow."""

import multiprocessing
import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from rasterio.env import get_gdal_config
from torch.utils.data import DataLoader, DistributedSampler

from geochips import ChipDataset, ChipIndex, collate
from geochips.testing import position_values

pytestmark = pytest.mark.slow


@pytest.fixture
def dataset(make_scene):
    paths = [make_scene(height=96, width=80, count=2, blocksize=32) for _ in range(3)]
    return ChipDataset(ChipIndex.build(paths, size=32, stride=16))


def expected_image(dataset, chip_id):
    position = dataset.index.position(chip_id)
    full = position_values(2, 96, 80, "uint16").astype("int32")
    return full[(slice(None), *dataset.index.window(position).slices())]


def run_epoch(dataset, **loader_kwargs):
    loader = DataLoader(dataset, batch_size=7, shuffle=True, collate_fn=collate, **loader_kwargs)
    seen = []
    for batch in loader:
        for chip_id, image in zip(batch["chip_id"], batch["image"], strict=True):
            np.testing.assert_array_equal(image.numpy(), expected_image(dataset, chip_id))
            seen.append(chip_id)
    return seen


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_one_epoch_with_workers_yields_every_chip_once(dataset, context):
    seen = run_epoch(
        dataset, num_workers=2, multiprocessing_context=multiprocessing.get_context(context)
    )
    assert sorted(seen) == sorted(dataset.index.chip_ids)


def test_main_process_loading_matches(dataset):
    assert sorted(run_epoch(dataset, num_workers=0)) == sorted(dataset.index.chip_ids)


def test_persistent_workers_serve_several_epochs(dataset):
    loader = DataLoader(
        dataset,
        batch_size=8,
        shuffle=True,
        num_workers=2,
        persistent_workers=True,
        collate_fn=collate,
    )
    for _ in range(3):
        ids = [cid for batch in loader for cid in batch["chip_id"]]
        assert sorted(ids) == sorted(dataset.index.chip_ids)


def test_reading_in_the_parent_before_forking_is_safe(dataset):
    dataset[0]  # the parent now holds an open handle; forked workers must reopen their own
    assert dataset.reader.open_count() >= 1
    seen = run_epoch(
        dataset, num_workers=2, multiprocessing_context=multiprocessing.get_context("fork")
    )
    assert sorted(seen) == sorted(dataset.index.chip_ids)


SEEN_DURING_READ: dict[str, tuple] = {}


def gdal_probe(href):
    """A signer, called while a chip is read: notes the GDAL options in force then."""
    SEEN_DURING_READ["options"] = gdal_probe_values()
    return href


def gdal_probe_values():
    return get_gdal_config("GDAL_HTTP_MAX_RETRY"), get_gdal_config("GEOCHIPS_PROBE")


class GdalProbe(torch.utils.data.Dataset):
    """Reads a chip, then reports the GDAL options in force in the worker during and after."""

    def __init__(self, inner):
        self.inner = inner

    def __len__(self):
        return 4

    def __getitem__(self, i):
        self.inner[i]
        return SEEN_DURING_READ["options"], gdal_probe_values()


def test_gdal_options_apply_in_every_worker_during_reads_only(make_scene):
    index = ChipIndex.build([make_scene(height=96, width=80)], size=32)
    dataset = ChipDataset(index, gdal_options={"GEOCHIPS_PROBE": "on"}, sign=gdal_probe)
    loader = DataLoader(
        GdalProbe(dataset),
        batch_size=None,
        num_workers=2,
        multiprocessing_context=multiprocessing.get_context("spawn"),
    )
    # A worker's main thread is process-wide for GDAL: nothing stays set after a read. (The
    # default network options are not set for local GeoTIFFs: tests/io/test_settings.py.)
    assert [tuple(map(tuple, v)) for v in loader] == [((None, "on"), (None, None))] * 4


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank, world_size, port, dataset, results):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        sampler = DistributedSampler(dataset, shuffle=True, seed=3, drop_last=True)
        loader = DataLoader(
            dataset, batch_size=4, sampler=sampler, collate_fn=collate, num_workers=1
        )
        ids = [cid for batch in loader for cid in batch["chip_id"]]
        gathered = [None] * world_size
        dist.all_gather_object(gathered, ids)
        if rank == 0:
            results.put(gathered)
    finally:
        dist.destroy_process_group()


def test_distributed_sampler_shards_the_index_across_ranks(dataset):
    ctx = mp.get_context("spawn")
    results = ctx.SimpleQueue()
    mp.start_processes(
        _rank_main, args=(2, _free_port(), dataset, results), nprocs=2, start_method="spawn"
    )
    shards = results.get()
    assert len(shards) == 2 and len(shards[0]) == len(shards[1]) == len(dataset) // 2
    assert not set(shards[0]) & set(shards[1])
    assert set(shards[0]) | set(shards[1]) <= set(dataset.index.chip_ids)
