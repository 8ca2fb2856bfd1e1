"""An index's large columns in shared memory for DataLoader workers started by spawn.

Under ``fork`` a worker shares its parent's pages; under ``spawn`` (and ``forkserver``)
the dataset is pickled to each worker, which would hold its own copy of every column: at
10M chips ~200 MB a worker (``benchmarks/bench_workers.py``; 25 MB with this module). The
parent keeps one shared copy of each column beside its own while the index lives.
:func:`install` registers a reducer for :class:`~geochips.ChipIndex` with
multiprocessing's ``ForkingPickler`` only (plain ``pickle`` is untouched, so a saved pickle
needs no torch): the numeric columns of at least :data:`MIN_BYTES` travel as torch tensors,
which torch moves to shared memory once, and a worker maps them read-only instead of copying them.
"""

from __future__ import annotations

import weakref
from multiprocessing.reduction import ForkingPickler
from typing import Any

import numpy as np
import torch

from geochips.index import ChipIndex

MIN_BYTES = 1 << 20
"""Columns smaller than this are pickled as they are (a shared segment costs a file
descriptor)."""

_tensors: dict[int, tuple[weakref.ref[np.ndarray], torch.Tensor]] = {}
"""One tensor per column array, so that every worker maps the same shared segment."""


def _tensor(array: np.ndarray) -> torch.Tensor:
    key = id(array)
    held = _tensors.get(key)
    if held is not None and held[0]() is array:
        return held[1]
    tensor = torch.from_numpy(np.ascontiguousarray(array))

    def forget(_: object) -> None:
        _tensors.pop(key, None)

    _tensors[key] = (weakref.ref(array, forget), tensor)
    return tensor


def _reduce(index: ChipIndex) -> tuple[Any, ...]:
    state = index.__getstate__()
    columns = dict(state["_columns"])
    shared = {
        name: _tensor(values)
        for name, values in columns.items()
        if values.dtype.kind in "biuf" and values.nbytes >= MIN_BYTES
    }
    for name in shared:
        columns[name] = None  # kept in its place: the columns' order is the index's
    return _rebuild, ({**state, "_columns": columns}, shared)


def _rebuild(state: dict[str, Any], shared: dict[str, torch.Tensor]) -> ChipIndex:
    columns = dict(state["_columns"])
    for name, tensor in shared.items():
        values = tensor.numpy()  # a view of the shared segment; it keeps the tensor alive
        values.flags.writeable = False
        columns[name] = values
    index = ChipIndex.__new__(ChipIndex)
    index.__setstate__({**state, "_columns": columns})
    return index


def install() -> None:
    """Send indexes to spawned processes with their large columns in shared memory."""
    ForkingPickler.register(ChipIndex, _reduce)
