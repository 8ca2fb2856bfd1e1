"""Words about scenes, no I/O.

The summary :meth:`geochips.ChipIndex.describe` prints, the level part of a chip id, and
the warning for scenes too small to hold a chip.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from geochips import hrefs
from geochips.scene import Scene

DESCRIBED_SCENES = 20
"""Scenes :meth:`~geochips.ChipIndex.describe` lists one per line; past that it summarises."""


def level_name(overview_level: int | None) -> str:
    """Return the level part of a chip id: ``"full"`` or ``"ov<k>"``."""
    return "full" if overview_level is None else f"ov{overview_level}"


def describe_scenes(header: str, scenes: Sequence[Scene], counts: Sequence[int]) -> str:
    """``header``, then one line per scene with its chip count (``counts``), or a summary.

    Up to :data:`DESCRIBED_SCENES` scenes, one line each; past that, totals, the scenes
    grouped by CRS, dtype, band count and size, chips per scene (min/median/max) and the
    first few scenes.
    """
    if len(scenes) <= DESCRIBED_SCENES:
        lines = [_scene_line(s, n) for s, n in zip(scenes, counts, strict=True)]
        return "\n".join([header, *lines])
    shown = 3
    pixels = sum(s.height * s.width for s in scenes)
    return "\n".join(
        [
            header,
            f"  totals: {sum(counts)} chips, {len(scenes)} scenes, {pixels / 1e6:.1f} Mpx",
            f"  chips per scene: min {min(counts)}, median {np.median(counts):g}, "
            f"max {max(counts)}",
            "  CRS: " + _groups(s.crs or "no CRS" for s in scenes),
            "  dtype: " + _groups(s.dtype for s in scenes),
            "  bands: " + _groups(f"{s.count} band(s)" for s in scenes),
            "  size: " + _groups(_size_class(s) for s in scenes),
            *(_scene_line(s, n) for s, n in zip(scenes[:shown], counts, strict=False)),
            f"  ... and {len(scenes) - shown} more scenes",
        ]
    )


def small_scenes_text(empty: Sequence[Scene], size: tuple[int, int], edge: str) -> str:
    """Name the scenes without a chip, and what makes them chips: larger scenes or smaller chips."""
    names = ", ".join(f"{s.name} {s.height}x{s.width}" for s in empty[:5])
    more = f" and {len(empty) - 5} more" if len(empty) > 5 else ""
    levels = sorted({s.overview_level for s in empty if s.overview_level is not None})
    finer = (
        f"a finer overview_level (overview_level={levels[0] - 1}, or None for full resolution), "
        if levels and levels[0] > 0
        else ("overview_level=None (full resolution), " if levels else "")
    )
    return (
        f"{len(empty)} scene(s) smaller than the chip size {size} yield no chip with "
        f"edge={edge!r}: {names}{more}. Use {finer}a smaller size, or edge='pad'"
    )


def _scene_line(scene: Scene, count: int) -> str:
    """One scene of :meth:`ChipIndex.describe`: its chips, grid, bands, CRS and href."""
    return (
        f"  {scene.id}: {count} chips, {scene.height}x{scene.width} px "
        f"({level_name(scene.overview_level)}), {scene.count} band(s) {scene.dtype}, "
        f"{scene.crs or 'no CRS'} [{hrefs.redact(scene.hrefs[0])}]"
    )


def _groups(values: Iterable[str], most: int = 4) -> str:
    """``"12 x EPSG:32631, 3 x EPSG:32632"``: the ``most`` commonest values, then the rest."""
    common = Counter(values).most_common()
    shown = ", ".join(f"{n} x {value}" for value, n in common[:most])
    rest = sum(n for _, n in common[most:])
    return shown + (f", {rest} in {len(common) - most} other(s)" if rest else "")


def _size_class(scene: Scene) -> str:
    """The size class of a scene by its longer side, at the level read."""
    side = max(scene.height, scene.width)
    for limit, name in ((1024, "<=1k px"), (4096, "1k-4k px"), (16384, "4k-16k px")):
        if side <= limit:
            return name
    return ">16k px"
