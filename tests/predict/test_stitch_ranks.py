"""Two gloo ranks stitch their shares; one merge writes what a single process writes."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch
import torch.distributed as dist
from support.ranks import free_port, spawn_ranks
from torch.utils.data import DataLoader, DistributedSampler

import geochips
from geochips.errors import InvalidParameterError
from geochips.testing import write_scene

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::geochips.TileAlignmentWarning")]


def model(batch):
    """Not an identity: overlaps must blend for the check to mean something."""
    image = batch["image"].float()
    rows = torch.tensor([float(w.row_off) for w in batch["window"]])
    return image * 0.5 + rows[:, None, None, None]


def share(rank, index, folder, blend, port):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    ds = geochips.ChipDataset(index, dtype="float32")
    sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=0)
    loader = DataLoader(ds, batch_size=4, sampler=sampler, collate_fn=geochips.collate)
    with geochips.Stitcher(index, f"{folder}/{{scene}}.tif", bands=2, blend=blend,
                           part=(rank, 2)) as out:  # fmt: skip
        for batch in loader:
            out.add(batch, model(batch))
    dist.barrier()
    if rank == 0:
        geochips.Stitcher.merge(index, f"{folder}/{{scene}}.tif", parts=2, bands=2, blend=blend)
    dist.barrier()
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ranks")
    paths = [write_scene(folder / f"s{k}.tif", height=600, width=600 + 90 * k, count=2,
                         blocksize=128) for k in range(2)]  # fmt: skip
    return geochips.ChipIndex.build(paths, size=160, stride=130, edge="shift")  # an odd count


@pytest.mark.parametrize("blend", ["cosine", "center", "max"])
def test_two_ranks_and_a_merge_write_what_one_process_writes(index, tmp_path, blend, monkeypatch):
    assert len(index) % 2 == 1  # DistributedSampler pads one rank with a repeat
    single = tmp_path / "single"
    ds = geochips.ChipDataset(index, dtype="float32")
    with geochips.Stitcher(index, f"{single}/{{scene}}.tif", bands=2, blend=blend) as out:
        for batch in DataLoader(ds, batch_size=5, collate_fn=geochips.collate):
            out.add(batch, model(batch))
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")
    ranks = tmp_path / "ranks"
    ranks.mkdir()
    spawn_ranks(share, (index, str(ranks), blend, free_port()))
    assert sorted(p.name for p in ranks.iterdir()) == ["s0.tif", "s1.tif"]  # no part left
    for name in ("s0.tif", "s1.tif"):
        with rasterio.open(single / name) as a, rasterio.open(ranks / name) as b:
            expected, got = a.read(), b.read()
            assert b.transform == a.transform and b.crs == a.crs
        if blend == "cosine":
            np.testing.assert_allclose(got, expected, rtol=1e-5)
        else:
            np.testing.assert_array_equal(got, expected)


def test_a_merge_without_every_share_is_refused(index, tmp_path):
    ds = geochips.ChipDataset(index, dtype="float32")
    with geochips.Stitcher(index, f"{tmp_path}/{{scene}}.tif", bands=2, part=(0, 2)) as out:
        batch = geochips.collate([ds[0]])
        out.add(batch, batch["image"])
    with pytest.raises(InvalidParameterError, match="1 of 2 ranks left no share"):
        geochips.Stitcher.merge(index, f"{tmp_path}/{{scene}}.tif", parts=2, bands=2)
    assert not (tmp_path / "s0.tif").exists() and not (tmp_path / "s1.tif").exists()
    assert (tmp_path / "s0.tif.part-0-of-2.tif.chips.npz").exists()  # kept: the share is not lost
