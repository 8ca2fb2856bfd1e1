"""Proof that splits do not leak: no two chips of different splits share ground or pixels.

:func:`check_leakage` knows nothing of how the splits were made. It finds every pair of
chips of different splits in conflict by the rule of
:func:`geochips.select.conflicts.conflicts` (pixel windows for chips of one scene, exact
footprints in the CRS for scenes that share a projected CRS, footprints in a common
**frame** otherwise: EPSG:6933, global and equal-area, unless all scenes share one
projected CRS, with a sliver of tolerance, :data:`AREA_TOLERANCE`), but with an engine of
its own, :mod:`geochips.select.proof`, which compares only chips near a split's border;
:func:`geochips.select.splits.spatial_split` obeys ``conflicts``, so a bug in either shows
as a disagreement. Neither module imports anything of the splitting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from geochips.errors import InvalidParameterError, LeakageError
from geochips.progress import ProgressSpec, start_progress
from geochips.scene import Scene
from geochips.select.conflicts import (
    AREA_TOLERANCE,
    NEAR,
    OVERLAP,
    REASONS,
    conflicts,
)
from geochips.select.ground import (
    Ground,
    check_length,
    chip_ground,
    choose_frame,
    pixel_sizes,
    window_columns,
)
from geochips.select.proof import leaks as find_leaks

if TYPE_CHECKING:
    from geochips.index import ChipIndex

__all__ = [
    "AREA_TOLERANCE",
    "NEAR",
    "OVERLAP",
    "REASONS",
    "Ground",
    "LeakageReport",
    "check_leakage",
    "check_length",
    "chip_ground",
    "choose_frame",
    "conflicts",
    "window_columns",
]
"""Names of the rule and the ground stay importable from here, where they lived first."""

AUTO_MIN_CHIPS = 50_000
"""``progress=None`` shows progress on a terminal from this many chips (about 3 s)."""


@dataclass(frozen=True)
class LeakageReport:
    """What :func:`check_leakage` compared and found."""

    chips: int
    """Chips compared, over all splits."""
    pairs_checked: int
    """Candidate pairs compared (of chips, or of revisits of one window taken as one) that
    could hold two splits; chips far from a split's border are never compared."""
    leaks: list[tuple[str, str, str, str, str]]
    """``(split_a, chip_id_a, split_b, chip_id_b, kind)``, ``kind`` ``"overlap"`` or
    ``"buffer"``."""

    @property
    def ok(self) -> bool:
        """Whether no two chips of different splits share ground (or come too close)."""
        return not self.leaks


def check_leakage(
    splits: Mapping[str, ChipIndex],
    *,
    buffer: float = 0.0,
    frame: str | None = None,
    raise_on_leak: bool = True,
    max_listed: int = 20,
    progress: ProgressSpec = None,
) -> LeakageReport:
    """Verify that no two chips of different splits share ground or pixels.

    Independent of how the splits were made: the indexes may come from
    :func:`spatial_split`, from a saved file, or from anywhere else (scenes are matched by
    their headers). Chips of one scene are compared by their pixel windows; chips of
    different scenes in one CRS by their exact footprints (positive-area intersection);
    others in ``frame`` (default EPSG:6933, or the scenes' common projected CRS), where an
    intersection counts when it exceeds :data:`AREA_TOLERANCE` of the smaller footprint.

    Args:
        splits: split name -> index.
        buffer: also report pairs closer than this (frame units; pixels for scenes with
            neither CRS nor GCPs).
        frame: CRS to compare scenes of different CRSs in.
        raise_on_leak: raise :class:`~geochips.LeakageError` (else only report).
        max_listed: chip-id pairs listed in the error message.
        progress: ``"leakage check"`` counted in chips, twice: compared in their plane,
            then in the frame;
            ``None`` shows it when stderr is a terminal and there are at least
            :data:`AUTO_MIN_CHIPS` chips, ``True``/``False`` always/never, or a callable
            ``(done, total)`` (see :mod:`geochips.progress`).

    Raises:
        LeakageError: listing offending chip-id pairs (all of them in ``.leaks``).
    """
    if not isinstance(splits, Mapping):
        raise InvalidParameterError(
            f"check_leakage takes a mapping of split names to ChipIndexes, got "
            f"{type(splits).__name__}"
        )
    buffer_v = check_length(buffer, "buffer") or 0.0
    scenes: list[Scene] = []
    positions: dict[Scene, int] = {}
    parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("scene", "row_off", "col_off", "height", "width")
    }
    labels: list[np.ndarray] = []
    names = list(splits)
    for k, name in enumerate(names):
        index = splits[name]
        remap = np.array(
            [positions.setdefault(s, len(positions)) for s in index.scenes], dtype=np.int64
        )
        for s in index.scenes:
            if positions[s] == len(scenes):
                scenes.append(s)
        cols = window_columns(index)
        parts["scene"].append(
            remap[cols["scene"]] if len(index) else cols["scene"].astype(np.int64)
        )
        for key in ("row_off", "col_off", "height", "width"):
            parts[key].append(cols[key])
        labels.append(np.full(len(index), k, dtype=np.int64))
    columns = {k: np.concatenate(v) if v else np.zeros(0, np.int64) for k, v in parts.items()}
    label = np.concatenate(labels) if labels else np.zeros(0, np.int64)
    n = len(label)
    if n == 0:
        return LeakageReport(0, 0, [])
    used = {int(s) for s in np.unique(columns["scene"])}
    frame = frame or choose_frame([scenes[s] for s in used])
    counter = start_progress(
        progress, 2 * n, label="leakage check", unit="chip", auto_min=AUTO_MIN_CHIPS, size=n
    )
    sizes = pixel_sizes(scenes, columns["scene"], frame) if buffer_v > 0 else np.ones(len(scenes))
    i, j, overlap, candidates = find_leaks(scenes, columns, label, buffer_v, frame, sizes, counter)
    # Chip ids are made for the leaking chips only (a row is its split's first row + k).
    offset = np.cumsum([0] + [len(splits[name]) for name in names])

    def chip_id(row: int) -> str:
        k = int(label[row])
        return splits[names[k]].chip_id(row - int(offset[k]))

    leaks = [
        (names[label[a]], chip_id(a), names[label[b]], chip_id(b), OVERLAP if o else NEAR)
        for a, b, o in zip(i.tolist(), j.tolist(), overlap.tolist(), strict=True)  # two splits each
    ]
    report = LeakageReport(n, candidates, leaks)
    if leaks and raise_on_leak:
        listed = "\n  ".join(
            f"{sa}:{a} <-> {sb}:{b} ({'share ground' if kind == OVERLAP else 'closer than buffer'})"
            for sa, a, sb, b, kind in leaks[:max_listed]
        )
        more = f"\n  ... and {len(leaks) - max_listed} more" if len(leaks) > max_listed else ""
        a, b = int(i[0]), int(j[0])
        where = " and ".join(
            f"scene {scenes[int(columns['scene'][p])].name}"
            for p in ((a, b) if columns["scene"][a] != columns["scene"][b] else (a,))
        )
        raise LeakageError(
            f"{len(leaks)} pair(s) of chips in different splits share ground or pixels "
            f"(of {n} chips), the first in {where}:\n  {listed}{more}\nSplit with "
            "geochips.spatial_split, or drop one chip of each pair",
            report,
        )
    return report
