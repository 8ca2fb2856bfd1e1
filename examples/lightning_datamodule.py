"""Train on geochips with PyTorch Lightning: a LightningDataModule over a saved index.

``setup`` loads the saved GeoParquet index on each rank and splits it with
``spatial_split`` (the same seed gives the same split everywhere); the train and val
loaders use ``BlockShuffleSampler``. It is a ``DistributedSampler``, so under DDP
Lightning leaves it in place (any other sampler is wrapped in a ``DistributedSamplerWrapper``
that reshuffles the chips and loses the tile-cache locality) and calls its ``set_epoch``::

    python examples/lightning_datamodule.py chips.parquet --devices 2

``--report DIR`` writes ``DIR/rank<k>.json`` per rank: the sampler Lightning used and the
chips each epoch read, for the tests.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler

import geochips


class ChipDataModule(L.LightningDataModule):
    """Train and val chips of a saved index, spatially split, read block by block."""

    def __init__(
        self,
        index_path: str,
        *,
        block: int = 2048,
        batch_size: int = 8,
        workers: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.index_path, self.block, self.seed = index_path, block, seed
        self.batch_size, self.workers = batch_size, workers

    def setup(self, stage: str) -> None:
        index = geochips.ChipIndex.load(self.index_path)
        self.splits = geochips.spatial_split(index, {"train": 0.75, "val": 0.25}, seed=self.seed)

    def train_sampler(self) -> Sampler[int]:
        # Built here, once Lightning has joined the process group: rank and world size
        # come from it.
        return geochips.BlockShuffleSampler(self.splits["train"], block=self.block, seed=self.seed)

    def train_dataloader(self) -> DataLoader[Any]:
        return self._loader(self.splits["train"], self.train_sampler())

    def val_dataloader(self) -> DataLoader[Any]:
        val = self.splits["val"]  # no shuffle: blocks and chips in index order, per rank
        return self._loader(val, geochips.BlockShuffleSampler(val, block=self.block, shuffle=False))

    def _loader(self, index: geochips.ChipIndex, sampler: Sampler[int]) -> DataLoader[Any]:
        return DataLoader(
            geochips.ChipDataset(index),
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.workers,
            persistent_workers=self.workers > 0,
            collate_fn=geochips.collate,
        )


class TinyModel(L.LightningModule):
    """A trivial model, which also notes the chips each epoch read."""

    def __init__(self, bands: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(bands, 4, 3), nn.AdaptiveAvgPool2d(1))
        self.seen: dict[str, list[list[str]]] = {"train": [], "val": []}

    def _step(self, batch: dict[str, Any], split: str) -> torch.Tensor:
        if not self.trainer.sanity_checking:
            if len(self.seen[split]) <= self.current_epoch:
                self.seen[split].append([])
            self.seen[split][self.current_epoch] += batch["chip_id"]
        return self.net(batch["image"].float() / 65535).square().mean()

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._step(batch, "val")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=1e-3)


def main(datamodule_class: type[ChipDataModule] = ChipDataModule) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("index", help="a GeoParquet index written by ChipIndex.save")
    parser.add_argument("--devices", type=int, default=2, help="processes on this machine")
    parser.add_argument("--block", type=int, default=2048, help="block side in pixels")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--report", help="folder where each rank writes what it read")
    args = parser.parse_args()

    data = datamodule_class(args.index, block=args.block)
    bands = geochips.ChipIndex.load(args.index).scenes[0].count
    model = TinyModel(bands)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=args.devices,
        strategy="ddp",  # Lightning starts the other ranks as copies of this script
        max_epochs=args.epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=data)

    if args.report:
        sampler = trainer.train_dataloader.sampler
        report = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "sampler": f"{type(sampler).__module__}.{type(sampler).__qualname__}",
            "val_sampler": type(trainer.val_dataloaders.sampler).__qualname__,
            "epochs": model.seen["train"],
            "val_epochs": model.seen["val"],
        }
        os.makedirs(args.report, exist_ok=True)
        with open(os.path.join(args.report, f"rank{trainer.global_rank}.json"), "w") as f:
            json.dump(report, f)


if __name__ == "__main__":
    main()
