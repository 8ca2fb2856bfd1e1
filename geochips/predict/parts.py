"""Stitching across ranks: each rank keeps its share's accumulators, one merge combines them.

With ``Stitcher(..., part=(rank, world_size))`` a rank writes, at close, each scene's tile
accumulators as they are (:class:`~geochips.io.writer.PartWriter`: the blended sums, the
weights and, for ``"center"``, the distances and chip positions, NaN where the rank had
nothing) and the positions of the chips it saw. :meth:`Stitcher.merge
<geochips.Stitcher.merge>` then reads the parts tile by tile and combines them exactly as
one process would have: sums add, maxima take the larger, nearest centres compare distance
then chip position. Memory stays one tile per part.

DistributedSampler pads shards by giving the first chips again, as the last sample of some
ranks: each share therefore holds its latest chip back, and the merge adds a held-back chip
only if no share accumulated it. Shares that overlap otherwise are counted once per share,
and the merge warns.

The functions here are steps of :class:`~geochips.Stitcher` on its
:class:`~geochips.predict.canvas.Canvas`, kept apart so that the class reads as the
single-process path.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

from geochips.errors import GeochipsWarning
from geochips.io.writer import BLOCK, PartReader, PartWriter, part_path
from geochips.predict.blend import final
from geochips.predict.canvas import Canvas
from geochips.predict.tiles import Tile, TileKey
from geochips.windows import ChipWindow

Held = tuple[int, int, ChipWindow, np.ndarray, np.ndarray | None]
"""The chip a share holds back: scene position, chip position, window, values, valid mask."""


def pack(tile: Tile, blend: str) -> np.ndarray:
    """A tile's accumulators as planes: ``bands`` values, the weight, the source chip."""
    source = tile.source if blend == "center" else np.full(tile.weight.shape, -1)
    return np.concatenate(
        [tile.value.astype(np.float64), tile.weight[None].astype(np.float64), source[None]]
    )


def combine(planes: list[np.ndarray], bands: int, blend: str) -> Tile:
    """The tile one process would have made from every part's planes (NaN: nothing)."""
    shape = planes[0].shape[1:]
    if blend == "center":
        value = np.zeros((bands, *shape), np.float64)
        best = np.full(shape, np.inf)
        source = np.full(shape, -1, dtype=np.int64)
        for part in planes:
            dist = np.nan_to_num(part[bands], nan=np.inf)
            src = np.nan_to_num(part[bands + 1], nan=-1).astype(np.int64)
            found = src >= 0
            better = found & ((dist < best) | ((dist == best) & ((source < 0) | (src < source))))
            value[:, better] = part[:bands][:, better]
            best[better], source[better] = dist[better], src[better]
        return Tile(value.astype(np.float32), best.astype(np.float32), source)
    values = np.stack([p[:bands] for p in planes])
    weight = np.nansum(np.stack([p[bands] for p in planes]), axis=0)
    if blend == "max":
        with np.errstate(invalid="ignore"):
            value = np.fmax.reduce(np.nan_to_num(values, nan=-np.inf), axis=0)
    else:
        value = np.nansum(values, axis=0)
    empty = np.zeros((0, 0), dtype=np.int64)
    return Tile(value.astype(np.float32), weight.astype(np.float32), empty)


def part_file(canvas: Canvas, s: int, rank: int, world: int) -> str:
    """The file of rank ``rank``'s accumulators of scene ``s``, beside its output."""
    return part_path(canvas.outputs[s], rank, world)


def seen_file(canvas: Canvas, rank: int, world: int) -> str:
    """The file of the chips rank ``rank`` saw, beside the first scene's output."""
    first = canvas.outputs[min(canvas.outputs)]
    return part_path(first, rank, world) + ".chips.npz"


def close_share(
    canvas: Canvas, part: tuple[int, int], seen: np.ndarray, pending: Held | None
) -> list[str]:
    """Write a share's accumulators, scene by scene, and the chips it saw (at close)."""
    rank, world = part
    written = []
    try:
        by_scene: dict[int, list[TileKey]] = {}
        for key in canvas.cache.keys():
            by_scene.setdefault(key[0], []).append(key)
        for s, keys in sorted(by_scene.items()):
            writer = PartWriter(
                part_file(canvas, s, rank, world), canvas.index.scenes[s], canvas.bands + 2
            )
            try:
                for key in sorted(keys):
                    tile = canvas.cache.pop(key)
                    assert tile is not None
                    writer.write(pack(tile, canvas.blend), key[1] * BLOCK, key[2] * BLOCK)
            except BaseException:
                writer.abort()
                raise
            written.append(writer.finish())
        if canvas.outputs:
            seen = seen.copy()
            held: dict[str, Any] = {}
            if pending is not None:
                _, position, _, values, mask = pending
                seen[position] = False
                held = {"position": position, "values": values}
                if mask is not None:
                    held["mask"] = mask
            np.savez(seen_file(canvas, rank, world), seen=np.flatnonzero(seen), **held)
    finally:
        canvas.cache.close()
    canvas.paths = written
    return written


def add_shares(canvas: Canvas, seen: np.ndarray, files: list[str]) -> None:
    """Mark in ``seen`` the chips every share accumulated; add each held-back chip no share had."""
    counts = np.zeros(len(canvas.index), dtype=np.int64)
    held = []
    for f in files:
        with np.load(f) as share:
            counts[share["seen"]] += 1
            if "position" in share:
                mask = share["mask"] if "mask" in share else None
                held.append((int(share["position"]), share["values"], mask))
    seen |= counts > 0
    twice = np.flatnonzero(counts > 1)
    if len(twice):
        warnings.warn(
            f"{len(twice)} chips were stitched by more than one rank (e.g. "
            f"{canvas.index.chip_id(int(twice[0]))!r}) and count once for each: give each "
            "rank a disjoint share (DistributedSampler's)",
            GeochipsWarning,
            stacklevel=3,
        )
    for position, values, mask in held:
        if not seen[position]:
            seen[position] = True
            scene_pos, window = canvas.index.locate(position)
            canvas.add_chip(scene_pos, position, window, values, mask)


def merge_scene(canvas: Canvas, s: int, parts: int) -> None:
    """Combine the shares of scene ``s`` tile by tile and write its COG."""
    files = [part_file(canvas, s, rank, parts) for rank in range(parts)]
    readers = [PartReader(f) for f in files if os.path.exists(f)]
    held = [k for k in canvas.cache.keys() if k[0] == s]
    if not readers and not held:
        return
    scene = canvas.index.scenes[s]
    try:
        for ty, tx in zip(*np.nonzero(canvas.expected[s]), strict=True):
            r0, c0 = int(ty) * BLOCK, int(tx) * BLOCK
            h, w = min(BLOCK, scene.height - r0), min(BLOCK, scene.width - c0)
            planes = [reader.read(r0, c0, h, w) for reader in readers]
            extra = canvas.cache.pop((s, int(ty), int(tx)))
            if extra is not None:
                planes.append(pack(extra, canvas.blend))
            if not planes:
                continue
            tile = combine(planes, canvas.bands, canvas.blend)
            out = final(tile, canvas.blend, canvas.output, canvas.dtype, canvas.nodata)
            canvas.writer(s).write(out, r0, c0)
        if s in canvas.writers:
            canvas.finish_scene(s)
    finally:
        for reader in readers:
            reader.close()
    for f in files:
        if os.path.exists(f):
            os.remove(f)
