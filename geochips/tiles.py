"""Tile awareness: how the chips of a grid fall on the internal tiles of their COGs.

GDAL reads and decodes whole tiles (512x512 in Sentinel-1 GRD COGs). A chip whose window
straddles tile edges decodes, and over HTTP downloads, every tile it touches: a 500/500
grid over 512x512 tiles touches 3.8 tiles a chip where a 512/512 grid touches one, and
reads at a third of the speed (``benchmarks/RESULTS.md``). A grid is *tile-aligned* when
``size`` and ``stride`` are whole multiples of the tile shape, or divide it.

:meth:`ChipIndex.build <geochips.index.ChipIndex.build>` warns
(:class:`~geochips.errors.TileAlignmentWarning`) when its grid is not aligned.

**Usage**::

    report = check_alignment(index)       # the tiles each chip touches, and a better grid
    if not report.aligned:
        print(report)                     # names the grid to use instead
        index = ChipIndex.build(sources, size=report.size, stride=report.stride)
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from geochips.errors import InvalidParameterError, TileAlignmentWarning
from geochips.scene import Scene
from geochips.windows import ChipTable, Pair, grid_windows


def tiles_per_chip(index: ChipTable) -> np.ndarray:
    """Return how many internal tiles of its scene each chip's window touches.

    Only the part of a window inside its scene counts (``edge="pad"`` windows reach past
    it). Striped scenes count their strips.
    """
    return _tiles_per_window(index.scenes, {k: index.column(k) for k in _WINDOW})


_WINDOW = ("scene", "row_off", "col_off", "height", "width")


def _tiles_per_window(scenes: Sequence[Scene], columns: Mapping[str, np.ndarray]) -> np.ndarray:
    scene = columns["scene"]
    bh = np.array([s.tile_shape[0] for s in scenes], dtype=np.int64)[scene]
    bw = np.array([s.tile_shape[1] for s in scenes], dtype=np.int64)[scene]
    height = np.array([s.height for s in scenes], dtype=np.int64)[scene]
    width = np.array([s.width for s in scenes], dtype=np.int64)[scene]
    r0 = np.maximum(columns["row_off"].astype(np.int64), 0)
    c0 = np.maximum(columns["col_off"].astype(np.int64), 0)
    r1 = np.minimum(columns["row_off"] + columns["height"].astype(np.int64), height)
    c1 = np.minimum(columns["col_off"] + columns["width"].astype(np.int64), width)
    rows = np.where(r1 > r0, (r1 - 1) // bh - r0 // bh + 1, 0)
    cols = np.where(c1 > c0, (c1 - 1) // bw - c0 // bw + 1, 0)
    counts: np.ndarray = rows * cols
    return counts


def aligned_grid(size: Pair, stride: Pair, tile_shape: Pair) -> tuple[Pair, Pair]:
    """Return the tile-aligned ``(size, stride)`` nearest to a grid, per axis.

    Each length becomes the nearest whole number of tiles or divisor of the tile (for 512
    tiles: 500 -> 512, 300 -> 256, 1000 -> 1024). Overlap survives: 512/256 over 512 tiles
    is already as aligned as an overlapping grid can be.
    """

    def align(length: int, tile: int) -> int:
        below = [d for d in range(1, min(length, tile) + 1) if tile % d == 0]
        candidates = [below[-1], max(1, length // tile) * tile, (length // tile + 1) * tile]
        return min(candidates, key=lambda c: (abs(c - length), -c))

    new_size = (align(size[0], tile_shape[0]), align(size[1], tile_shape[1]))
    new_stride = (align(stride[0], tile_shape[0]), align(stride[1], tile_shape[1]))
    return new_size, new_stride


@dataclass(frozen=True)
class AlignmentReport:
    """How a grid falls on the tiles of its scenes, and the aligned grid to prefer."""

    tiles_per_chip: float
    """Mean number of tiles a chip touches with the index's grid."""
    aligned_tiles_per_chip: float
    """The same for the suggested grid (the minimum for chips of that size)."""
    tile_shape: Pair
    """Tile shape of most scenes."""
    size: Pair
    """Suggested chip size, ``(height, width)``."""
    stride: Pair
    """Suggested stride."""
    aligned: bool
    """Whether the index's grid already is the suggested one."""
    striped: bool = False
    """True when no scene is tiled (GeoTIFF strips): no grid aligns to strips."""

    def __str__(self) -> str:
        if self.striped:
            return (
                "the scenes are stored in strips, not tiles: every chip decodes whole rows; "
                "COGs (gdal_translate -of COG) read faster"
            )
        if self.aligned:
            return (
                f"the grid is aligned to the {self.tile_shape[0]}x{self.tile_shape[1]} "
                f"tiles: {self.tiles_per_chip:.2f} tiles per chip"
            )
        return (
            f"each chip touches {self.tiles_per_chip:.2f} tiles of "
            f"{self.tile_shape[0]}x{self.tile_shape[1]} on average, and decodes (or "
            f"downloads) them all; size={self.size}, stride={self.stride} would touch "
            f"{self.aligned_tiles_per_chip:.2f}"
        )


