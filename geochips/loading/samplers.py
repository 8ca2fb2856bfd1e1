"""A locality-aware sampler: shuffle blocks of neighbouring chips, then chips within them.

Neighbouring chips of an overlapping grid share the internal tiles of their COG (a 512/256
grid over 512x512 tiles decodes 4 tiles a chip). Read in a fully shuffled order, a shared
tile has left GDAL's block cache before its neighbours come; read block by block, it is
decoded once and served from the cache to the chips around it: 2.8x the chips/s on the
512/256 grid of ``benchmarks/`` (``RESULTS.md``), for the same set of chips per epoch.

The price is batch diversity: consecutive chips come from one area of one scene. Smaller
blocks mix more and reuse less; ``block`` pixels a side of 4x4 tiles (2048 px) hold 32 MB
of decoded uint16 tiles, well within the reader's 128 MB cache per process.

**Ranks.** Under ``torch.distributed`` every rank computes the same block-by-block order of
every chip from ``(seed, epoch)`` and takes its own contiguous share of it: rank ``r`` of
``W`` gets the ``r``-th of ``W`` runs of nearly equal length (``np.array_split``), so it
reads whole blocks except where a run starts or ends inside one. Ranks must yield equally
many chips, or DDP waits forever for the rank with fewer batches; cutting the order at chip
counts gives runs that differ by at most one chip, made up by repeating the rank's own last
chip (still in the tile cache), or dropped with ``drop_last=True`` (fewer than ``W`` chips
an epoch, as with ``DistributedSampler``). Dealing whole blocks instead leaves ranks apart
by up to a block of chips (64 on a 2048 px block of the 512/256 grid) to repeat or drop,
and leaves ranks empty when there are fewer blocks than ranks; the cut costs at most
``W - 1`` blocks an epoch whose shared tiles are decoded on two ranks instead of one.

The class is a :class:`~torch.utils.data.DistributedSampler`, which PyTorch Lightning
leaves in place under DDP (it wraps any other sampler in a ``DistributedSamplerWrapper``
that reshuffles the chips and loses the locality) and calls ``set_epoch`` on every epoch.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch.distributed as dist
from torch.utils.data import Dataset, DistributedSampler

from geochips.errors import InvalidParameterError
from geochips.index import ChipIndex


def _is_count(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _group(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    """Size of the process group and this process's rank: given, or from torch.distributed."""
    joined = dist.is_available() and dist.is_initialized()
    size = num_replicas if num_replicas is not None else dist.get_world_size() if joined else 1
    this = rank if rank is not None else dist.get_rank() if joined else 0
    if not _is_count(size) or size < 1:
        raise InvalidParameterError(f"num_replicas must be an int >= 1, got {num_replicas!r}")
    if not _is_count(this) or not 0 <= this < size:
        raise InvalidParameterError(
            f"rank must be an int in [0, {size - 1}] for num_replicas={size}, got rank={this!r}"
        )
    return int(size), int(this)


