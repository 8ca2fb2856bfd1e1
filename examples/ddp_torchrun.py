"""Train on geochips with DistributedDataParallel, one process per rank, launched by torchrun.

The ranks share one thing: the saved GeoParquet index (``index.save("chips.parquet")``).
Each loads it, builds its own ``ChipDataset`` (files are opened in each process, never
shared) and reads only its share of the chips, chosen by the sampler::

    torchrun --nproc-per-node 2 examples/ddp_torchrun.py chips.parquet --epochs 2

On several machines, run the same command on each with ``--nnodes N --node-rank K
--master-addr HOST``. ``--sampler distributed`` uses ``torch.utils.data.DistributedSampler``
(chips dealt one by one) instead of geochips' ``BlockShuffleSampler`` (blocks of
neighbouring chips dealt whole, for the tile cache). ``--report out.json`` writes, from rank
0, the chips every rank read (gathered with ``all_gather_object``), for the tests.
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

import geochips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("index", help="a GeoParquet index written by ChipIndex.save")
    parser.add_argument("--sampler", choices=["block", "distributed"], default="block")
    parser.add_argument("--block", type=int, default=2048, help="block side in pixels")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1, help="DataLoader workers per rank")
    parser.add_argument("--report", help="JSON file where rank 0 writes what each rank read")
    args = parser.parse_args()

    dist.init_process_group("gloo")  # torchrun sets RANK, WORLD_SIZE, MASTER_ADDR/PORT
    index = geochips.ChipIndex.load(args.index)
    dataset = geochips.ChipDataset(index)
    if args.sampler == "block":  # rank and world size come from the process group
        sampler: DistributedSampler[int] = geochips.BlockShuffleSampler(
            index, block=args.block, seed=0
        )
    else:
        sampler = DistributedSampler(dataset, seed=0)
    loader = DataLoader(
        dataset,
        batch_size=args.batch_size,
        sampler=sampler,
        num_workers=args.workers,
        collate_fn=geochips.collate,
    )

    bands = index.scenes[0].count
    model = DistributedDataParallel(nn.Sequential(nn.Conv2d(bands, 4, 3), nn.AdaptiveAvgPool2d(1)))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)

    epochs = []
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)  # the same epoch on every rank: a new, shared order
        seen: list[str] = []
        batches = 0
        first: dict[str, list[object]] = {}
        for batch in loader:
            image = batch["image"].float() / 65535  # uint16 scenes
            loss = model(image).square().mean()
            optimizer.zero_grad()
            loss.backward()  # DDP averages the gradients over the ranks here
            optimizer.step()
            seen += batch["chip_id"]
            batches += 1
            first = first or {"chip_id": batch["chip_id"][0], "image": batch["image"][0].tolist()}
        epochs.append({"chip_ids": seen, "batches": batches, "first": first})

    mine = {"rank": dist.get_rank(), "sampler": type(sampler).__name__, "epochs": epochs}
    everyone: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, mine)
    if dist.get_rank() == 0:
        print(f"{args.sampler} sampler: {len(index)} chips on {len(everyone)} ranks")
        if args.report:
            with open(args.report, "w") as f:
                json.dump(everyone, f)
    # Shut down in order: every rank done with its collectives, DDP's reducer (which holds
    # the group and gloo work) gone, then the group, so no gloo thread outlives the
    # interpreter (an abort at exit otherwise, now and then, on a loaded machine).
    dist.barrier()
    del model, optimizer, loader
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
