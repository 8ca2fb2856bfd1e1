"""Blocks of ground for :func:`~geochips.select.splits.spatial_split`: cut, dealt, settled.

A **block** is a square of ground in the frame (or of pixels, for scenes without a CRS).
:func:`chip_blocks` finds the blocks each chip touches and the one under its centre,
:func:`best_order` and :func:`deal` hand blocks to the splits by chip count, and
:func:`resolve` gives each chip a split (or none) so that no two conflicting chips end up
in different splits (the pairs of :func:`conflict_graph`). :func:`revisits` groups the
chips that are dealt as one (one window of one grid).
"""

from __future__ import annotations

import numpy as np
import shapely

from geochips.errors import InvalidParameterError
from geochips.scene import Scene
from geochips.select.ground import Ground

ORDERS = 32
"""Seeded shuffles of the blocks tried at most by :func:`spatial_split`."""


ORDER_FIT = 0.02
"""A shuffle whose deal (by chips centred in each block) is this close to every fraction
is taken at once."""


def chip_blocks(
    ground: Ground, block: float, pixel_block: float, buffer: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(chip, block_id)`` memberships and each chip's centre block id.

    A chip belongs to every block its footprint's bounding box (grown by ``buffer / 2``)
    overlaps with positive area; a chip crossing the frame's antimeridian seam belongs to
    blocks on both sides.
    """
    c = ground.columns
    n = len(c["scene"])
    parts, owner = shapely.get_parts(ground.polygons, return_index=True)
    bounds = shapely.bounds(parts)
    geo = ground.georef[owner]
    size = np.where(geo, block, pixel_block)
    grow = buffer / 2
    x0 = np.floor((bounds[:, 0] - grow) / size).astype(np.int64)
    y0 = np.floor((bounds[:, 1] - grow) / size).astype(np.int64)
    x1 = np.ceil((bounds[:, 2] + grow) / size).astype(np.int64) - 1
    y1 = np.ceil((bounds[:, 3] + grow) / size).astype(np.int64) - 1
    x1, y1 = np.maximum(x1, x0), np.maximum(y1, y0)
    nx, ny = x1 - x0 + 1, y1 - y0 + 1
    counts = nx * ny
    total = int(counts.sum())
    if total > 20 * max(n, 1) + 10_000_000:
        raise InvalidParameterError(
            f"block={block:g} is so small that {n} chips touch {total} blocks; use a block "
            "at least as large as a chip"
        )
    part = np.repeat(np.arange(len(parts)), counts)
    k = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    bx = x0[part] + k % nx[part]
    by = y0[part] + k // nx[part]
    # Pixel-only scenes are separate planes: their blocks carry the scene.
    plane = np.where(geo, -1, c["scene"][owner])[part]
    keys = np.stack([plane, bx, by], axis=1)
    # The centre block: under the centre of the chip's largest part.
    area = shapely.area(parts)
    order = np.lexsort((-area, owner))
    first = order[np.unique(owner[order], return_index=True)[1]]
    cx = (bounds[first, 0] + bounds[first, 2]) / 2
    cy = (bounds[first, 1] + bounds[first, 3]) / 2
    centre = np.stack(
        [
            np.where(geo[first], -1, c["scene"][owner[first]]),
            np.floor(cx / size[first]).astype(np.int64),
            np.floor(cy / size[first]).astype(np.int64),
        ],
        axis=1,
    )
    _, inverse = np.unique(np.concatenate([keys, centre]), axis=0, return_inverse=True)
    inverse = inverse.ravel()
    return owner[part], inverse[:total], inverse[total:]


def deal(weights: np.ndarray, order: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Deal blocks, in ``order``, to splits: contiguous runs of cumulative weight."""
    w = weights[order].astype(np.float64)
    total = w.sum()
    mid = (np.cumsum(w) - w / 2) / (total if total else 1.0)
    edges = np.cumsum(targets)[:-1] / targets.sum()
    split = np.empty(len(weights), dtype=np.int64)
    split[order] = np.searchsorted(edges, mid, side="right")
    return split


def best_order(weights: np.ndarray, target: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A seeded shuffle of the blocks whose deal comes close to ``target``.

    With few blocks of uneven weight one shuffle can miss the fractions by a whole block.
    The first of up to :data:`ORDERS` shuffles whose deal is within :data:`ORDER_FIT` of
    every fraction is taken (so another seed still gives another split), else the best.
    """
    best_order, best_error = None, np.inf
    total = max(float(weights.sum()), 1.0)
    for _ in range(ORDERS):
        order = rng.permutation(len(weights))
        dealt = deal(weights, order, target)
        share = np.bincount(dealt, weights=weights, minlength=len(target)) / total
        error = float(np.abs(share - target).max())
        if error <= ORDER_FIT:
            return order
        if error < best_error:
            best_order, best_error = order, error
    assert best_order is not None
    return best_order


def resolve(
    block_split: np.ndarray,
    member_chip: np.ndarray,
    member_block: np.ndarray,
    centre: np.ndarray,
    adjacency: tuple[np.ndarray, np.ndarray, np.ndarray],
    n: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Assign each chip a split (or -1) so that no conflicting pair straddles two splits.

    Returns ``(split, reason)``; ``reason`` is 0 (kept), 1 (overlap) or 2 (buffer).
    """
    indptr, nbr, nbr_overlap = adjacency
    preferred = block_split[centre]
    member_split = block_split[member_block]
    lo = np.full(n, np.iinfo(np.int64).max)
    hi = np.full(n, -1)
    np.minimum.at(lo, member_chip, member_split)
    np.maximum.at(hi, member_chip, member_split)
    pure = lo == hi
    degree = np.diff(indptr)
    # Pure chips whose neighbours all prefer their split never change: settle them at once.
    pref_nbr = preferred[nbr]
    owner = np.repeat(np.arange(n), degree)
    differs = np.zeros(n, dtype=bool)
    np.logical_or.at(differs, owner, pref_nbr != preferred[owner])
    split = np.full(n, -1, dtype=np.int64)
    settled = pure & ~differs
    split[settled] = preferred[settled]
    reason = np.zeros(n, dtype=np.int8)
    # The rest, pure chips first, one at a time against what is already kept.
    candidates: dict[int, list[int]] = {}
    straddlers = np.flatnonzero(~pure)
    if len(straddlers):
        sel = ~pure[member_chip]
        for chip, s in zip(member_chip[sel].tolist(), member_split[sel].tolist(), strict=True):
            options = candidates.setdefault(chip, [])
            if s not in options:
                options.append(s)
    todo = np.concatenate([np.flatnonzero(pure & differs), straddlers])
    # A plain Python loop over lists: a few neighbours per chip, numpy calls cost more.
    taken = split.tolist()
    starts, nbrs, nbr_flags = indptr.tolist(), nbr.tolist(), nbr_overlap.tolist()
    preferred_list = preferred.tolist()
    for chip in todo.tolist():
        neighbours = nbrs[starts[chip] : starts[chip + 1]]
        first = preferred_list[chip]
        options = [first] + [s for s in candidates.get(chip, ()) if s != first]
        for option in options:
            if all(taken[x] < 0 or taken[x] == option for x in neighbours):
                taken[chip] = option
                break
        else:
            flags = nbr_flags[starts[chip] : starts[chip + 1]]
            clash = any(
                flag and taken[x] >= 0 and taken[x] != first
                for x, flag in zip(neighbours, flags, strict=True)
            )
            reason[chip] = 1 if clash else 2
    split = np.asarray(taken, dtype=np.int64)
    return split, reason


def conflict_graph(
    i: np.ndarray, j: np.ndarray, overlap: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the conflicting pairs as adjacency lists (CSR): ``(indptr, neighbour, overlap)``."""
    src = np.concatenate([i, j])
    dst = np.concatenate([j, i])
    flag = np.concatenate([overlap, overlap])
    order = np.argsort(src, kind="stable")
    indptr = np.concatenate([[0], np.cumsum(np.bincount(src, minlength=n))])
    return indptr, dst[order], flag[order]


def revisits(
    scenes: list[Scene], columns: dict[str, np.ndarray], buffer: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group chips with one window in scenes of one grid, the revisits of a tile.

    Returns ``(unit of each chip, a chip of each unit, chips in each unit)``. Scenes of
    one grid share a CRS and a transform. With a ``buffer``, chips of one scene and chips
    of two scenes are kept apart by different measures (pixels, map units), so every chip
    is then its own unit.
    """
    n = len(columns["scene"])
    grid = np.arange(len(scenes), dtype=np.int64)
    if buffer == 0:
        seen: dict[tuple[object, ...], int] = {}
        for k, sc in enumerate(scenes):
            if sc.georef == "transform" and sc.crs is not None and sc.transform is not None:
                grid[k] = seen.setdefault((sc.crs, *tuple(sc.transform)[:6]), k)
    keys = [grid[columns["scene"]], *(columns[k].astype(np.int64) for k in WINDOW)]
    spans = [int(k.max(initial=0)) + 1 for k in keys]
    if n == 0 or buffer > 0 or float(np.prod(np.array(spans, dtype=np.float64))) >= 2.0**62:
        return np.arange(n), np.arange(n), np.ones(n)
    packed = np.zeros(n, dtype=np.int64)
    for k, span in zip(keys, spans, strict=True):
        packed = packed * span + k
    _, first, unit_of, size = np.unique(
        packed, return_index=True, return_inverse=True, return_counts=True
    )
    return unit_of.ravel(), first, size.astype(np.float64)


WINDOW = ("row_off", "col_off", "height", "width")
