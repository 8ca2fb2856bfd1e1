"""Local, fast-to-decode copies of the scenes an index reads, for the epochs after the first.

Training reads the same chips every epoch; from remote DEFLATE COGs each epoch pays the
network and the decoding again. :func:`localize` copies, once, what the chips of an index
read (each scene at the level read, only the tiles its chips touch) into a folder of
sparse tiled GeoTIFFs (:mod:`geochips.io.localize`), uncompressed or with a fast codec,
and returns the same chips over those copies: same chip ids, same columns, the same
pixels, plus a :data:`SOURCE_COLUMN` naming where each chip came from.

It is safe to stop and run again: copies are renamed into place once complete, a copy
already there and matching (headers only) is kept, one that holds fewer tiles is
completed, and any other is rewritten. Before writing, it checks that the folder has the
space the copies may take (their tiles uncompressed).
"""

from __future__ import annotations

import os
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

import numpy as np

from geochips.errors import DiskSpaceError, InvalidParameterError, SceneReadError
from geochips.index import ChipIndex
from geochips.io import copies as copying
from geochips.io.localize import write_copy
from geochips.io.reader import Reader
from geochips.io.signing import remote_only
from geochips.labels import RasterLabels
from geochips.progress import ProgressSpec, start_progress
from geochips.scene import Scene
from geochips.windows import rows_by_scene

SOURCE_COLUMN = "source_hrefs"
"""The column of a localized index naming each chip's original hrefs (tokens redacted;
several hrefs of a stacked scene are joined by newlines)."""
AUTO_MIN_TILES = 256
"""Tiles to write from which ``progress=None`` shows progress on a terminal."""


@dataclass(frozen=True)
class LocalizePlan:
    """What :func:`localize` will do: one :class:`~geochips.io.localize.Copy` per scene used."""

    folder: str
    copies: dict[int, copying.Copy]
    """Per scene position in the index, its copy."""

    @property
    def bytes_needed(self) -> int:
        """Disk space the copies may take: the tiles still to write, uncompressed."""
        return sum(c.bytes_needed() for c in self.copies.values())

    @property
    def tiles(self) -> int:
        """Tiles still to write."""
        return sum(int(c.todo.sum()) for c in self.copies.values())

    def __str__(self) -> str:
        pending = [c for c in self.copies.values() if not c.complete]
        kept = len(self.copies) - len(pending)
        return (
            f"{len(pending)} of {len(self.copies)} scene(s) to localize into {self.folder} "
            f"({self.tiles} tiles, at most {_size(self.bytes_needed)}"
            + (f"; {kept} already there)" if kept else ")")
        )


def plan_localize(
    index: ChipIndex, folder: str | os.PathLike[str], codec: str = "none"
) -> LocalizePlan:
    """Return what localizing ``index`` into ``folder`` takes (reads local headers only)."""
    if codec not in copying.CODECS:
        raise InvalidParameterError(
            f"codec must be one of {', '.join(copying.CODECS)}, got {codec!r}"
        )
    where = os.path.abspath(os.fspath(folder))
    columns = {n: index.column(n) for n in ("row_off", "col_off", "height", "width")}
    copies: dict[int, copying.Copy] = {}
    owners: dict[str, int] = {}
    for position, rows in rows_by_scene(index.column("scene")):
        scene = index.scenes[position]
        path = os.path.join(where, copying.copy_name(scene))
        if path in owners:
            raise InvalidParameterError(
                f"scenes {index.scenes[owners[path]].name} and {scene.name} would share the "
                f"copy {path!r} (one id and level); localize them into separate folders"
            )
        owners[path] = position
        needed = copying.needed_tiles(
            scene, copying.copy_tile(scene), *(columns[n][rows] for n in columns)
        )
        copies[position] = copying.plan_copy(scene, path, codec, needed)
    return LocalizePlan(where, copies)


