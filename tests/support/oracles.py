"""Oracles shared by tests: what a chip of a whole-scene array must be."""

from __future__ import annotations

import numpy as np


def cut(full: np.ndarray, window, fill: int = 255) -> np.ndarray:
    """``window`` of the whole-scene array ``full``, the part outside it set to ``fill``."""
    out = np.full((window.height, window.width), fill, dtype=np.int64)
    r0, c0 = max(window.row_off, 0), max(window.col_off, 0)
    r1 = min(window.row_off + window.height, full.shape[0])
    c1 = min(window.col_off + window.width, full.shape[1])
    out[r0 - window.row_off : r1 - window.row_off, c0 - window.col_off : c1 - window.col_off] = (
        full[r0:r1, c0:c1]
    )
    return out


def assert_same_index(a, b) -> None:
    """``a`` and ``b`` are the same index: scenes, chip ids, every column (dtype, shape, values)."""
    assert a.scenes == b.scenes
    assert a.chip_ids == b.chip_ids
    assert a.column_names == b.column_names
    for name in a.column_names:
        x, y = a.column(name), b.column(name)
        assert x.dtype == y.dtype and x.shape == y.shape, name
        assert x.tolist() == y.tolist(), name
    assert (a.size, a.stride, a.edge) == (b.size, b.stride, b.edge)
