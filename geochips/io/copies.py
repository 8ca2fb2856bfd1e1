"""What a local copy of a scene is: its file, its tiles, and whether a file already is one.

A copy holds one scene at the level the index reads (its full resolution or the overview)
as a plain tiled GeoTIFF on the scene's grid: its CRS and transform (or GCPs), nodata,
dtype and every band in the stacked order (the assets of a multi-asset scene, and files
resampled onto its grid, become the bands of one file), with only the tiles some chip
touches (:mod:`geochips.io.localize` writes them).

The GDAL metadata item :data:`TAG` of a copy says what it holds: the source hrefs (token
values redacted), level, codec and the bitmap of tiles written (GDAL also leaves out tiles
that are all nodata, so the file's own tile table cannot tell a tile never written from an
empty one). :func:`plan_copy` reads headers only: a copy of the same source, grid and
codec holding every tile needed is kept; one lacking tiles is completed; any other file
is rewritten.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import os
import re
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning

from geochips import hrefs
from geochips.errors import InvalidParameterError
from geochips.io.handles import changes
from geochips.scene import Scene
from geochips.summary import level_name

CODECS = ("none", "zstd", "lzw", "deflate")
"""Compressions of a copy (GDAL's names); ``"none"`` decodes fastest, the others are smaller."""
TAG = "GEOCHIPS_COPY"
"""The GDAL metadata item of a copy: what it was copied from and which tiles it holds."""
DEFAULT_TILE = 256
"""Tile side of a copy of a scene whose own blocks are not tiles (strips) or too large."""


def source_hrefs(scene: Scene) -> tuple[str, ...]:
    """The hrefs ``scene`` is read from, with the values of any token redacted."""
    return tuple(hrefs.redact_text(h) for h in scene.hrefs)


def copy_name(scene: Scene) -> str:
    """The file name of a scene's copy: ``<id>-<level>.tif`` (``full`` or ``ov<k>``).

    Characters other than letters, digits and ``.-_+`` become ``_``, and then a hash of
    the id keeps two ids apart that would read the same.
    """
    safe = re.sub(r"[^A-Za-z0-9._+-]", "_", scene.id)
    if safe != scene.id:
        safe = f"{safe}-{zlib.crc32(scene.id.encode()):08x}"
    return f"{safe}-{level_name(scene.overview_level)}.tif"


def copy_tile(scene: Scene) -> tuple[int, int]:
    """The tile shape of a copy: the scene's own tiles when GeoTIFF allows them, else 256."""
    h, w = scene.tile_shape
    if all(side % 16 == 0 and 16 <= side <= 1024 for side in (h, w)):
        return h, w
    return DEFAULT_TILE, DEFAULT_TILE


def needed_tiles(
    scene: Scene,
    tile: tuple[int, int],
    row_off: np.ndarray,
    col_off: np.ndarray,
    height: np.ndarray,
    width: np.ndarray,
) -> np.ndarray:
    """The tiles (a boolean grid) that windows touch; only their part inside the scene counts."""
    th, tw = tile
    grid = np.zeros((-(-scene.height // th), -(-scene.width // tw)), dtype=bool)
    r0, c0 = np.maximum(row_off.astype(np.int64), 0), np.maximum(col_off.astype(np.int64), 0)
    r1 = np.minimum(row_off.astype(np.int64) + height, scene.height)
    c1 = np.minimum(col_off.astype(np.int64) + width, scene.width)
    inside = (r1 > r0) & (c1 > c0)
    top, bottom = r0[inside] // th, (r1[inside] - 1) // th
    left, right = c0[inside] // tw, (c1[inside] - 1) // tw
    if not len(top):
        return grid
    # Windows span a few tiles each: mark the k-th tile row and column of every window at once.
    for dr in range(int((bottom - top).max()) + 1):
        for dc in range(int((right - left).max()) + 1):
            keep = (top + dr <= bottom) & (left + dc <= right)
            grid[top[keep] + dr, left[keep] + dc] = True
    return grid


@dataclass(frozen=True)
class Copy:
    """What localizing one scene takes: where, which tiles, and what an old copy holds."""

    scene: Scene
    """The scene as the index reads it (the original)."""
    path: str
    codec: str
    tile: tuple[int, int]
    needed: np.ndarray
    """Tiles some chip touches (a boolean grid of the copy's tiles)."""
    have: np.ndarray
    """Tiles a valid existing copy holds (none when there is none, or it is rewritten)."""
    rewrite: str = ""
    """Why an existing file at ``path`` is not trusted (``""``: none, or it is valid)."""

    @property
    def todo(self) -> np.ndarray:
        """Tiles still to write."""
        todo: np.ndarray = self.needed & ~self.have
        return todo

    @property
    def complete(self) -> bool:
        """Whether the existing copy already holds every tile needed."""
        return not self.todo.any()

    def bytes_needed(self) -> int:
        """Disk space the copy may take beyond what is there: its tiles uncompressed.

        Completing a copy writes it anew under a temporary name first, so its present
        size counts too.
        """
        th, tw = self.tile
        tile_bytes = th * tw * self.scene.count * np.dtype(self.scene.dtype).itemsize
        present = os.path.getsize(self.path) if self.have.any() and not self.complete else 0
        return int(self.todo.sum()) * tile_bytes + present

    def local_scene(self) -> Scene:
        """The scene read from the copy: one file, every band, the same grid and chip ids."""
        return dataclasses.replace(
            self.scene,
            hrefs=(os.path.abspath(self.path),),
            assets=(),
            band_counts=(self.scene.count,),
            tile_shape=self.tile,
            resampling=None,
            warped=(),
            # Chip ids keep the level; the copy's own full resolution is that level.
            file_levels=(None,) if self.scene.overview_level is not None else (),
        )


def plan_copy(scene: Scene, path: str, codec: str, needed: np.ndarray) -> Copy:
    """Return what localizing ``scene`` into ``path`` takes, reading only a file's header."""
    if codec not in CODECS:
        raise InvalidParameterError(f"codec must be one of {', '.join(CODECS)}, got {codec!r}")
    copy = Copy(scene, path, codec, copy_tile(scene), needed, np.zeros_like(needed))
    if not os.path.exists(path):
        return copy
    try:
        with quiet(), rasterio.open(path) as src:
            problems = _mismatches(src, copy)
            have = _tiles_of(src.tags().get(TAG, ""), copy) if not problems else None
    except rasterio.errors.RasterioError as exc:
        problems, have = [f"unreadable ({exc})"], None
    if have is None:
        return dataclasses.replace(copy, rewrite="; ".join(problems) or f"no {TAG} tiles")
    return dataclasses.replace(copy, have=have)


def _mismatches(src: Any, copy: Copy) -> list[str]:
    """What differs between an existing file and the copy that ``copy`` describes."""
    scene = copy.scene
    problems = changes(src, copy.local_scene(), 0)
    if scene.georef == "gcps":
        points, crs = src.gcps
        got = [(g.row, g.col, g.x, g.y) for g in points]
        if len(got) != len(scene.gcps) or not np.allclose(got, scene.gcps, rtol=1e-12):
            problems.append("other GCPs")
    else:
        crs = src.crs
    if (crs is None) != (scene.crs is None) or (
        crs is not None and crs != CRS.from_user_input(scene.crs)
    ):
        problems.append(f"CRS {crs}, the scene has {scene.crs}")
    if not _same_nodata(src.nodata, scene.nodata):
        problems.append(f"nodata {src.nodata}, the scene has {scene.nodata}")
    if src.block_shapes[0] != copy.tile:
        problems.append(f"tiles {src.block_shapes[0]}, a copy has {copy.tile}")
    return problems


def _same_nodata(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return (math.isnan(a) and math.isnan(b)) or a == b


def tag_text(copy: Copy, tiles: np.ndarray) -> str:
    """The :data:`TAG` text of ``copy`` holding ``tiles``."""
    bits = base64.b64encode(zlib.compress(np.packbits(tiles.ravel()).tobytes())).decode()
    return json.dumps(
        {
            "source": list(source_hrefs(copy.scene)),
            "level": copy.scene.overview_level,
            "codec": copy.codec,
            "shape": list(tiles.shape),
            "tiles": bits,
        }
    )


def _tiles_of(text: str, copy: Copy) -> np.ndarray | None:
    """The tiles a copy's :data:`TAG` says it holds, or ``None`` if it is another copy."""
    try:
        meta = json.loads(text)
        if (
            meta["source"] != list(source_hrefs(copy.scene))
            or meta["level"] != copy.scene.overview_level
            or meta["codec"] != copy.codec
            or tuple(meta["shape"]) != copy.needed.shape
        ):
            return None
        packed = np.frombuffer(zlib.decompress(base64.b64decode(meta["tiles"])), dtype=np.uint8)
        return np.unpackbits(packed, count=copy.needed.size).astype(bool).reshape(copy.needed.shape)
    except (ValueError, KeyError, TypeError, zlib.error):
        return None


@contextmanager
def quiet() -> Iterator[None]:
    """Scenes without georeferencing are copied as they are, without rasterio's warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        yield
