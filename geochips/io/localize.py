"""Writing a local copy of a scene: its missing tiles, read through the scene's Reader.

Pixels are read through a :class:`~geochips.io.reader.Reader` (the index's signing, GDAL
options, retries and checks of a changed file), so a copy holds what a chip read of the
original returns; what a copy is and which tiles it lacks is :mod:`geochips.io.copies`.

A copy is written under ``<path>.partial-<pid>-<thread>.tif`` and renamed onto ``path``
once complete: a stopped run never leaves a file that looks complete (and its partial
file is removed by the next run, once its process is gone). A copy lacking tiles is
completed on a copy of its file, renamed back.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import rasterio
from rasterio.windows import Window

from geochips.io.copies import TAG, Copy, quiet, tag_text
from geochips.io.reader import Reader
from geochips.io.writer import tiled_profile
from geochips.scene import Scene
from geochips.windows import ChipWindow

RUN_TILES = 8
"""Adjacent tiles of one tile row read in one call (bounds the memory of a read)."""


def write_copy(copy: Copy, reader: Reader, on_tiles: Callable[[int], None]) -> Scene:
    """Write the tiles ``copy`` lacks, read through ``reader``; return the local scene.

    Raises:
        SceneReadError: a window of the scene could not be read (naming it).
        SceneChangedError: a file of the scene no longer matches the index.
    """
    scene = copy.scene
    os.makedirs(os.path.dirname(os.path.abspath(copy.path)), exist_ok=True)
    _remove_stale(copy.path)
    partial = f"{copy.path}.partial-{os.getpid()}-{threading.get_ident()}.tif"
    try:
        with quiet(), _open(copy, partial) as dst:
            for window, count in _runs(copy):
                data = reader.read(scene, window)
                dst.write(
                    data, window=Window(window.col_off, window.row_off, window.width, window.height)
                )
                on_tiles(count)
            dst.update_tags(**{TAG: tag_text(copy, copy.have | copy.needed)})
        os.replace(partial, copy.path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return copy.local_scene()


def _remove_stale(path: str) -> None:
    """Remove the partial files of ``path`` left by processes that no longer run."""
    folder, name = os.path.split(os.path.abspath(path))
    for entry in os.listdir(folder):
        match = re.fullmatch(re.escape(name) + r"\.partial-(\d+)-\d+\.tif", entry)
        if match is None or int(match[1]) == os.getpid():
            continue
        try:
            os.kill(int(match[1]), 0)  # signal 0: only asks whether the process exists
        except ProcessLookupError:
            os.remove(os.path.join(folder, entry))
        except (PermissionError, OverflowError):
            pass  # another user's process, or no such pid on this system


def _open(copy: Copy, partial: str) -> Any:
    """Open the partial file: the existing copy's bytes to complete, or a new sparse file."""
    if copy.have.any():
        shutil.copyfile(copy.path, partial)
        return rasterio.open(partial, "r+")
    scene = copy.scene
    profile = tiled_profile(
        scene,
        count=scene.count,
        dtype=scene.dtype,
        nodata=scene.nodata,
        block=copy.tile,
        compress=copy.codec,
    )
    if copy.codec in ("lzw", "deflate"):
        # Not for zstd: on S1-like uint16 tiles the predictor halved its decoding speed
        # (1056 against 2417 tiles/s) and made it no smaller (benchmarks/bench_localize.py).
        profile["predictor"] = 3 if np.dtype(scene.dtype).kind == "f" else 2
    dst = rasterio.open(partial, "w", **profile)
    if len(scene.scales) == scene.count and len(scene.offsets) == scene.count:
        dst.scales, dst.offsets = scene.scales, scene.offsets
    return dst


def _runs(copy: Copy) -> Iterator[tuple[ChipWindow, int]]:
    """Windows of runs of adjacent tiles still to write (up to :data:`RUN_TILES`), clipped."""
    th, tw = copy.tile
    todo = copy.todo
    for row in range(todo.shape[0]):
        cols = np.flatnonzero(todo[row])
        if not len(cols):
            continue
        breaks = np.flatnonzero(np.diff(cols) != 1) + 1
        for run in np.split(cols, breaks):
            for start in range(0, len(run), RUN_TILES):
                part = run[start : start + RUN_TILES]
                r0, c0 = row * th, int(part[0]) * tw
                r1 = min(r0 + th, copy.scene.height)
                c1 = min((int(part[-1]) + 1) * tw, copy.scene.width)
                yield ChipWindow(r0, c0, r1 - r0, c1 - c0), len(part)
