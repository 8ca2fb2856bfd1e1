"""Leak-free spatial train/val/test splits, and an independent check that they are.

Overlapping chips split at random leak information between splits and inflate reported
metrics (Kattenborn et al. 2022, ISPRS Open Journal of Photogrammetry and Remote Sensing
5:100018). :func:`spatial_split` therefore splits *ground*, not chips:

1. Every chip gets a footprint in one common **frame**: the scenes' CRS when all
   georeferenced scenes share one projected CRS, otherwise EPSG:6933 (EASE-Grid 2.0: global,
   equal area, metres), so two scenes in different UTM zones that cover the same place are
   compared on the same ground. Scenes with no CRS (neither CRS nor GCPs, or a bare
   geotransform) have no known ground: each is its own plane, split in pixel space.
2. The frame is cut into square **blocks** aligned on its origin (``block`` map units, or
   pixels for scenes without georeferencing). Blocks, weighted by the chips centred in them,
   are shuffled with ``seed`` and dealt to the splits so that chip counts come close to the
   fractions asked.
3. A chip goes to the split of the block under its centre. A chip that would share ground
   (a footprint intersection of positive area; across CRSs, above :data:`AREA_TOLERANCE`)
   with a chip of another split, or come closer to one than ``buffer``, is moved to
   another split of a block it touches if that removes the conflict, and dropped
   otherwise. Chips inside one block are settled first, so the chips dropped are those
   that straddle blocks of different splits.

:func:`geochips.select.leakage.check_leakage` proves the result without knowing how it was made.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import rasterio.crs
import shapely

from geochips.errors import InvalidParameterError
from geochips.select.leakage import (
    NEAR,
    OVERLAP,
    REASONS,
    Ground,
    check_length,
    chip_ground,
    choose_frame,
    conflicts,
    window_columns,
)

if TYPE_CHECKING:
    from geochips.index import ChipIndex

DEFAULT_BLOCK_CHIPS = 4
"""Default block edge, in chips: ``block`` is this many times the largest chip side."""
ORDERS = 32
"""Seeded shuffles of the blocks tried at most by :func:`spatial_split`."""
ORDER_FIT = 0.02
"""A shuffle whose deal (by chips centred in each block) is this close to every fraction
is taken at once."""


@dataclass(frozen=True)
class SplitReport:
    """What :func:`spatial_split` did: fractions reached, blocks, and chips dropped."""

    fractions: dict[str, float]
    """Fractions asked, by split name."""
    counts: dict[str, int]
    """Chips kept in each split."""
    dropped: int
    """Chips in no split."""
    dropped_by_reason: dict[str, int]
    """``"overlap"`` (would share ground with another split) and ``"buffer"`` (closer
    than ``buffer``) counts."""
    frame: str | None
    """CRS the ground blocks were cut in (``None``: no georeferenced scene)."""
    block: float | None
    """Block edge in ``frame`` units."""
    pixel_block: float | None
    """Block edge in pixels, for scenes with neither CRS nor GCPs."""
    blocks: int
    """Blocks that hold at least one chip."""
    buffer: float
    seed: int
    dropped_chips: ChipIndex | None = field(default=None, repr=False, compare=False)
    """The dropped chips, with a ``drop_reason`` column."""

    @property
    def achieved(self) -> dict[str, float]:
        """Fraction of the kept chips in each split."""
        total = sum(self.counts.values())
        return {k: (v / total if total else 0.0) for k, v in self.counts.items()}

    def __str__(self) -> str:
        achieved = self.achieved
        parts = ", ".join(
            f"{name} {self.counts[name]} ({achieved[name]:.1%}, asked {self.fractions[name]:.1%})"
            for name in self.fractions
        )
        reasons = ", ".join(f"{n} {REASONS[r]}" for r, n in self.dropped_by_reason.items() if n)
        units = (
            f"{self.block:g} {_units(self.frame)} in {self.frame}"
            if self.block and self.frame
            else f"{self.pixel_block:g} px"
        )
        return (
            f"spatial split of {sum(self.counts.values()) + self.dropped} chips in "
            f"{self.blocks} blocks of {units} (seed {self.seed}): {parts}; dropped "
            f"{self.dropped}" + (f" ({reasons})" if reasons else "")
        )


def _units(crs: str) -> str:
    units = rasterio.crs.CRS.from_user_input(crs).linear_units
    return {"metre": "m", "meter": "m"}.get(units, units or "units")


class Splits(dict[str, "ChipIndex"]):
    """The named indexes of a split (a ``dict``), with :attr:`report`."""

    report: SplitReport


def _check_fractions(fractions: Mapping[str, float]) -> dict[str, float]:
    if not isinstance(fractions, Mapping) or not fractions:
        raise InvalidParameterError(
            f"fractions must be a mapping of split names to fractions, e.g. "
            f'{{"train": 0.7, "val": 0.15, "test": 0.15}}, got {fractions!r}'
        )
    out: dict[str, float] = {}
    for name, value in fractions.items():
        if not isinstance(name, str) or not name:
            raise InvalidParameterError(f"split names must be non-empty strings, got {name!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
            raise InvalidParameterError(f"fraction of {name!r} must be a number, got {value!r}")
        if not 0 < float(value) <= 1:
            raise InvalidParameterError(
                f"fraction of {name!r} must be in (0, 1], got {value!r}; leave a split out "
                "rather than giving it 0"
            )
        out[name] = float(value)
    total = sum(out.values())
    if abs(total - 1.0) > 1e-6:
        raise InvalidParameterError(f"fractions must sum to 1, got {out} (sum {total:g})")
    return out


def _blocks(
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


def _deal(weights: np.ndarray, order: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Deal blocks, in ``order``, to splits: contiguous runs of cumulative weight."""
    w = weights[order].astype(np.float64)
    total = w.sum()
    mid = (np.cumsum(w) - w / 2) / (total if total else 1.0)
    edges = np.cumsum(targets)[:-1] / targets.sum()
    split = np.empty(len(weights), dtype=np.int64)
    split[order] = np.searchsorted(edges, mid, side="right")
    return split


