"""Chip ids, and finding a chip by its id without a Python object per chip.

A chip id is ``"<scene id>/<level>/<row_off>/<col_off>/<height>x<width>"`` (level ``full``
or ``ov<k>``): it names the scene, the grid and the window, so it survives selection,
splitting, re-ordering and a save/load. :class:`IdLookup` parses an id back into its
scene and window and finds the chip by binary search over one sorted key per chip (16
bytes a chip, where a dict of id strings costs ~150 and a list of them per process).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from geochips.scene import Scene
from geochips.summary import level_name
from geochips.windows import WINDOW_COLUMNS

_ROW_BITS = 21  # rows and columns below 2,097,152 pixels; scenes below 2**21 positions
_LIMIT = 1 << _ROW_BITS


def scene_prefixes(scenes: Sequence[Scene]) -> list[str]:
    """``"<scene id>/<level>"`` of each scene: what its chips' ids start with."""
    return [f"{s.id}/{level_name(s.overview_level)}" for s in scenes]


class IdLookup:
    """Positions of chips by id, over the window columns of an index.

    Args:
        scenes: the index's scenes.
        columns: its ``scene``, ``row_off``, ``col_off``, ``height`` and ``width`` columns.
    """

    def __init__(self, scenes: Sequence[Scene], columns: Mapping[str, np.ndarray]) -> None:
        self._scenes = {prefix: s for s, prefix in enumerate(scene_prefixes(scenes))}
        self._columns = columns
        key = self._keys(columns["scene"], columns["row_off"], columns["col_off"])
        self._order = np.argsort(key, kind="stable")
        self._sorted = key[self._order]

    @staticmethod
    def _keys(scene: np.ndarray, row: np.ndarray, col: np.ndarray) -> np.ndarray:
        """One int64 per chip, ordered by scene, row, column (each field in 21 bits)."""
        parts = [np.asarray(v, dtype=np.int64) for v in (scene, row, col)]
        if any(len(p) and (p.min() < 0 or p.max() >= _LIMIT) for p in parts):
            raise OverflowError("a scene position or offset does not fit the id key")
        return (parts[0] << (2 * _ROW_BITS)) | (parts[1] << _ROW_BITS) | parts[2]

    def find(self, chip_id: str) -> int | None:
        """The position of ``chip_id`` (the last, if the index holds it twice), or ``None``."""
        fields = chip_id.rsplit("/", 3)
        if len(fields) != 4:
            return None
        prefix, row, col, size = fields
        height, _, width = size.partition("x")
        scene = self._scenes.get(prefix)
        numbers = (row, col, height, width)
        if scene is None or not all(n.isdigit() and str(int(n)) == n for n in numbers):
            return None  # not an id this index writes ("07" is not "7")
        r, c, h, w = (int(n) for n in numbers)
        if max(r, c) >= _LIMIT:
            return None
        key = (scene << (2 * _ROW_BITS)) | (r << _ROW_BITS) | c
        first = int(np.searchsorted(self._sorted, key, side="left"))
        last = int(np.searchsorted(self._sorted, key, side="right"))
        heights, widths = self._columns["height"], self._columns["width"]
        for k in range(last - 1, first - 1, -1):  # chips of one window differ only in size
            position = int(self._order[k])
            if heights[position] == h and widths[position] == w:
                return position
        return None


class ChipIds:
    """The ids of a table's chips: one by position, all of them on first use, a position by id.

    The id list (a string per chip) and the lookup are made on first use (the index does
    not pickle them: a DataLoader worker makes its own only if it needs them).
    """

    def __init__(self, scenes: Sequence[Scene], columns: Mapping[str, np.ndarray]) -> None:
        self._scenes = scenes
        self._columns = columns
        self.listed: list[str] | None = None
        self._lookup: IdLookup | dict[str, int] | None = None

    def all(self) -> list[str]:
        """Every id, in table order."""
        if self.listed is None:
            names = scene_prefixes(self._scenes)
            c = self._columns
            rows = zip(*(c[k].tolist() for k in WINDOW_COLUMNS), strict=True)
            self.listed = [f"{names[s]}/{r}/{col}/{h}x{w}" for s, r, col, h, w in rows]
        return self.listed

    def one(self, position: int) -> str:
        """The id of the chip at ``position``, without making the others."""
        if self.listed is not None:
            return self.listed[position]
        scene = self._scenes[int(self._columns["scene"][position])]
        r, c, h, w = (int(self._columns[k][position]) for k in WINDOW_COLUMNS[1:])
        return f"{scene.id}/{level_name(scene.overview_level)}/{r}/{c}/{h}x{w}"

    def find(self, chip_id: str) -> int | None:
        """The position of ``chip_id`` (the last, if the table holds it twice), or ``None``."""
        if self._lookup is None:
            try:
                self._lookup = IdLookup(self._scenes, self._columns)
            except OverflowError:  # offsets past 2**21 px: the ids themselves, in a dict
                self._lookup = {cid: i for i, cid in enumerate(self.all())}
        if isinstance(self._lookup, dict):
            return self._lookup.get(chip_id)
        return self._lookup.find(chip_id)
