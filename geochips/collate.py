"""Batching: stack chip tensors into ``(N, C, H, W)`` and keep the metadata as lists."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import get_worker_info

from geochips import slots
from geochips.errors import CollateError

STACKED = ("image", "valid", "mask")


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
    batch: dict[str, Any] = {}
    for key in keys:
        values = [s[key] for s in samples]
        if key in STACKED and isinstance(values[0], torch.Tensor):
            batch[key] = _stack(key, values, samples)
        else:
            batch[key] = values
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
            return slots.SlotBatch(batch, slot)
    return batch


def _stack(
    key: str, tensors: list[torch.Tensor], samples: Sequence[dict[str, Any]]
) -> torch.Tensor:
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
    base = first._base
    if (
        base is not None
        and base.shape[0] == len(tensors)
        and all(t._base is base for t in tensors)
        and all(t.data_ptr() == base[k].data_ptr() for k, t in enumerate(tensors))
    ):
        # ChipDataset.__getitems__ read the batch into one tensor, in this order: no copy.
        return base
    out = None
    if get_worker_info() is not None:
        # In a DataLoader worker, stack straight into shared memory, as default_collate
        # does: the batch then reaches the main process without one more copy.
        storage = first._typed_storage()._new_shared(  # type: ignore[no-untyped-call]
            sum(t.numel() for t in tensors), device=first.device
        )
        out = first.new(storage).resize_(len(tensors), *first.shape)
    return torch.stack(tensors, out=out)