class BlockShuffleSampler(DistributedSampler[int]):
    """Yield this rank's share of every chip once per epoch, block by block, both levels shuffled.

    **Usage**::

        sampler = BlockShuffleSampler(index, block=2048, seed=0)  # rank and world from
        loader = DataLoader(ChipDataset(index), batch_size=16,    # torch.distributed
                            sampler=sampler, num_workers=2, collate_fn=geochips.collate)
        for epoch in range(epochs):
            sampler.set_epoch(epoch)   # a new order each epoch, reproducible from the seed
            for batch in loader: ...

    Args:
        index: the index the dataset serves (``dataset.index``).
        block: side of a block in pixels of the read grid, an int or ``(height, width)``;
            a chip belongs to the block holding its top-left corner.
        seed: seed of the shuffles; the order depends on ``(seed, epoch)`` only, and must
            be the same on every rank.
        shuffle: ``False`` yields the blocks in index order and their chips in index order
            (for validation: still one run of blocks per rank).
        num_replicas: number of ranks; default: the world size of the initialised
            ``torch.distributed`` process group, else 1, read again whenever the sampler
            is iterated or measured (so one built before ``init_process_group`` follows
            the group once joined).
        rank: this process's rank; default: its rank in that group, else 0 (as above).
        drop_last: drop the last ``len(index) % num_replicas`` chips of the epoch's order
            instead of repeating one chip on the shorter ranks.
    """

    def __init__(
        self,
        index: ChipIndex,
        *,
        block: int | tuple[int, int] = 2048,
        seed: int = 0,
        shuffle: bool = True,
        num_replicas: int | None = None,
        rank: int | None = None,
        drop_last: bool = False,
    ):
        if not isinstance(index, ChipIndex):
            raise InvalidParameterError(
                f"BlockShuffleSampler takes a ChipIndex (dataset.index), got {type(index).__name__}"
            )
        pair = (block, block) if not isinstance(block, (tuple, list)) else tuple(block)
        if len(pair) != 2 or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in pair
        ):
            raise InvalidParameterError(
                f"block must be a positive int or (height, width) of ints, got block={block!r}"
            )
        if not _is_count(seed) or seed < 0:
            raise InvalidParameterError(f"seed must be an int >= 0, got seed={seed!r}")
        size, this = _group(num_replicas, rank)
        # DistributedSampler only takes len() of its dataset; the attributes it sets
        # (num_replicas, rank, epoch, seed, shuffle, drop_last, num_samples, total_size)
        # are those Lightning and torch read, and its counts are ours: ceil(n / W), or
        # floor(n / W) with drop_last.
        dataset: Dataset[int] = index  # type: ignore[assignment]
        super().__init__(
            dataset, num_replicas=size, rank=this, shuffle=shuffle, seed=seed, drop_last=drop_last
        )
        self._asked = (num_replicas, rank)
        bh, bw = pair
        scene = index.column("scene").astype(np.int64)
        rows = np.maximum(index.column("row_off").astype(np.int64), 0) // bh
        cols = np.maximum(index.column("col_off").astype(np.int64), 0) // bw
        n_rows, n_cols = int(rows.max(initial=0)) + 1, int(cols.max(initial=0)) + 1
        # One block id per chip, computed once: iterating is then two permutations.
        _, self._block_of = np.unique((scene * n_rows + rows) * n_cols + cols, return_inverse=True)
        self._block_of = self._block_of.reshape(-1)
        self._blocks = int(self._block_of.max()) + 1 if len(index) else 0

    def epoch_order(self) -> np.ndarray:
        """Every chip position once, block by block: the epoch's order before it is shared.

        The same on every rank; ``list(sampler)`` is this rank's contiguous run of it.
        """
        if not self.shuffle:
            return np.argsort(self._block_of, kind="stable")
        rng = np.random.default_rng((self.seed, self.epoch))
        block_rank = rng.permutation(self._blocks)
        within = rng.random(len(self._block_of))
        return np.lexsort((within, block_rank[self._block_of]))

    def _follow_group(self) -> None:
        """Take the rank and world size not given from the process group, as it is now.

        A sampler built before ``init_process_group`` (at the top of a script that
        Lightning's "ddp" strategy relaunches, or pickled into ``mp.spawn`` processes)
        would otherwise read every chip on every rank, unwrapped, as a world of one.
        """
        size, this = _group(*self._asked)
        if (size, this) != (self.num_replicas, self.rank):
            n = len(self._block_of)
            self.num_replicas, self.rank = size, this
            self.num_samples = n // size if self.drop_last else -(-n // size)
            self.total_size = self.num_samples * size

    def __len__(self) -> int:
        self._follow_group()
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        self._follow_group()
        order = self.epoch_order()
        n, size, this = len(order), self.num_replicas, self.rank
        if self.drop_last:
            mine = order[this * self.num_samples : (this + 1) * self.num_samples]
        else:
            base, extra = divmod(n, size)
            start = this * base + min(this, extra)
            mine = order[start : start + base + (this < extra)]
            short = self.num_samples - len(mine)  # 0 or 1
            if short:  # the rank's own last chip; a chip of another rank's run if it has none
                mine = np.append(mine, mine[-1] if len(mine) else order[this % n])
        return iter(mine.tolist())
