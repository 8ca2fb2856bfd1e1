"""A batch in a worker's slot, sent to the main process as a lease on the slot.

**Only a lease carries a slot to another process.** In a worker, :func:`geochips.collate`
returns a :class:`SlotBatch` (a dict) for a batch in a slot (:mod:`geochips.loading.slots`);
torch's pickler, which sends the batch to the main process, pickles it as a *lease*: the
slot's fd, and the batch pickled with every tensor that lies in the slot — wherever it
sits: nested dicts, lists, dataclasses, any picklable object, views and crops included —
described by its place in the slot. The main process maps the fd once and rebuilds those
tensors on one storage whose memory the lease holds; views, NumPy arrays and tensors made
from them hold it too (a copy, such as ``.to("cuda")`` or ``pin_memory``, does not). When
the last of them goes, the lease adds one to the slot's count of freed leases (its header).

Any other way out copies. A slot tensor that torch pickles itself (a collate_fn that
returns ``batch["image"]``, a tuple, a slice of the batch, anything outside the SlotBatch)
is not in shared memory as far as torch knows, so torch moves it into fresh shared memory
first, as it does for every unshared tensor. That copy is the memory the main process
gets; the slot itself never leaves the worker that way.

``pin_memory=True`` copies the tensors torch knows how to pin (in dicts, lists, tuples):
their lease goes with the originals; those it passes by untouched keep holding theirs.
One limit is torch's, for any tensor it moves: a NumPy array a worker made of a slot
tensor *before* torch moved that tensor still points into the slot.

Why not torch's own shared memory: the main process would then rebuild every tensor of the
slot torch pickles (not only the lease's) on torch's storage, whose end no Python object
can watch; the previous design freed the slot when the lease's tensors were gone while a
nested tensor still showed the memory (kept chips overwritten). It also needed torch's
internal ``_storage_Use_Count``; nothing here is private to torch.
"""

from __future__ import annotations

import io
import os
import pickle
import threading
import weakref
from multiprocessing.reduction import ForkingPickler
from typing import Any, TypeAlias

import numpy as np
import torch

from geochips.loading import _shm
from geochips.loading.slots import Slot

Place: TypeAlias = tuple[int, int, tuple[int, ...], tuple[int, ...], torch.dtype, bool]
"""Where a leased tensor lies: key, offset (in elements), shape, strides, dtype, grad."""


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
