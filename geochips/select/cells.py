"""Cells and units: the grouping machinery of the leakage proof (:mod:`~geochips.select.proof`).

A **unit** is the chips of one window in scenes of one grid (they share one footprint);
a **cell** is a square of a plane as large as the largest unit plus the reach of
``buffer``, so units that can meet lie in the same or neighbouring cells. A cell whose
neighbourhood holds units of one label only cannot hold a leak.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WINDOW = ("row_off", "col_off", "height", "width")

FORWARD = ((0, 0), (0, 1), (1, -1), (1, 0), (1, 1))
"""Cell offsets that reach each neighbouring pair of cells once."""


@dataclass
class Units:
    """Chips grouped by scene grid (``twin``) and window: what shares one footprint."""

    order: np.ndarray
    """Chip rows, unit by unit."""
    starts: np.ndarray
    """Where each unit's rows start in ``order`` (one more entry: the end)."""
    low: np.ndarray
    high: np.ndarray
    """Smallest and largest label of each unit's chips."""

    @property
    def first(self) -> np.ndarray:
        """A chip row of each unit (its first)."""
        return np.asarray(self.order[self.starts[:-1]])

    def may_differ(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Whether unit pairs ``(u, v)`` can hold chips of two labels (not all of one)."""
        low, high = self.low, self.high
        return np.asarray(~((low[u] == high[u]) & (high[u] == low[v]) & (low[v] == high[v])))

    def __len__(self) -> int:
        return len(self.starts) - 1


def group_units(twin: np.ndarray, columns: dict[str, np.ndarray], label: np.ndarray) -> Units:
    """Group chips by ``(twin, window)`` with one sort (an int64 key when it fits)."""
    keys = [twin, *(np.asarray(columns[k]).astype(np.int64) for k in WINDOW)]
    spans = [int(k.max(initial=0)) + 1 for k in keys]
    if float(np.prod(np.array(spans, dtype=np.float64))) < 2.0**62:
        packed = np.zeros(len(twin), dtype=np.int64)
        for k, span in zip(keys, spans, strict=True):
            packed = packed * span + k
        order = np.argsort(packed, kind="stable")
        ordered = packed[order]
        new = np.r_[True, ordered[1:] != ordered[:-1]] if len(order) else np.zeros(0, bool)
    else:
        order = np.lexsort(keys[::-1])
        stacked = np.stack([k[order] for k in keys], axis=1)
        new = np.r_[True, (stacked[1:] != stacked[:-1]).any(axis=1)] if len(order) else new
    starts = np.r_[np.flatnonzero(new), len(order)]
    ordered_label = label[order]
    cuts = starts[:-1]
    low = np.minimum.reduceat(ordered_label, cuts) if len(cuts) else ordered_label[:0]
    high = np.maximum.reduceat(ordered_label, cuts) if len(cuts) else ordered_label[:0]
    return Units(order, starts, low, high)


def suspects(
    plane: np.ndarray, box: np.ndarray, side: np.ndarray, low: np.ndarray, high: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:
    """The units in a cell whose neighbourhood holds two labels (the rest cannot leak).

    ``box`` is each unit's bounding rectangle in its ``plane``, ``side`` the cell of each
    plane, ``low``/``high`` each unit's labels. Returns the suspects sorted by cell, their
    packed cell keys and the key's row span (a neighbour is ``key + dx * span + dy``).
    """
    if not len(plane):
        return np.zeros(0, np.int64), np.zeros(0, np.int64), 1
    lo_x = np.full(int(plane.max()) + 1, np.inf)
    lo_y = np.full(int(plane.max()) + 1, np.inf)
    np.minimum.at(lo_x, plane, box[:, 0])
    np.minimum.at(lo_y, plane, box[:, 1])
    ix = np.floor((box[:, 0] - lo_x[plane]) / side[plane]).astype(np.int64) + 1
    iy = np.floor((box[:, 1] - lo_y[plane]) / side[plane]).astype(np.int64) + 1
    span = int(max(ix.max(), iy.max())) + 2
    cell = (plane * span + ix) * span + iy
    order = np.argsort(cell, kind="stable")
    cell_sorted = cell[order]
    cuts = np.flatnonzero(np.r_[True, cell_sorted[1:] != cell_sorted[:-1]])
    keys = cell_sorted[cuts]
    low = np.minimum.reduceat(low[order], cuts)
    high = np.maximum.reduceat(high[order], cuts)
    n_low, n_high = low.copy(), high.copy()
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            at = np.searchsorted(keys, keys + dx * span + dy)
            at = np.minimum(at, len(keys) - 1)
            hit = keys[at] == keys + dx * span + dy
            n_low[hit] = np.minimum(n_low[hit], low[at[hit]])
            n_high[hit] = np.maximum(n_high[hit], high[at[hit]])
    mixed_cell = n_low != n_high
    of_unit = np.repeat(np.arange(len(keys)), np.diff(np.r_[cuts, len(order)]))
    keep = mixed_cell[of_unit]
    return order[keep], cell_sorted[keep], span


def neighbour_pairs(cell: np.ndarray, span: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``(p, q)`` of sorted ``cell`` keys in the same or neighbouring cells, once."""
    ps, qs = [], []
    n = np.arange(len(cell))
    for dx, dy in FORWARD:
        target = cell + dx * span + dy
        start = np.searchsorted(cell, target, side="left")
        stop = np.searchsorted(cell, target, side="right")
        if (dx, dy) == (0, 0):
            start = n + 1
        count = np.maximum(stop - start, 0)
        p = np.repeat(n, count)
        q = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
        ps.append(p)
        qs.append(np.repeat(start, count) + q)
    return np.concatenate(ps), np.concatenate(qs)


def expand(
    units: Units, label: np.ndarray, u: np.ndarray, v: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The chip pairs ``(a, b)`` of two labels behind unit pairs ``(u, v)``.

    Also returns the unit pair each came from and how many chip pairs were looked at.
    """
    size = np.diff(units.starts)
    count = size[u] * size[v]
    pair = np.repeat(np.arange(len(u)), count)
    k = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
    a = units.order[units.starts[u[pair]] + k // size[v[pair]]]
    b = units.order[units.starts[v[pair]] + k % size[v[pair]]]
    keep = label[a] != label[b]
    return a[keep], b[keep], pair[keep], int(count.sum())
