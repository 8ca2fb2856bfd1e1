"""A locality-aware sampler: shuffle blocks of neighbouring chips, then chips within them.

Neighbouring chips of an overlapping grid share the internal tiles of their COG (a 512/256
grid over 512x512 tiles decodes 4 tiles a chip). Read in a fully shuffled order, a shared
tile has left GDAL's block cache before its neighbours come; read block by block, it is
decoded once and served from the cache to the chips around it: 2.8x the chips/s on the
512/256 grid of ``benchmarks/`` (``RESULTS.md``), for the same set of chips per epoch.

The price is batch diversity: consecutive chips come from one area of one scene. Smaller
blocks mix more and reuse less; ``block`` pixels a side of 4x4 tiles (2048 px) hold 32 MB
of decoded uint16 tiles, well within the reader's 128 MB cache per process.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler

from geochips.errors import InvalidParameterError
from geochips.index import ChipIndex


class BlockShuffleSampler(Sampler[int]):
    """Yield every chip position once per epoch, block by block, both levels shuffled.

    **Usage**::

        sampler = BlockShuffleSampler(index, block=2048, seed=0)
        loader = DataLoader(ChipDataset(index), batch_size=16, sampler=sampler,
                            num_workers=2, collate_fn=geochips.collate)
        for epoch in range(epochs):
            sampler.set_epoch(epoch)   # a new order each epoch, reproducible from the seed
            for batch in loader: ...

    Args:
        index: the index the dataset serves (``dataset.index``).
        block: side of a block in pixels of the read grid, an int or ``(height, width)``;
            a chip belongs to the block holding its top-left corner.
        seed: seed of the shuffles; the order depends on ``(seed, epoch)`` only.
    """

    def __init__(self, index: ChipIndex, *, block: int | tuple[int, int] = 2048, seed: int = 0):
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
        bh, bw = pair
        scene = index.column("scene").astype(np.int64)
        rows = np.maximum(index.column("row_off").astype(np.int64), 0) // bh
        cols = np.maximum(index.column("col_off").astype(np.int64), 0) // bw
        n_rows, n_cols = int(rows.max(initial=0)) + 1, int(cols.max(initial=0)) + 1
        # One block id per chip, computed once: iterating is then two permutations.
        _, self._block_of = np.unique((scene * n_rows + rows) * n_cols + cols, return_inverse=True)
        self._blocks = int(self._block_of.max()) + 1 if len(index) else 0
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order ``__iter__`` yields (as DistributedSampler does)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self._block_of)

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng((self.seed, self.epoch))
        block_rank = rng.permutation(self._blocks)
        within = rng.random(len(self._block_of))
        order = np.lexsort((within, block_rank[self._block_of]))
        return iter(order.tolist())
