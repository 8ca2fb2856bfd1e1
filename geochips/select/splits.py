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
from geochips.progress import ProgressSpec, start_progress
from geochips.select.blocks import (
    ORDER_FIT,
    ORDERS,
    best_order,
    chip_blocks,
    conflict_graph,
    deal,
    resolve,
    revisits,
)
from geochips.select.conflicts import NEAR, OVERLAP, REASONS, comparisons, conflicts
from geochips.select.ground import check_length, chip_ground, choose_frame, window_columns

if TYPE_CHECKING:
    from geochips.index import ChipIndex

__all__ = [
    "DEFAULT_BLOCK_CHIPS",
    "ORDERS",
    "ORDER_FIT",
    "SplitReport",
    "Splits",
    "spatial_split",
]

DEFAULT_BLOCK_CHIPS = 4
"""Default block edge, in chips: ``block`` is this many times the largest chip side."""

AUTO_MIN_CHIPS = 50_000
"""``progress=None`` shows progress on a terminal from this many chips (about 3 s)."""


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


def spatial_split(
    index: ChipIndex,
    fractions: Mapping[str, float],
    *,
    block: float | None = None,
    buffer: float = 0.0,
    seed: int = 0,
    frame: str | None = None,
    progress: ProgressSpec = None,
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
        progress: ``"spatial split"`` counted in chips: once placed on the ground, once
            per comparison pass they enter and once dealt (3 to 5 counts per chip);
            ``None`` shows it when stderr is a terminal and there are at least
            :data:`AUTO_MIN_CHIPS` chips, ``True``/``False`` always/never, or a callable
            ``(done, total)`` (see :mod:`geochips.progress`).

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
    chips = window_columns(index)
    # Chips of one window in scenes of one grid (revisits of a tile) are one ground: they
    # are split as one, their chip count its weight.
    unit_of, first, size = revisits(scenes, chips, buffer_v)
    columns = {k: v[first] for k, v in chips.items()}
    n = len(first)
    counter = start_progress(
        progress,
        2 * n + comparisons(scenes, columns),
        label="spatial split",
        unit="chip",
        auto_min=AUTO_MIN_CHIPS,
        size=len(index),
    )
    ground = chip_ground(scenes, columns, frame, counter)

    side_px = float(max(np.max(columns["height"], initial=1), np.max(columns["width"], initial=1)))
    pixel_block = block_v if block_v is not None else DEFAULT_BLOCK_CHIPS * side_px
    if block_v is None and ground.georef.any():
        b = shapely.bounds(ground.polygons[ground.georef])
        side = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
        block_v = DEFAULT_BLOCK_CHIPS * float(np.median(side))
    ground_block = block_v if ground.georef.any() else None

    if len(index) == 0:
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

    member_chip, member_block, centre = chip_blocks(
        ground, block_v or pixel_block, pixel_block, buffer_v
    )
    n_blocks = int(max(member_block.max(), centre.max())) + 1
    weights = np.bincount(centre, weights=size, minlength=n_blocks)
    target = np.array([asked[k] for k in names])
    order = best_order(weights, target, np.random.default_rng(int(seed)))
    # Two chips that lie in one block only always land in one split: their pairs are
    # never judged (most pairs of a large index, and most of the exact comparisons).
    touched = np.bincount(member_chip, minlength=n)
    alone = np.full(n, -1, dtype=np.int64)
    alone[member_chip] = member_block
    label = np.where(touched == 1, alone, n_blocks + np.arange(n))
    i, j, overlap, _ = conflicts(ground, buffer_v, counter, label, settled=touched == 1)
    graph = conflict_graph(i, j, overlap, n)

    want = target.copy()
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    # Small splits lose more chips at their borders (their blocks mostly neighbour
    # other splits): re-deal a few times with targets corrected by what was reached.
    for _ in range(4):
        block_split = deal(weights, order, want)
        split, reason = resolve(block_split, member_chip, member_block, centre, graph, n)
        kept = np.bincount(split[split >= 0], weights=size[split >= 0], minlength=len(names))
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
    split, reason = split[unit_of], reason[unit_of]

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
    counter.finish()  # the chips dealt
    return out
