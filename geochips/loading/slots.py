"""Batch memory a DataLoader worker reuses, instead of fresh shared memory for every batch.

A worker's batch reaches the main process through shared memory. Fresh shared memory is
dear: the kernel allocates, zeroes and maps every page, and frees them once the main
process is done. On our 2-core machine that took ~0.4 ms a chip of 512x512 uint16 with its
mask, more in int32: a worker read at 0.71x the raw rasterio loop, against 0.90x in plain
memory (benchmarks/RESULTS.md). So each worker keeps a few batch *slots* (shared memory,
pages mapped once) and writes a new batch into a slot nothing else can still see.

**Only a lease carries a slot to another process.** A slot is a ``memfd`` of our own
(:mod:`geochips.loading._shm`), not torch shared memory. In a worker, :func:`geochips.collate`
returns a :class:`SlotBatch` (a dict); torch's pickler, which sends the batch to the main
process, pickles it as a *lease*: the slot's fd, and the batch pickled with every tensor
that lies in the slot — wherever it sits: nested dicts, lists, dataclasses, any picklable
object, views and crops included — described by its place in the slot. The main process
maps the fd once and rebuilds those tensors on one storage whose memory the lease holds;
views, NumPy arrays and tensors made from them hold it too (a copy, such as ``.to("cuda")``
or ``pin_memory``, does not). When the last of them goes, the lease adds one to the slot's
count of freed leases (its header).

Any other way out copies. A slot tensor that torch pickles itself (a collate_fn that
returns ``batch["image"]``, a tuple, a slice of the batch, anything outside the SlotBatch)
is not in shared memory as far as torch knows, so torch moves it into fresh shared memory
first, as it does for every unshared tensor. That copy is the memory the main process
gets; the slot itself never leaves the worker that way.

A worker reuses a slot when (1) every lease it sent for it has been freed (the header
count equals the leases sent: a batch sent twice needs two frees) and (2) nothing in the
worker still holds its tensors: each batch's tensors share one storage built on a fresh
NumPy view of the mapping, which the worker watches with a weak reference. So a collate_fn
may keep tensors across batches, and torch's ``default_collate`` (which stacks into memory
of its own) lets the slot be reused at once. The count is written by the main process
alone (under a lock: leases die in any thread) and only read by the worker; a lost update
could only make a slot look busy, never free.

``pin_memory=True`` copies the tensors torch knows how to pin (in dicts, lists, tuples):
their lease goes with the originals; those it passes by untouched keep holding theirs.
One limit is torch's, for any tensor it moves: a NumPy array a worker made of a slot
tensor *before* torch moved that tensor still points into the slot.

Why not torch's own shared memory: the main process would then rebuild every tensor of the
slot torch pickles (not only the lease's) on torch's storage, whose end no Python object
can watch; the previous design freed the slot when the lease's tensors were gone while a
nested tensor still showed the memory (kept chips overwritten). It also needed torch's
internal ``_storage_Use_Count``; nothing here is private to torch. Opt out with
``GEOCHIPS_REUSE_BATCH_MEMORY=0`` (plain memory, copied by torch as before slots); without
``memfd`` or fd passing (not Linux), workers get plain memory as well.
"""

from __future__ import annotations

import io
import os
import pickle
import threading
import weakref
from collections.abc import Sequence
from multiprocessing.reduction import ForkingPickler
from typing import Any, TypeAlias

import numpy as np
import torch
from torch.utils.data import get_worker_info

from geochips.loading import _shm

Spec: TypeAlias = tuple[tuple[int, ...], torch.dtype]
"""A tensor of a batch: its shape and dtype."""

Place: TypeAlias = tuple[int, int, tuple[int, ...], tuple[int, ...], torch.dtype, bool]
"""Where a leased tensor lies: key, offset (in elements), shape, strides, dtype, grad."""

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


class SlotBatch(dict[str, Any]):
    """A batch whose tensors sit in a worker's slot; torch's pickler sends it as a lease."""

    def __init__(self, batch: dict[str, Any], slot: Slot) -> None:
        super().__init__(batch)
        self.slot = slot

    def __copy__(self) -> dict[str, Any]:
        return dict(self)  # a lease only crosses to another process, never within one

    def __reduce__(self) -> tuple[Any, ...]:
        # Plain pickle, copy.deepcopy: tensors by value. Only ForkingPickler (torch's
        # queues) sends a lease, through the reducer registered below.
        return dict, (dict(self),)


def _lend(batch: SlotBatch) -> tuple[Any, ...]:
    """Pickle ``batch`` as a lease on its slot (ForkingPickler's reducer for SlotBatch)."""
    slot = batch.slot
    slot.lend()  # first: once counted, the slot waits for the borrower, whatever follows
    payload = io.BytesIO()
    _Lender(payload, slot).dump(dict(batch))
    return _borrow, (slot.memory.lend(), slot.nbytes, payload.getvalue())


ForkingPickler.register(SlotBatch, _lend)


class _Lender(ForkingPickler):
    """Pickles a batch, each tensor lying in the slot replaced by its place there."""

    def __init__(self, file: io.BytesIO, slot: Slot) -> None:
        super().__init__(file, pickle.HIGHEST_PROTOCOL)
        self._slot = slot
        self._places: dict[int, Place] = {}
        self._seen: list[torch.Tensor] = []  # keeps ids unique while pickling

    def persistent_id(self, obj: Any) -> Place | None:
        if type(obj) is not torch.Tensor:  # subclasses (Parameter) go to torch: a copy
            return None
        known = self._places.get(id(obj))
        if known is not None:
            return known
        where = self._slot.place(obj)
        if where is None or obj.is_conj() or obj.is_neg():
            return None  # not in the slot (or moved out of it): torch pickles it
        if obj.requires_grad and not obj.is_leaf:
            return None  # torch refuses these, with its own message
        place = (
            len(self._seen),
            where[0],
            tuple(obj.shape),
            obj.stride(),
            obj.dtype,
            obj.requires_grad,
        )
        self._places[id(obj)] = place
        self._seen.append(obj)
        return place


class _Borrower(pickle.Unpickler):
    """Unpickles a lease's batch, its slot tensors rebuilt on the borrowed storage."""

    def __init__(self, file: io.BytesIO, storage: torch.UntypedStorage) -> None:
        super().__init__(file)
        self._storage = storage
        self._made: dict[int, torch.Tensor] = {}

    def persistent_load(self, pid: Any) -> torch.Tensor:
        key, offset, shape, stride, dtype, grad = pid
        tensor = self._made.get(key)
        if tensor is None:
            tensor = torch.empty(0, dtype=dtype).set_(self._storage, offset, shape, stride)
            self._made[key] = tensor.requires_grad_(grad)
        return tensor


_free_lock = threading.Lock()


def _borrow(handle: Any, nbytes: int, payload: bytes) -> dict[str, Any]:
    """In the main process: the batch as a plain dict, its slot tensors on the lease."""
    mapping = _shm.borrow(handle, nbytes)
    lease = np.frombuffer(mapping, np.uint8)  # every leased tensor holds it, via the storage
    weakref.finalize(lease, _free, mapping, os.getpid())  # holds the mapping, not the lease
    batch: dict[str, Any] = _Borrower(
        io.BytesIO(payload), torch.from_numpy(lease).untyped_storage()
    ).load()
    return batch


def _free(mapping: Any, borrower: int) -> None:
    if os.getpid() != borrower:
        return  # a forked child's copy of the batch: the borrower still holds the original
    with _free_lock:
        freed = np.frombuffer(mapping, np.uint32, count=1)
        freed += 1  # wraps at 2**32, as the worker's count of leases sent does


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
