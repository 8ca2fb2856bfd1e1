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

The functions taking ``st`` are steps of :class:`~geochips.Stitcher` itself, kept here so
that the class reads as the single-process path.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

from geochips.errors import GeochipsWarning
from geochips.io.writer import BLOCK, PartReader, PartWriter
from geochips.predict.blend import final
from geochips.predict.tiles import Tile, TileKey


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


def close_share(st: Any) -> list[str]:
    """Write a share's accumulators, scene by scene, and the chips it saw (at close)."""
    assert st.part is not None
    rank, world = st.part
    written = []
    try:
        by_scene: dict[int, list[TileKey]] = {}
        for key in st._cache.keys():
            by_scene.setdefault(key[0], []).append(key)
        for s, keys in sorted(by_scene.items()):
            writer = PartWriter(st._part_files(s, rank, world), st.index.scenes[s], st.bands + 2)
            try:
                for key in sorted(keys):
                    tile = st._cache.pop(key)
                    assert tile is not None
                    writer.write(pack(tile, st.blend), key[1] * BLOCK, key[2] * BLOCK)
            except BaseException:
                writer.abort()
                raise
            written.append(writer.finish())
        if st._paths:
            seen = st._seen.copy()
            pending: dict[str, Any] = {}
            if st._pending is not None:
                _, position, _, values, mask = st._pending
                seen[position] = False
                pending = {"position": position, "values": values}
                if mask is not None:
                    pending["mask"] = mask
            np.savez(st._seen_file(rank, world), seen=np.flatnonzero(seen), **pending)
    finally:
        st._cache.close()
    st.paths = written
    return written


def add_shares(st: Any, files: list[str]) -> None:
    """Mark the chips every share accumulated; add each held-back chip no share had."""
    counts = np.zeros(len(st.index), dtype=np.int64)
    held = []
    for f in files:
        with np.load(f) as share:
            counts[share["seen"]] += 1
            if "position" in share:
                mask = share["mask"] if "mask" in share else None
                held.append((int(share["position"]), share["values"], mask))
    st._seen |= counts > 0
    twice = np.flatnonzero(counts > 1)
    if len(twice):
        warnings.warn(
            f"{len(twice)} chips were stitched by more than one rank (e.g. "
            f"{st.index.chip_id(int(twice[0]))!r}) and count once for each: give each "
            "rank a disjoint share (DistributedSampler's)",
            GeochipsWarning,
            stacklevel=3,
        )
    for position, values, mask in held:
        if not st._seen[position]:
            st._seen[position] = True
            scene_pos, window = st.index.locate(position)
            st._add_chip(scene_pos, position, window, values, mask)


def merge_scene(st: Any, s: int, parts: int) -> None:
    """Combine the shares of scene ``s`` tile by tile and write its COG."""
    files = [st._part_files(s, rank, parts) for rank in range(parts)]
    readers = [PartReader(f) for f in files if os.path.exists(f)]
    held = [k for k in st._cache.keys() if k[0] == s]
    if not readers and not held:
        return
    scene = st.index.scenes[s]
    try:
        for ty, tx in zip(*np.nonzero(st._expected[s]), strict=True):
            r0, c0 = int(ty) * BLOCK, int(tx) * BLOCK
            h, w = min(BLOCK, scene.height - r0), min(BLOCK, scene.width - c0)
            planes = [reader.read(r0, c0, h, w) for reader in readers]
            extra = st._cache.pop((s, int(ty), int(tx)))
            if extra is not None:
                planes.append(pack(extra, st.blend))
            if not planes:
                continue
            tile = combine(planes, st.bands, st.blend)
            st._writer(s).write(final(tile, st.blend, st.output, st.dtype, st.nodata), r0, c0)
        if s in st._writers:
            st.paths.append(st._writers.pop(s).finish(st._resampling(), st.compress))
    finally:
        for reader in readers:
            reader.close()
    for f in files:
        if os.path.exists(f):
            os.remove(f)
