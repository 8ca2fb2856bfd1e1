"""Real multi-process training: torchrun + DDP on gloo, and Lightning's "ddp" strategy.

Each test runs an example script of ``examples/`` on a saved GeoParquet index of two real
COGs, in 2 processes joined over 127.0.0.1, and checks what every rank read: disjoint,
complete, equal counts, locality, pixels. A hang fails on the timeout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch.distributed as dist
from affine import Affine
from support.ranks import free_port, spawn_ranks

import geochips
from geochips import BlockShuffleSampler, ChipIndex
from geochips.testing import write_scene

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
BLOCK = 128  # px: 4 x 4 chips of 32 px, one COG tile of the scenes

pytestmark = pytest.mark.slow


def run(command: list[str], *, timeout: float = 120, **env: str) -> str:
    """Run ``command`` in its own process group; on a timeout kill that group and fail."""
    environ = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "MASTER_ADDR": "127.0.0.1",
        "GLOO_SOCKET_IFNAME": "lo",  # gloo on the loopback only
        "OMP_NUM_THREADS": "1",
        **env,
    }
    proc = subprocess.Popen(
        command,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher and the ranks it started
        out, err = proc.communicate()
        pytest.fail(f"{command[:4]} did not finish in {timeout} s:\n{out}\n{err}")
    assert proc.returncode == 0, f"{out}\n{err}"
    return out


@pytest.fixture(scope="module")
def saved_index(tmp_path_factory) -> tuple[str, ChipIndex]:
    """Two 256 x 256 COGs side by side (tiles of 128 px), chips of 32: 128 chips, saved."""
    folder = tmp_path_factory.mktemp("distributed")
    paths = [
        write_scene(
            folder / f"scene{k}.tif",
            height=256,
            width=256,
            layout="cog",
            blocksize=128,
            transform=Affine(10.0, 0.0, 500_000.0 + 2560 * k, 0.0, -10.0, 4_000_000.0),
        )
        for k in range(2)
    ]
    index = ChipIndex.build(paths, size=32)
    path = str(folder / "chips.parquet")
    index.save(path)
    return path, ChipIndex.load(path)


def block_of(index: ChipIndex, chip_id: str) -> tuple[int, int, int]:
    p = index.position(chip_id)
    return (
        int(index.column("scene")[p]),
        int(index.column("row_off")[p]) // BLOCK,
        int(index.column("col_off")[p]) // BLOCK,
    )


def locality(index: ChipIndex, chip_ids: list[str]) -> float:
    """Fraction of consecutive chips that lie in the same block."""
    blocks = [block_of(index, c) for c in chip_ids]
    return sum(a == b for a, b in zip(blocks, blocks[1:], strict=False)) / (len(blocks) - 1)


def check_shares(index: ChipIndex, expected: list[str], per_rank: list[list[str]]) -> None:
    """Every chip read once, by one rank; every rank read as many."""
    assert len({len(ids) for ids in per_rank}) == 1
    flat = [c for ids in per_rank for c in ids]
    assert sorted(flat) == sorted(expected)


# -- torchrun + DistributedDataParallel --------------------------------------------------


@pytest.mark.parametrize("sampler", ["block", "distributed"])
def test_torchrun_ranks_read_disjoint_complete_equal_shares(saved_index, tmp_path, sampler):
    path, index = saved_index
    report = tmp_path / "report.json"
    out = run(
        [
            sys.executable, "-m", "torch.distributed.run",
            "--nnodes", "1", "--nproc-per-node", "2",
            "--master-addr", "127.0.0.1", "--master-port", str(free_port()),
            str(EXAMPLES / "ddp_torchrun.py"), path,
            "--sampler", sampler, "--block", str(BLOCK), "--epochs", "2",
            "--report", str(report),
        ]
    )  # fmt: skip
    assert f"{sampler} sampler: 128 chips on 2 ranks" in out
    ranks = json.loads(report.read_text())
    assert [r["rank"] for r in ranks] == [0, 1]
    name = "BlockShuffleSampler" if sampler == "block" else "DistributedSampler"
    assert {r["sampler"] for r in ranks} == {name}

    orders = []
    for epoch in range(2):
        per_rank = [r["epochs"][epoch]["chip_ids"] for r in ranks]
        check_shares(index, index.chip_ids, per_rank)
        assert [r["epochs"][epoch]["batches"] for r in ranks] == [8, 8]  # 64 chips / 8
        orders.append(per_rank)
        for ids in per_rank:
            if sampler == "block":  # 4 blocks of 16 chips a rank: 60 of 63 pairs
                assert locality(index, ids) > 0.9
            else:
                assert locality(index, ids) < 0.5
    assert orders[0] != orders[1]  # set_epoch gave a new order

    # What the ranks were given is what the files hold.
    for r in ranks:
        for e in r["epochs"]:
            p = index.position(e["first"]["chip_id"])
            with rasterio.open(index.scene_of(p).hrefs[0]) as src:
                expected = src.read(window=tuple(index.window(p).slices()))
            np.testing.assert_array_equal(np.array(e["first"]["image"]), expected)


# -- Lightning ---------------------------------------------------------------------------

PLAIN = '''
import sys
sys.path.insert(0, {examples!r})
from torch.utils.data import Sampler
import geochips
import lightning_datamodule as example


class BlockOrder(Sampler):
    """The block order of one process, as a plain Sampler: what Lightning wraps."""

    def __init__(self, index, block, seed):
        self.inner = geochips.BlockShuffleSampler(
            index, block=block, seed=seed, num_replicas=1, rank=0
        )

    def __len__(self):
        return len(self.inner)

    def __iter__(self):
        return iter(self.inner)

    def set_epoch(self, epoch):
        self.inner.set_epoch(epoch)


class PlainSamplerData(example.ChipDataModule):
    def train_sampler(self):
        return BlockOrder(self.splits["train"], self.block, self.seed)


example.main(PlainSamplerData)
'''


def run_lightning(script: Path, path: str, report: Path) -> list[dict[str, object]]:
    pytest.importorskip("lightning")
    run(
        [sys.executable, str(script), path, "--devices", "2", "--block", str(BLOCK),
         "--epochs", "2", "--report", str(report)],
        MASTER_PORT=str(free_port()),
    )  # fmt: skip
    return [json.loads((report / f"rank{k}.json").read_text()) for k in range(2)]


def test_lightning_keeps_the_block_sampler_and_its_locality(saved_index, tmp_path):
    path, index = saved_index
    ranks = run_lightning(EXAMPLES / "lightning_datamodule.py", path, tmp_path / "report")
    splits = geochips.spatial_split(index, {"train": 0.75, "val": 0.25}, seed=0)
    train, val = splits["train"], splits["val"]
    assert [(r["rank"], r["world_size"]) for r in ranks] == [(0, 2), (1, 2)]
    # Not wrapped: the sampler Lightning iterated is ours.
    assert {r["sampler"] for r in ranks} == {"geochips.loading.samplers.BlockShuffleSampler"}
    assert {r["val_sampler"] for r in ranks} == {"BlockShuffleSampler"}
    for epoch in range(2):
        per_rank = [r["epochs"][epoch] for r in ranks]
        check_shares(index, train.chip_ids, per_rank)
        check_shares(index, val.chip_ids, [r["val_epochs"][epoch] for r in ranks])
        for rank, ids in enumerate(per_rank):
            assert locality(index, ids) > 0.8
            # Lightning called set_epoch(epoch): the order is the sampler's for that epoch.
            own = BlockShuffleSampler(train, block=BLOCK, num_replicas=2, rank=rank)
            own.set_epoch(epoch)
            assert ids == [train.chip_id(p) for p in own]
    assert ranks[0]["epochs"][0] != ranks[0]["epochs"][1]


def test_lightning_wraps_a_plain_sampler_and_loses_the_locality(saved_index, tmp_path):
    # The control: the same block order from a sampler that is not a DistributedSampler.
    path, index = saved_index
    script = tmp_path / "plain_sampler.py"
    script.write_text(PLAIN.format(examples=str(EXAMPLES)))
    ranks = run_lightning(script, path, tmp_path / "report")
    train = geochips.spatial_split(index, {"train": 0.75, "val": 0.25}, seed=0)["train"]
    assert {r["sampler"] for r in ranks} == {
        "lightning.fabric.utilities.distributed.DistributedSamplerWrapper"
    }
    for epoch in range(2):
        per_rank = [r["epochs"][epoch] for r in ranks]
        check_shares(index, train.chip_ids, per_rank)  # still sharded, but shuffled
        for ids in per_rank:
            assert locality(index, ids) < 0.5


# -- a sampler built before the process group exists -------------------------------------


def read_share(rank: int, sampler: BlockShuffleSampler, port: int, folder: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    sampler.set_epoch(3)
    share = {"len": len(sampler), "order": list(sampler), "world": sampler.num_replicas}
    dist.destroy_process_group()
    Path(folder, f"rank{rank}.json").write_text(json.dumps(share))


def test_a_sampler_built_before_the_group_follows_it_once_joined(
    saved_index, tmp_path, monkeypatch
):
    # Built with no process group (a world of one), then pickled into 2 spawned ranks, as
    # a DataLoader given to Lightning's "ddp_spawn" is: each rank reads its share only.
    _, index = saved_index
    sampler = BlockShuffleSampler(index, block=BLOCK, seed=0)
    assert (sampler.num_replicas, len(sampler)) == (1, 128)
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")  # gloo on the loopback only
    spawn_ranks(read_share, (sampler, free_port(), str(tmp_path)), timeout=60)
    shares = [json.loads((tmp_path / f"rank{k}.json").read_text()) for k in range(2)]
    assert [(s["len"], s["world"]) for s in shares] == [(64, 2), (64, 2)]
    assert sorted(shares[0]["order"] + shares[1]["order"]) == list(range(128))
    sampler.set_epoch(3)
    assert shares[0]["order"] + shares[1]["order"] == sampler.epoch_order().tolist()


# -- Lightning's decision, in one process --------------------------------------------------


def test_lightning_keeps_our_sampler_and_wraps_a_plain_one(saved_index):
    lightning = pytest.importorskip("lightning")
    from lightning.fabric.utilities.distributed import DistributedSamplerWrapper
    from lightning.pytorch.trainer.states import RunningStage
    from torch.utils.data import DataLoader, DistributedSampler, SubsetRandomSampler

    _, index = saved_index
    trainer = lightning.Trainer(
        accelerator="cpu", devices=2, strategy="ddp", logger=False, enable_progress_bar=False
    )
    connector = trainer._data_connector  # what fit() runs on each train/val loader
    dataset = geochips.ChipDataset(index)
    sampler = BlockShuffleSampler(index, block=BLOCK, num_replicas=2, rank=0)
    ours = DataLoader(dataset, batch_size=4, sampler=sampler, collate_fn=geochips.collate)
    assert connector._prepare_dataloader(ours, shuffle=True, mode=RunningStage.TRAINING) is ours
    # Prediction re-creates the loader (to track indices): our sampler is carried over.
    again = connector._prepare_dataloader(ours, shuffle=False, mode=RunningStage.PREDICTING)
    assert again is not ours and again.batch_sampler.sampler is sampler
    # Any other sampler is replaced: by a shuffling DistributedSampler for the built-in
    # ones, by a wrapper that shuffles what it yields for the others.
    shuffled = DataLoader(dataset, batch_size=4, shuffle=True)
    shuffled = connector._prepare_dataloader(shuffled, shuffle=True, mode=RunningStage.TRAINING)
    assert type(shuffled.sampler) is DistributedSampler and shuffled.sampler.shuffle
    plain = DataLoader(dataset, batch_size=4, sampler=SubsetRandomSampler(range(len(dataset))))
    wrapped = connector._prepare_dataloader(plain, shuffle=True, mode=RunningStage.TRAINING)
    assert type(wrapped.sampler) is DistributedSamplerWrapper and wrapped.sampler.shuffle
