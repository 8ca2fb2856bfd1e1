"""Accumulators of stitched predictions, one per output tile, in bounded memory.

A tile's accumulator holds the running blend of every chip seen over it: ``value``
``(bands, h, w)`` and ``weight`` ``(h, w)`` (a sum of weights, a nearest-centre distance, or
a coverage flag, by blend), plus, for ``"center"``, the position of the chip each pixel came
from (ties go to the chip first in the index, whatever the order chips arrive in).

:class:`TileCache` keeps the most recently used accumulators in memory up to a byte budget
and spills the others to ``.npy`` files in a scratch folder beside the outputs: shuffled
chips over a scene of any size use at most the budget (plus one tile), and the page cache,
not the process, holds what was spilled.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

TileKey = tuple[int, int, int]
"""``(scene position, tile row, tile column)``."""


@dataclass
class Tile:
    """The accumulator of one output tile."""

    value: np.ndarray
    weight: np.ndarray
    source: np.ndarray
    """Per pixel, the position of the chip a ``"center"`` blend took it from (-1: none)."""

    @classmethod
    def empty(cls, bands: int, shape: tuple[int, int], blend: str) -> Tile:
        """A tile no chip has reached yet."""
        start = -np.inf if blend == "max" else 0.0
        weight = np.full(shape, np.inf if blend == "center" else 0.0, dtype=np.float32)
        source = np.full(shape if blend == "center" else (0, 0), -1, dtype=np.int64)
        return cls(np.full((bands, *shape), start, dtype=np.float32), weight, source)

    @property
    def nbytes(self) -> int:
        """Bytes held."""
        return self.value.nbytes + self.weight.nbytes + self.source.nbytes


class TileCache:
    """Tile accumulators in memory up to ``budget`` bytes; the rest on disk."""

    def __init__(self, budget: int, folder: str) -> None:
        self.budget = budget
        self._scratch = tempfile.mkdtemp(prefix=".geochips-stitch-", dir=folder)
        self._memory: OrderedDict[TileKey, Tile] = OrderedDict()
        self._spilled: set[TileKey] = set()
        self._bytes = 0
        self.spills = 0
        """Tiles written to disk so far (how often the budget was too small)."""

    def get(self, key: TileKey, make: tuple[int, tuple[int, int], str]) -> Tile:
        """The accumulator of ``key``: in memory, read back from disk, or new (``make``)."""
        tile = self._memory.get(key)
        if tile is not None:
            self._memory.move_to_end(key)
            return tile
        tile = self._unspill(key) if key in self._spilled else Tile.empty(*make)
        self._memory[key] = tile
        self._bytes += tile.nbytes
        self._shrink(keep=key)
        return tile

    def pop(self, key: TileKey) -> Tile | None:
        """Remove and return the accumulator of ``key`` (``None`` if never made)."""
        if key in self._memory:
            tile = self._memory.pop(key)
            self._bytes -= tile.nbytes
            return tile
        return self._unspill(key) if key in self._spilled else None

    def _unspill(self, key: TileKey) -> Tile:
        self._spilled.discard(key)
        with np.load(self._file(key)) as saved:
            tile = Tile(saved["value"], saved["weight"], saved["source"])
        os.remove(self._file(key))
        return tile

    def keys(self) -> list[TileKey]:
        """Every tile with an accumulator."""
        return [*self._memory, *self._spilled]

    def close(self) -> None:
        """Remove the scratch folder."""
        self._memory.clear()
        shutil.rmtree(self._scratch, ignore_errors=True)

    def _shrink(self, keep: TileKey) -> None:
        while self._bytes > self.budget and len(self._memory) > 1:
            key, tile = next(iter(self._memory.items()))
            if key == keep:
                self._memory.move_to_end(key)
                continue
            del self._memory[key]
            self._bytes -= tile.nbytes
            np.savez(self._file(key), value=tile.value, weight=tile.weight, source=tile.source)
            self._spilled.add(key)
            self.spills += 1

    def _file(self, key: TileKey) -> str:
        return os.path.join(self._scratch, "{}_{}_{}.npz".format(*key))