def check_alignment(index: ChipTable) -> AlignmentReport:
    """Report how the index's grid falls on its scenes' tiles and suggest an aligned grid.

    Uses the tile shape most scenes share; the suggestion keeps the edge policy and, as
    nearly as the tiles allow, the size and stride.
    """
    if index.size is None or index.stride is None or not index.scenes:
        raise InvalidParameterError(
            "check_alignment needs an index built with a grid (ChipIndex.build or from_scenes)"
        )
    tiled = [s for s in index.scenes if _tiled(s)]
    if not tiled:
        return AlignmentReport(
            0.0,
            0.0,
            index.scenes[0].tile_shape,
            index.size,
            index.stride,
            aligned=True,
            striped=True,
        )
    block = Counter(s.tile_shape for s in tiled).most_common(1)[0][0]
    size, stride = aligned_grid(index.size, index.stride, block)
    now = tiles_per_chip(index)
    if (size, stride) == (index.size, index.stride):
        after = now
    else:
        after = _tiles_per_window(index.scenes, _grid(index.scenes, size, stride, index.edge))
    return AlignmentReport(
        tiles_per_chip=float(now.mean()) if len(now) else 0.0,
        aligned_tiles_per_chip=float(after.mean()) if len(after) else 0.0,
        tile_shape=block,
        size=size,
        stride=stride,
        aligned=(size, stride) == (index.size, index.stride),
    )


def _grid(scenes: Sequence[Scene], size: Pair, stride: Pair, edge: str | None) -> dict[str, Any]:
    """The window columns of ``size``/``stride`` over ``scenes`` (as ``from_scenes`` lays them)."""
    parts = [grid_windows(s.height, s.width, size, stride, edge or "drop") for s in scenes]  # type: ignore[arg-type]
    counts = [len(rows) for rows, _ in parts]
    return {
        "scene": np.repeat(np.arange(len(scenes)), counts),
        "row_off": np.concatenate([r for r, _ in parts] or [np.zeros(0, np.int64)]),
        "col_off": np.concatenate([c for _, c in parts] or [np.zeros(0, np.int64)]),
        "height": np.full(sum(counts), size[0]),
        "width": np.full(sum(counts), size[1]),
    }


def _tiled(scene: Scene) -> bool:
    """Whether ``scene`` is stored in tiles (not strips: whole rows)."""
    return scene.tile_shape[0] > 1 and scene.tile_shape[1] < scene.width


def warn_if_unaligned(index: ChipTable, stacklevel: int = 2) -> None:
    """Warn (:class:`~geochips.errors.TileAlignmentWarning`) if chips straddle tiles.

    Looks at the grid's size and stride against each tile shape of the index's tiled
    scenes, not at every chip, so it costs nothing on a million chips. Striped scenes are
    left out: no grid aligns to strips.
    """
    if index.size is None or index.stride is None:
        return
    tiled = [s for s in index.scenes if _tiled(s)]
    for block in sorted({s.tile_shape for s in tiled}):
        size, stride = aligned_grid(index.size, index.stride, block)
        if (size, stride) == (index.size, index.stride):
            continue
        scenes = [s for s in tiled if s.tile_shape == block]
        warnings.warn(
            f"chips of size={index.size}, stride={index.stride} straddle the "
            f"{block[0]}x{block[1]} tiles of {len(scenes)} scene(s) (e.g. "
            f"{scenes[0].name}): each chip decodes, and over HTTP downloads, every tile "
            f"it touches. size={size}, stride={stride} is aligned; "
            "geochips.check_alignment(index) counts the tiles per chip",
            TileAlignmentWarning,
            stacklevel=stacklevel,
        )
        return