def _best_order(weights: np.ndarray, target: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A seeded shuffle of the blocks whose deal comes close to ``target``.

    With few blocks of uneven weight one shuffle can miss the fractions by a whole block.
    The first of up to :data:`ORDERS` shuffles whose deal is within :data:`ORDER_FIT` of
    every fraction is taken (so another seed still gives another split), else the best.
    """
    best_order, best_error = None, np.inf
    total = max(float(weights.sum()), 1.0)
    for _ in range(ORDERS):
        order = rng.permutation(len(weights))
        dealt = _deal(weights, order, target)
        share = np.bincount(dealt, weights=weights, minlength=len(target)) / total
        error = float(np.abs(share - target).max())
        if error <= ORDER_FIT:
            return order
        if error < best_error:
            best_order, best_error = order, error
    assert best_order is not None
    return best_order


def _resolve(
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


def _adjacency(
    i: np.ndarray, j: np.ndarray, overlap: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    src = np.concatenate([i, j])
    dst = np.concatenate([j, i])
    flag = np.concatenate([overlap, overlap])
    order = np.argsort(src, kind="stable")
    indptr = np.concatenate([[0], np.cumsum(np.bincount(src, minlength=n))])
    return indptr, dst[order], flag[order]


def spatial_split(
    index: ChipIndex,
    fractions: Mapping[str, float],
    *,
    block: float | None = None,
    buffer: float = 0.0,
    seed: int = 0,
    frame: str | None = None,
) -> Splits:
    """Split an index into named indexes that share no ground, from contiguous blocks.

    **Usage**::

        splits = geochips.spatial_split(index, {"train": 0.7, "val": 0.15, "test": 0.15},
                                        block=20_000, buffer=1_000, seed=0)
        splits["train"]          # a ChipIndex with a "split" column
        print(splits.report)     # counts, fractions reached, chips dropped and why
        geochips.check_leakage(splits)

    Args:
        index: the chips to split.
        fractions: split name -> fraction of the chips, summing to 1.
        block: edge of the square blocks, in units of ``frame`` (metres in the default
            frames) for georeferenced scenes and in pixels for scenes with neither CRS
            nor GCPs. Default: 4 chips (4 x the largest chip side). Larger blocks drop
            fewer chips and separate the splits better; more blocks bring the fractions
            closer to those asked.
        buffer: minimum distance between chips of different splits, in the same units
            as ``block`` (0: chips of different splits may touch, never overlap).
        seed: seeds the order in which blocks are dealt; the same index, arguments and
            seed give the same split.
        frame: CRS to cut blocks in; default: the scenes' CRS when they all share one
            projected CRS, else EPSG:6933 (equal area, metres).

    Returns:
        A :class:`Splits` dict of the split names (in the order given) to
        :class:`~geochips.ChipIndex` es, each with a ``split`` column and in the order of
        ``index``; ``.report`` is a :class:`SplitReport`.

    Raises:
        InvalidParameterError: on bad fractions, block, buffer or seed.
    """
    asked = _check_fractions(fractions)
    block_v = check_length(block, "block")
    buffer_v = check_length(buffer, "buffer") or 0.0
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InvalidParameterError(f"seed must be an int, got seed={seed!r}")
    names = list(asked)
    scenes = list(index.scenes)
    used = {int(s) for s in np.unique(index.column("scene"))}
    frame = frame or choose_frame([scenes[s] for s in used])
    columns = window_columns(index)
    n = len(index)
    ground = chip_ground(scenes, columns, frame)

    side_px = float(max(np.max(columns["height"], initial=1), np.max(columns["width"], initial=1)))
    pixel_block = block_v if block_v is not None else DEFAULT_BLOCK_CHIPS * side_px
    if block_v is None and ground.georef.any():
        b = shapely.bounds(ground.polygons[ground.georef])
        side = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
        block_v = DEFAULT_BLOCK_CHIPS * float(np.median(side))
    ground_block = block_v if ground.georef.any() else None

    if n == 0:
        report = SplitReport(
            asked,
            dict.fromkeys(names, 0),
            0,
            {OVERLAP: 0, NEAR: 0},
            frame,
            ground_block,
            pixel_block,
            0,
            buffer_v,
            int(seed),
            index,
        )
        out = Splits(
            {name: index.with_columns(split=np.full(0, name, dtype=object)) for name in names}
        )
        out.report = report
        return out

    member_chip, member_block, centre = _blocks(
        ground, block_v or pixel_block, pixel_block, buffer_v
    )
    n_blocks = int(max(member_block.max(), centre.max())) + 1
    weights = np.bincount(centre, minlength=n_blocks)
    target = np.array([asked[k] for k in names])
    order = _best_order(weights, target, np.random.default_rng(int(seed)))
    i, j, overlap, _ = conflicts(ground, buffer_v)
    adjacency = _adjacency(i, j, overlap, n)

    want = target.copy()
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    # Small splits lose more chips at their borders (their blocks mostly neighbour
    # other splits): re-deal a few times with targets corrected by what was reached.
    for _ in range(4):
        block_split = _deal(weights, order, want)
        split, reason = _resolve(block_split, member_chip, member_block, centre, adjacency, n)
        kept = np.bincount(split[split >= 0], minlength=len(names)).astype(np.float64)
        reached = kept / max(kept.sum(), 1.0)
        error = float(np.abs(reached - target).max())
        if best is None or error < best[0] - 1e-12:
            best = (error, split, reason)
        if error < 0.005 or np.any(reached == 0):
            break
        want = want * target / reached
        want = want / want.sum()
    assert best is not None
    _, split, reason = best

    out = Splits()
    counts: dict[str, int] = {}
    for k, name in enumerate(names):
        rows = np.flatnonzero(split == k)
        out[name] = index.select(rows).with_columns(split=np.full(len(rows), name, dtype=object))
        counts[name] = len(rows)
    dropped_rows = np.flatnonzero(split < 0)
    reason_names = np.array(["", OVERLAP, NEAR], dtype=object)
    dropped_index = index.select(dropped_rows).with_columns(
        drop_reason=reason_names[reason[dropped_rows]]
    )
    out.report = SplitReport(
        fractions=asked,
        counts=counts,
        dropped=len(dropped_rows),
        dropped_by_reason={
            OVERLAP: int(np.sum(reason == 1)),
            NEAR: int(np.sum(reason == 2)),
        },
        frame=frame if ground.georef.any() else None,
        block=ground_block,
        pixel_block=pixel_block if (~ground.georef).any() else None,
        blocks=len(np.unique(centre)),
        buffer=buffer_v,
        seed=int(seed),
        dropped_chips=dropped_index,
    )
    return out
