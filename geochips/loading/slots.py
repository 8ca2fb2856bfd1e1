"""Batch memory a DataLoader worker reuses, instead of fresh shared memory for every batch.

A worker's batch reaches the main process through shared memory. Fresh shared memory is
dear: the kernel allocates, zeroes and maps every page, and frees them once the main
process is done. On our 2-core machine that took ~0.4 ms a chip of 512x512 uint16 with its
mask, more in int32: a worker read at 0.71x the raw rasterio loop, against 0.90x in plain
memory (benchmarks/RESULTS.md). So each worker keeps a few batch *slots* (shared memory,
pages mapped once) and writes a new batch into a slot nothing else can still see. A slot
is a ``memfd`` of our own (:mod:`geochips.loading._shm`), not torch shared memory, and only
a lease carries it to another process (:mod:`geochips.loading.leases`).

A worker reuses a slot when (1) every lease it sent for it has been freed (the header
count equals the leases sent: a batch sent twice needs two frees) and (2) nothing in the
worker still holds its tensors: each batch's tensors share one storage built on a fresh
NumPy view of the mapping, which the worker watches with a weak reference. So a collate_fn
may keep tensors across batches, and torch's ``default_collate`` (which stacks into memory
of its own) lets the slot be reused at once. The count is written by the main process
alone (under a lock: leases die in any thread) and only read by the worker; a lost update
could only make a slot look busy, never free.

Opt out with ``GEOCHIPS_REUSE_BATCH_MEMORY=0`` (plain memory, copied by torch as before
slots); without ``memfd`` or fd passing (not Linux), workers get plain memory as well.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Sequence
from typing import Any, TypeAlias

import numpy as np
import torch
from torch.utils.data import get_worker_info

from geochips.loading import _shm

Spec: TypeAlias = tuple[tuple[int, ...], torch.dtype]
"""A tensor of a batch: its shape and dtype."""

MAX_SLOTS = 6
"""Slots a worker keeps: the batches in flight (``prefetch_factor``, 2 by default), the one
the main process uses, the one being read, and spare."""

IDLE = 4 * MAX_SLOTS
"""Batches a free slot may stay unused before its memory goes back to the OS: a burst of
batches held at once does not pin that memory for the worker's life, and the slots a steady
run needs (more at an epoch's start, when every batch is prefetched at once) are not given
back only to be made again."""

HEADER = 64  # bytes before the first tensor: a uint32 count of the leases freed
ALIGN = 64
_COUNT = 2**32


class Slot:
    """One shared-memory buffer holding a batch's tensors (worker side)."""

    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes
        self.memory = _shm.Memory(nbytes)
        self._freed = np.frombuffer(self.memory.map, np.uint32, count=1)
        self.ptr: int = self._freed.__array_interface__["data"][0]
        self.sent = 0
        """Leases sent for this slot (mod 2**32), as the header counts those freed."""
        self._held: weakref.ref[np.ndarray[Any, Any]] | None = None
        self.used = 0
        """The pool's batch count when this slot was last handed out."""

    def reusable(self) -> bool:
        """Whether every lease sent came back and this process holds no tensor of the slot."""
        held = self._held is not None and self._held() is not None
        return not held and int(self._freed[0]) == self.sent

    def tensors(self, specs: Sequence[Spec]) -> list[torch.Tensor]:
        """Views of the slot with the given shapes and dtypes, on one storage."""
        hold = np.frombuffer(self.memory.map, np.uint8)  # lives as long as any of the views
        self._held = weakref.ref(hold)
        storage = torch.from_numpy(hold).untyped_storage()
        # Tensors of their own, as torch.empty gives, each on the slot's one storage.
        return [
            torch.empty(0, dtype=dtype).set_(
                storage, offset // _itemsize(dtype), shape, _contiguous_strides(shape)
            )
            for (shape, dtype), offset in zip(specs, _offsets(specs), strict=True)
        ]

    def place(self, tensor: torch.Tensor) -> tuple[int, int] | None:
        """``(offset in elements, itemsize)`` of a tensor lying in the slot, else None."""
        if tensor.device.type != "cpu" or tensor.layout != torch.strided:
            return None
        itemsize = tensor.element_size()
        offset = tensor.data_ptr() - self.ptr
        if offset < HEADER or offset % itemsize:
            return None
        last = sum((n - 1) * s for n, s in zip(tensor.shape, tensor.stride(), strict=True))
        if offset + (last + 1 if tensor.numel() else 0) * itemsize > self.nbytes:
            return None
        return offset // itemsize, itemsize

    def lend(self) -> None:
        """Count one more lease out: the slot is busy until the borrower frees it."""
        self.sent = (self.sent + 1) % _COUNT


class Pool:
    """The slots of one worker process, reused once nothing can see them."""

    def __init__(self) -> None:
        self.slots: list[Slot] = []
        self.allocated = 0
        """Slots created (fresh shared memory) in this process: reuse keeps it small."""
        self.batches = 0
        """Batches asked for in this process."""

    def tensors(self, specs: Sequence[Spec]) -> list[torch.Tensor]:
        """Return uninitialised tensors for one batch, in a reused slot when one is free."""
        self.batches += 1
        nbytes = size(specs)
        free = [s for s in self.slots if s.reusable()]
        # The most recently used free slot: the fewest slots stay in use, the rest go idle.
        slot = next((s for s in reversed(free) if s.nbytes == nbytes), None)
        for spare in free:
            if spare is not slot and self.batches - spare.used > IDLE:
                self.slots.remove(spare)
        if slot is None:
            slot = Slot(nbytes)
            self.allocated += 1
            self.slots.append(slot)
            if len(self.slots) > MAX_SLOTS:
                # Forget the oldest: free ones are dropped, busy ones are left to whoever
                # still holds them (their memory goes when the last mapping does).
                self.slots.pop(0)
        else:
            self.slots.remove(slot)  # most recently used last
            self.slots.append(slot)
        slot.used = self.batches
        return slot.tensors(specs)

    def find(self, tensor: torch.Tensor) -> Slot | None:
        """The slot ``tensor`` lies in, if any."""
        return next((s for s in self.slots if s.place(tensor) is not None), None)


_pool: Pool | None = None
_pool_pid: int | None = None


def pool() -> Pool | None:
    """This worker's pool; ``None`` outside DataLoader workers or when reuse is off."""
    global _pool, _pool_pid
    if get_worker_info() is None:
        return None
    if _pool_pid != os.getpid():  # decided once per worker process
        _pool, _pool_pid = (Pool() if _shm.available() else None), os.getpid()
    return _pool


def empty(specs: Sequence[Spec], *, reuse: bool = True) -> list[torch.Tensor]:
    """Uninitialised tensors for one batch: in a reused slot inside a DataLoader worker."""
    slots = pool() if reuse else None
    if slots is None:
        return [torch.empty(shape, dtype=dtype) for shape, dtype in specs]
    return slots.tensors(specs)


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
