"""Batch memory a DataLoader worker reuses, instead of fresh shared memory for every batch.

A worker's batch reaches the main process through shared memory. Fresh shared memory is
dear: the kernel allocates, zeroes and maps every page, and frees them once the main
process is done. On our 2-core machine that took ~0.4 ms a chip of 512x512 uint16 with its
mask, more in int32: a worker read at 0.71x the raw rasterio loop, against 0.90x in plain
memory (benchmarks/RESULTS.md). So each worker keeps a few batch *slots* (shared memory,
pages mapped once) and writes a new batch into a slot the main process no longer uses.

How a slot comes back: in a worker, :func:`geochips.collate` returns a :class:`SlotBatch`
(a dict). Pickled to the main process, it is rebuilt there as a plain dict whose tensors
view the slot through one :class:`_Lease`; torch keeps the lease alive as long as any
tensor, view, storage or NumPy array built on those tensors lives (a copy, such as
``.to("cuda")`` or ``pin_memory``, does not hold it). When the lease dies, a finalizer
writes "free" into the slot's header byte, which the worker reads before reusing the slot.

Nothing else frees a slot, so it is safe by default: a batch whose tensors reach the main
process another way (a ``collate_fn`` that wraps geochips.collate and builds its own dict)
leaves its slot busy, and the worker forgets it after :data:`MAX_SLOTS` newer batches
(back to fresh memory for each batch). A worker also never reuses a slot it still holds
a tensor of itself: it asks torch how many owners the slot's storage has
(``torch._C._storage_Use_Count``, internal; a torch without it gets fresh shared memory
for every batch, as before). The header byte is written by one process and read by the
other with no lock: the main process writes it only after every tensor of the batch is
gone, and the worker only ever reads it.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Sequence
from typing import Any, TypeAlias

import numpy as np
import torch
from torch.utils.data import get_worker_info

Spec: TypeAlias = tuple[tuple[int, ...], torch.dtype]
"""A tensor of a batch: its shape and dtype."""

MAX_SLOTS = 6
"""Slots a worker keeps: the batches in flight (``prefetch_factor``, 2 by default), the one
the main process uses, the one being read, and spare."""

SPARE = 1
"""Free slots a worker keeps besides the one it reuses; more are released to the OS (a
burst of batches held at once does not pin that memory for the worker's life)."""

HEADER = 64  # bytes before the first tensor: byte 0 is the slot's state
BUSY, FREE = 1, 0
ALIGN = 64

# The count of owners of a storage; without it a slot cannot be known unused by the worker.
_use_count = getattr(torch._C, "_storage_Use_Count", None)


class Slot:
    """One shared-memory buffer holding a batch's tensors (worker side)."""

    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes
        self.storage = torch.UntypedStorage._new_shared(nbytes)  # type: ignore[no-untyped-call]
        self.ptr = self.storage.data_ptr()

    def reusable(self) -> bool:
        """Whether the main process freed the slot and the worker holds no tensor of it."""
        owners = _use_count(self.storage._cdata)  # type: ignore[misc]
        return bool(self.storage[0] == FREE and owners == 1)  # the one owner: this slot

    def tensors(self, specs: Sequence[Spec]) -> list[torch.Tensor]:
        """Views of the slot with the given shapes and dtypes; the slot becomes busy."""
        self.storage[0] = BUSY
        # Tensors of their own (no ``_base``), as torch.empty gives: collate checks that
        # the samples are the rows of one batch tensor through their ``_base``.
        return [
            torch.empty(0, dtype=dtype).set_(
                self.storage, offset // _itemsize(dtype), shape, _contiguous_strides(shape)
            )
            for (shape, dtype), offset in zip(specs, _offsets(specs), strict=True)
        ]


class Pool:
    """The slots of one worker process, reused once the main process has freed them."""

    def __init__(self) -> None:
        self.slots: list[Slot] = []

    def tensors(self, specs: Sequence[Spec]) -> list[torch.Tensor]:
        """Return uninitialised tensors for one batch, in a reused slot when one is free."""
        nbytes = size(specs)
        free = [s for s in self.slots if s.reusable()]
        slot = next((s for s in free if s.nbytes == nbytes), None)
        for spare in [s for s in free if s is not slot][:-SPARE]:  # the oldest go
            self.slots.remove(spare)
        if slot is None:
            slot = Slot(nbytes)
            self.slots.append(slot)
            if len(self.slots) > MAX_SLOTS:
                # Forget the oldest: free ones are dropped, busy ones are left to whoever
                # still holds them (their memory goes when the last tensor does).
                self.slots.pop(0)
        else:
            self.slots.remove(slot)  # most recently used last
            self.slots.append(slot)
        return slot.tensors(specs)

    def find(self, tensor: torch.Tensor) -> Slot | None:
        """The slot ``tensor`` is a view of, if any."""
        ptr = tensor.untyped_storage().data_ptr()
        return next((s for s in self.slots if s.ptr == ptr), None)


_pool: Pool | None = None
_pool_pid: int | None = None


def pool() -> Pool | None:
    """This worker's pool; ``None`` outside DataLoader workers (or without a use count)."""
    global _pool, _pool_pid
    info = get_worker_info()
    if info is None or _use_count is None:
        return None
    if _pool is None or _pool_pid != os.getpid():
        _pool, _pool_pid = Pool(), os.getpid()
    return _pool


def empty(specs: Sequence[Spec]) -> list[torch.Tensor]:
    """Uninitialised tensors for one batch: in a reused slot inside a DataLoader worker."""
    if get_worker_info() is None:
        return [torch.empty(shape, dtype=dtype) for shape, dtype in specs]
    slots = pool()
    if slots is None:  # a torch without the use count: fresh shared memory for each batch
        return Slot(size(specs)).tensors(specs)
    return slots.tensors(specs)


class SlotBatch(dict[str, Any]):
    """A batch whose tensors sit in a worker's slot; pickles as a lease on that slot."""

    def __init__(self, batch: dict[str, Any], slot: Slot) -> None:
        super().__init__(batch)
        self.slot = slot

    def __copy__(self) -> dict[str, Any]:
        return dict(self)  # a lease only crosses to another process, never within one

    def __reduce__(self) -> tuple[Any, ...]:
        layout = self._layout()
        if layout is None:  # changed since collate: sent as tensors, the slot stays busy
            return dict, (dict(self),)
        rest = {k: (None if k in layout else v) for k, v in self.items()}
        return _rebuild, (self.slot.storage, layout, rest)

    def _layout(self) -> dict[str, tuple[int, tuple[int, ...], str]] | None:
        """Where each batch tensor lies in the slot; None if a view or a nested tensor does."""
        layout = {}
        for key, value in self.items():
            for t in value if isinstance(value, (list, tuple)) else [value]:
                if not isinstance(t, torch.Tensor) or not self._holds(t):
                    continue
                if t is not value or not t.is_contiguous():
                    return None
                offset = t.storage_offset() * t.element_size()
                layout[key] = (offset, tuple(t.shape), str(t.dtype).removeprefix("torch."))
        return layout

    def _holds(self, tensor: torch.Tensor) -> bool:
        return tensor.device.type == "cpu" and tensor.untyped_storage().data_ptr() == self.slot.ptr


class _Lease:
    """The main process's hold on a slot: every tensor of the batch keeps it alive."""

    def __init__(self, storage: torch.UntypedStorage) -> None:
        self._storage = storage  # keeps the mapping alive: the arrays hold only its address
        self.__array_interface__ = {
            "shape": (storage.nbytes(),),
            "typestr": "|u1",
            "data": (storage.data_ptr(), False),
            "version": 3,
        }


def _rebuild(
    storage: torch.UntypedStorage,
    layout: dict[str, tuple[int, tuple[int, ...], str]],
    rest: dict[str, Any],
) -> dict[str, Any]:
    """In the main process: the batch as a plain dict, its tensors leased from the slot."""
    lease = _Lease(storage)
    data = np.asarray(lease)
    batch = dict(rest)
    for key, (offset, shape, dtype) in layout.items():
        np_dtype = np.dtype(dtype)
        count = int(np.prod(shape)) * np_dtype.itemsize
        batch[key] = torch.from_numpy(data[offset : offset + count].view(np_dtype).reshape(shape))
    weakref.finalize(lease, _free, storage)  # holds the storage, not the lease
    return batch


def _free(storage: torch.UntypedStorage) -> None:
    storage[0] = FREE


def size(specs: Sequence[Spec]) -> int:
    """Bytes of a slot holding tensors of these shapes and dtypes (header included)."""
    return _offsets(specs)[-1] + _nbytes(specs[-1])


def _contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, step = [], 1
    for length in reversed(shape):
        strides.append(step)
        step *= length
    return tuple(reversed(strides))


def _itemsize(dtype: torch.dtype) -> int:
    return torch.empty(0, dtype=dtype).element_size()


def _nbytes(spec: Spec) -> int:
    shape, dtype = spec
    return int(np.prod(shape)) * _itemsize(dtype)


def _offsets(specs: Sequence[Spec]) -> list[int]:
    offsets, at = [], HEADER
    for spec in specs:
        offsets.append(at)
        at += -(-_nbytes(spec) // ALIGN) * ALIGN
    return offsets