def localize(
    index: ChipIndex,
    folder: str | os.PathLike[str],
    codec: str = "none",
    *,
    workers: int = 4,
    progress: ProgressSpec = None,
) -> ChipIndex:
    """Copy what the chips of ``index`` read into ``folder``; return the index over the copies.

    **Usage**::

        local = geochips.localize(splits["train"], "/scratch/chips")   # once
        ds = geochips.ChipDataset(local)      # epochs read local, undecoded tiles
        local.save("train-local.parquet")

    Each scene becomes one GeoTIFF ``<scene id>-<level>.tif`` at the level the index reads,
    holding every band (a stacked scene's assets in order) and the tiles the chips touch.
    The new index has the same chips, chip ids, columns, bands, labels and statistics, no
    signer (the copies need none) unless its labels are rasters, which are not copied and
    keep being read, signed, from where they are, and a :data:`SOURCE_COLUMN`; chips read
    from it equal chips read from the original. Scenes of ``index`` with no chip are left out.

    Args:
        index: the chips to localize.
        folder: where the copies go (created if needed); run again to resume.
        codec: ``"none"`` (fastest to read, largest), ``"zstd"``, ``"lzw"`` or
            ``"deflate"``.
        workers: scenes copied at once (threads).
        progress: ``"localizing"`` in tiles written (see :mod:`geochips.progress`); by
            default on a terminal from :data:`AUTO_MIN_TILES` tiles.

    Raises:
        DiskSpaceError: the folder has less free space than the copies may take.
        SceneReadError: a scene could not be read (listing every scene that failed; the
            copies completed are kept).
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InvalidParameterError(f"workers must be an int >= 1, got workers={workers!r}")
    os.makedirs(os.fspath(folder), exist_ok=True)
    plan = plan_localize(index, folder, codec)
    check_space(plan)
    reader = Reader(gdal_options=index.gdal_options, signer=index.signer)
    counter = start_progress(
        progress,
        plan.tiles,
        label=f"localizing ({_size(plan.bytes_needed)} at most)",
        unit="tile",
        auto_min=AUTO_MIN_TILES,
    )
    lock = threading.Lock()

    def count(tiles: int) -> None:
        with lock:
            counter.add(tiles)

    pending = {p: c for p, c in plan.copies.items() if not c.complete}
    local = {p: c.local_scene() for p, c in plan.copies.items() if c.complete}
    failures: list[Exception] = []
    try:
        with ThreadPoolExecutor(
            max_workers=max(1, min(workers, len(pending))),
            thread_name_prefix="geochips",
            initializer=reader.own_thread,
        ) as pool:
            futures = {pool.submit(write_copy, c, reader, count): p for p, c in pending.items()}
            for future in as_completed(futures):
                try:
                    local[futures[future]] = future.result()
                except SceneReadError as exc:
                    failures.append(exc)
    finally:
        reader.close()
    if failures:
        if len(failures) == 1:
            raise failures[0]
        listing = "\n  - ".join(map(str, failures))
        raise SceneReadError(
            f"{len(failures)} of {len(plan.copies)} scenes could not be localized (the "
            f"others are in {plan.folder}; run again to resume):\n  - {listing}"
        )
    counter.finish()
    return _local_index(index, local)


def check_space(plan: LocalizePlan) -> None:
    """Refuse a plan whose copies may not fit the free space of its folder."""
    free = shutil.disk_usage(plan.folder).free
    needed = plan.bytes_needed
    if needed > free:
        raise DiskSpaceError(
            f"localizing needs up to {_size(needed)} ({needed} bytes, the tiles chips "
            f"touch, uncompressed) in {plan.folder!r}, which has {_size(free)} ({free} "
            "bytes) free: free some space, choose another folder, or localize fewer chips"
        )


def _local_index(index: ChipIndex, local: dict[int, Scene]) -> ChipIndex:
    """``index`` over the local scenes (scene positions renumbered), with its source column."""
    used = sorted(local)
    renumber = np.full(len(index.scenes), -1, dtype=np.int64)
    renumber[used] = np.arange(len(used))
    scene_col = index.column("scene")
    columns = {name: index.column(name) for name in index.column_names}
    columns["scene"] = renumber[scene_col].astype(scene_col.dtype)
    if SOURCE_COLUMN not in columns:  # a localized index keeps the first sources
        per_scene = np.empty(len(index.scenes), dtype=object)
        per_scene[:] = ["\n".join(copying.source_hrefs(s)) for s in index.scenes]
        columns[SOURCE_COLUMN] = per_scene[scene_col]
    return ChipIndex(
        [local[p] for p in used],
        columns,
        size=index.size,
        stride=index.stride,
        edge=index.edge,
        # Label rasters stay where they are, so they keep the signer that reads them.
        signer=remote_only(index.signer) if isinstance(index.labels, RasterLabels) else None,
        gdal_options=index.gdal_options,
        labels=index.labels,
        band_stats=index.band_stats,
        bands=index.bands,
    )


def _size(n: int) -> str:
    """A byte count for people: ``"52.4 MB"``."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"
