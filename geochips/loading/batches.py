"""ChipDataset's batch path (``__getitems__``): a batch read into one tensor per key.

When the keys of a batch are positions whose chips share one shape, band count and output
dtype, and no transform changes the samples, each chip is converted straight into its row
of one tensor per stacked key (``image``, and ``valid`` / ``mask`` when samples hold them),
in a DataLoader worker's reused slot (:mod:`geochips.loading.slots`). :func:`geochips.collate`
then returns those tensors without stacking: the copy saved is 16 MB for 16 int32 512x512
chips, ~0.3 ms a chip (benchmarks/RESULTS.md). Other batches (chip ids, a transform) are
read sample by sample. Either way several threads read the chips (GDAL releases the GIL)
when reads cost enough for threads to pay: 8 for remote scenes, one inside DataLoader
workers (the workers use the cores), and in the main process one or all cores, whichever
the batches so far read faster (:mod:`geochips.loading.threadrule`): threads where chips
decode, one thread where they are copies out of GDAL's block cache or of uncompressed files.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from torch.utils.data import get_worker_info

from geochips import hrefs
from geochips.index import ChipIndex
from geochips.io.reader import Reader
from geochips.io.settings import reads_network
from geochips.loading import slots
from geochips.loading.collate import BatchSamples
from geochips.loading.dtypes import TORCH
from geochips.loading.threadrule import ThreadRule

ReadInto = Callable[[int, dict[str, torch.Tensor]], Any]
"""Reads the sample at a position into its rows of the batch tensors (by stacked key)."""


class Batches:
    """The batches of one dataset: which stack, the tensors they are read into, the threads.

    Args:
        index: the dataset's chips.
        reader: the dataset's reader (its GDAL options are set in every reading thread).
        bands: the bands read (``None``: every band of each scene).
        out_dtypes: each scene's output dtype.
        valid: whether samples hold a ``valid`` mask.
        mask: the dtype of the samples' ``mask`` (labels), if they hold one.
    """

    def __init__(
        self,
        index: ChipIndex,
        reader: Reader,
        bands: list[int] | None,
        out_dtypes: Sequence[np.dtype[Any]],
        *,
        valid: bool,
        mask: str | None,
    ) -> None:
        self.index = index
        self.reader = reader
        self._bands = bands
        self._out_dtypes = out_dtypes
        self._valid = valid
        self._mask = mask
        self.remote = any(hrefs.is_remote(h) for s in index.scenes for h in s.hrefs)
        self.network = reads_network(h for s in index.scenes for h in s.hrefs)
        """Whether the scenes' reads need the network options (all but local GeoTIFFs)."""
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid: int | None = None
        self.rule: ThreadRule | None = None
        """What local batches cost with one thread and with all cores (made on first use)."""

    def read(
        self,
        keys: Sequence[int | str],
        one: Callable[[int | str], Any],
        into: ReadInto | None,
        threads: int | None,
        *,
        reuse: bool,
    ) -> list[Any]:
        """The samples of ``keys``: ``into`` batch tensors when they stack, else ``one`` by one.

        ``into`` is ``None`` when samples are not to be stacked (a transform may change
        them); ``reuse`` reads into a worker's slots (else plain memory). ``threads``
        (``None``: :meth:`threads` chooses, and the batch's time is counted for the choice).
        """
        chosen = self.threads(threads)
        started = time.perf_counter()
        positions = None if into is None else self.positions(keys)
        if into is None or positions is None:  # a transform or chip ids: sample by sample
            out = self.map(one, list(keys), chosen)
        else:
            tensors = self.tensors(positions, reuse)
            rows = {key: list(tensor) for key, tensor in tensors.items()}
            todo = [(p, {k: r[i] for k, r in rows.items()}) for i, p in enumerate(positions)]
            samples = self.map(lambda job: into(*job), todo, chosen)
            out = BatchSamples(samples, {k: (tensors[k], rows[k]) for k in tensors})
        if threads is None and self.rule is not None and len(keys) > 1:
            self.rule.record(chosen, time.perf_counter() - started, len(keys))
        return out

    def map(self, read: Callable[[Any], Any], todo: list[Any], threads: int) -> list[Any]:
        """``read`` each of ``todo``, in ``threads`` threads of this process's pool."""
        if threads <= 1 or len(todo) <= 1:
            with self.reader.scope(self.network):  # GDAL options set once, then undone
                return [read(k) for k in todo]
        return list(self.executor(threads).map(read, todo))

    def positions(self, keys: Sequence[int | str]) -> list[int] | None:
        """Positions of a batch whose samples all have one shape and dtype, else None."""
        if not keys:
            return None
        positions = []
        for key in keys:
            if not isinstance(key, (int, np.integer)) or isinstance(key, bool):
                return None
            n = len(self.index)
            if not -n <= int(key) < n:
                raise IndexError(f"chip position {key} is out of range for {n} chips")
            positions.append(int(key) % n)
        c = self.index.column
        scenes = c("scene")[positions]
        same = (
            len(np.unique(c("height")[positions])) == 1
            and len(np.unique(c("width")[positions])) == 1
        )
        kinds = {(self._out_dtypes[s], self._band_count(s)) for s in np.unique(scenes).tolist()}
        return positions if same and len(kinds) == 1 else None

    def _band_count(self, scene_pos: int) -> int:
        return len(self._bands) if self._bands is not None else self.index.scenes[scene_pos].count

    def tensors(self, positions: list[int], reuse: bool) -> dict[str, torch.Tensor]:
        """One tensor per stacked key, to read the batch into (in a slot, in workers)."""
        scene_pos, window = self.index.locate(positions[0])
        shape = (len(positions), self._band_count(scene_pos), window.height, window.width)
        one = (shape[0], 1, *shape[2:])
        specs = {"image": (shape, TORCH[self._out_dtypes[scene_pos].name])}
        if self._valid:
            specs["valid"] = (one, torch.bool)
        if self._mask is not None:
            specs["mask"] = (one, TORCH[self._mask])
        tensors = slots.empty(list(specs.values()), reuse=reuse)
        return dict(zip(specs, tensors, strict=True))

    def threads(self, threads: int | None) -> int:
        """Threads reading a batch: ``threads`` when given, else picked for the scenes.

        8 for remote scenes; for local ones 1 inside DataLoader workers (the workers already
        use the cores) and in the main process one thread or the CPU count, whichever has
        read this dataset's batches faster (:class:`~geochips.loading.threadrule.ThreadRule`).
        """
        if threads is not None:
            return threads
        if self.remote:
            return 8
        if get_worker_info() is not None:
            return 1
        if self.rule is None:
            self.rule = ThreadRule(os.cpu_count() or 1)
        return self.rule.pick()

    def executor(self, threads: int) -> ThreadPoolExecutor:
        """This process's pool of reading threads (made on first use in each process)."""
        if self._pool is None or self._pool_pid != os.getpid():
            self._pool = ThreadPoolExecutor(
                max_workers=threads,
                thread_name_prefix="geochips",
                initializer=self.reader.own_thread,
            )
            self._pool_pid = os.getpid()
        return self._pool

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_pool"] = None  # threads do not cross processes
        state["_pool_pid"] = None
        return state
