"""Batching: stack chip tensors into ``(N, C, H, W)`` and keep the metadata as lists."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import get_worker_info

from geochips.errors import CollateError
from geochips.loading import slots
from geochips.loading.leases import SlotBatch

STACKED = ("image", "valid", "mask")


class BatchSamples(list[dict[str, Any]]):
    """The samples of one batch read into the rows of one tensor per key.

    :meth:`ChipDataset.__getitems__ <geochips.ChipDataset.__getitems__>` returns them;
    :func:`collate` then hands out those tensors as they are instead of stacking a copy,
    for every key whose samples still hold the rows they were given.
    """

    def __init__(
        self,
        samples: list[dict[str, Any]],
        rows: dict[str, tuple[torch.Tensor, list[torch.Tensor]]],
    ) -> None:
        super().__init__(samples)
        self.rows = rows
        """``key -> (batch tensor, the row given to each sample)``."""

    def ready(self, key: str) -> torch.Tensor | None:
        """The batch tensor of ``key``, if every sample still holds its own row of it."""
        found = self.rows.get(key)
        if found is None or len(found[1]) != len(self):
            return None
        tensor, rows = found
        return tensor if all(s.get(key) is r for s, r in zip(self, rows, strict=True)) else None


def collate(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack ``image`` (and ``valid``/``mask`` when present) and list everything else.

    Use it as a DataLoader's ``collate_fn``; a batch may mix scenes, as long as every chip
    has the same band count, size and dtype.

    **Usage**::

        loader = DataLoader(ds, batch_size=16, collate_fn=geochips.collate)
        batch = next(iter(loader))
        batch["image"].shape   # torch.Size([16, C, H, W]); batch["chip_id"] is a list

    Raises:
        CollateError: naming the chips whose tensors differ, or keys that only some have.
    """
    if not samples:
        raise CollateError("cannot collate an empty batch")
    keys = list(samples[0])
    for sample in samples[1:]:
        if list(sample) != keys and set(sample) != set(keys):
            raise CollateError(
                f"samples have different keys: {sorted(keys)} for chip "
                f"{samples[0].get('chip_id')!r} but {sorted(sample)} for chip "
                f"{sample.get('chip_id')!r}"
            )
    columns = {key: [s[key] for s in samples] for key in keys}
    stacked = [k for k in keys if k in STACKED and isinstance(columns[k][0], torch.Tensor)]
    for key in stacked:
        _check(key, columns[key], samples)
    # ChipDataset.__getitems__ reads a batch into one tensor, row by row: returned as is.
    ready = {}
    if isinstance(samples, BatchSamples):
        ready = {k: tensor for k in stacked if (tensor := samples.ready(k)) is not None}
    todo = [k for k in stacked if k not in ready]
    outs = dict(zip(todo, _outputs([columns[k] for k in todo]), strict=True))
    batch: dict[str, Any] = {}
    for key in keys:
        if key in ready:
            batch[key] = ready[key]
        elif key in outs:
            batch[key] = torch.stack(columns[key], out=outs[key])
        else:
            batch[key] = columns[key]
    return _in_slot(batch)


def _in_slot(batch: dict[str, Any]) -> dict[str, Any]:
    """In a DataLoader worker, a batch read into a reused slot, marked to return it."""
    pool = slots.pool()
    if pool is None:
        return batch
    for key in STACKED:
        value = batch.get(key)
        slot = pool.find(value) if isinstance(value, torch.Tensor) else None
        if slot is not None:
            return SlotBatch(batch, slot)
    return batch


def _check(key: str, tensors: list[torch.Tensor], samples: Sequence[dict[str, Any]]) -> None:
    first = tensors[0]
    odd = [
        (s.get("chip_id"), tuple(t.shape), t.dtype)
        for s, t in zip(samples, tensors, strict=True)
        if t.shape != first.shape or t.dtype != first.dtype
    ]
    if odd:
        listing = ", ".join(f"{cid!r} {shape} {dtype}" for cid, shape, dtype in odd[:5])
        more = f" and {len(odd) - 5} more" if len(odd) > 5 else ""
        raise CollateError(
            f"cannot stack {key!r}: chip {samples[0].get('chip_id')!r} is "
            f"{tuple(first.shape)} {first.dtype}, but {listing}{more} differ. Choose bands= "
            "and dtype= so every scene gives the same shape, or batch scenes separately"
        )


def _outputs(groups: list[list[torch.Tensor]]) -> list[torch.Tensor | None]:
    """Where to stack each group: in a DataLoader worker, one reused slot for them all.

    Samples a ``transform`` changed are read one by one and stacked here; in a worker the
    batch then reaches the main process through a slot, with no more copy (``slots``).
    """
    if not groups or get_worker_info() is None or any(g[0].device.type != "cpu" for g in groups):
        return [None] * len(groups)
    return list(slots.empty([((len(g), *g[0].shape), g[0].dtype) for g in groups]))
