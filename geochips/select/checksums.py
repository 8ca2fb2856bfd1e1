"""Per-chip checksums: an opt-in check for damage that decodes without any error.

A DEFLATE or LZW tile with flipped bytes can decode to wrong pixels with no GDAL error or
warning (measured with GDAL 3.10: a byte flipped in the middle of a DEFLATE tile changes
~40 % of a 256x256 tile's pixels, silently). Nothing in a GeoTIFF lets a reader notice
that: TIFF stores no checksum of its tiles, and the predictor and tile byte counts stay
consistent. The only guard is to remember what the pixels were.

:func:`record_checksums` reads every chip once, while the files are known to be good (for
example right after downloading them), and adds a ``checksum`` column: the CRC-32 of the
chip's pixels as stored (every band, the scene's dtype; of a padded chip, the part inside
the scene). It saves and
loads with the index. A :class:`~geochips.ChipDataset` over an index with checksums checks
every chip it reads against its checksum and raises :class:`~geochips.SceneReadError`
when they differ. The check costs one CRC-32 pass over the chip (measured in
``benchmarks/``); ``ChipDataset(..., verify=False)`` turns it off.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from geochips import hrefs
from geochips.index import ChipIndex
from geochips.io.reader import Reader
from geochips.io.signing import SignSpec, resolve_signer
from geochips.scene import Scene
from geochips.windows import ChipWindow

COLUMN = "checksum"
"""The index column holding each chip's CRC-32 (uint32)."""

_UNSET: Any = object()


def chip_checksum(pixels: np.ndarray, scene: Scene, window: ChipWindow) -> int:
    """Return the CRC-32 of the part of ``window`` inside ``scene`` (C order, as read).

    ``pixels`` is the chip as :meth:`Reader.read` returns it, all bands; padding is left
    out, so the checksum does not depend on the fill value.
    """
    r0, c0 = max(-window.row_off, 0), max(-window.col_off, 0)
    r1 = min(scene.height - window.row_off, window.height)
    c1 = min(scene.width - window.col_off, window.width)
    inside = pixels if (r0, c0, r1, c1) == (0, 0, *pixels.shape[1:]) else pixels[:, r0:r1, c0:c1]
    return zlib.crc32(np.ascontiguousarray(inside).data)


def record_checksums(
    index: ChipIndex,
    *,
    threads: int | None = None,
    gdal_options: Mapping[str, Any] | None = None,
    sign: SignSpec = _UNSET,
) -> ChipIndex:
    """Return ``index`` with a ``checksum`` column: the CRC-32 of every chip's pixels.

    **Usage**::

        index = geochips.record_checksums(geochips.ChipIndex.build(paths, size=512))
        index.save("chips.parquet")    # the checksums travel with the index
        ds = geochips.ChipDataset(index)   # every chip read is checked against them

    Reads every chip once (all bands), so run it while the files are known to be good.

    Args:
        index: the chips to record.
        threads: reading threads (default: the CPU count; 8 for remote scenes).
        gdal_options: GDAL configuration options over the index's own, as for
            :class:`~geochips.ChipDataset`.
        sign: replaces the index's signer, as for :class:`~geochips.ChipDataset`.
    """
    signer = (
        index.signer
        if sign is _UNSET
        else resolve_signer(sign, (h for s in index.scenes for h in s.hrefs))
    )
    reader = Reader(gdal_options={**index.gdal_options, **(gdal_options or {})}, signer=signer)

    def one(position: int) -> int:
        scene_pos, window = index.locate(position)
        scene = index.scenes[scene_pos]
        data = reader.read(scene, window, chip_id=index.chip_id(position))
        return chip_checksum(data, scene, window)

    remote = any(hrefs.is_remote(h) for s in index.scenes for h in s.hrefs)
    workers = threads or (8 if remote else (os.cpu_count() or 1))
    try:
        with ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="geochips", initializer=reader.own_thread
        ) as pool:
            sums = np.fromiter(pool.map(one, range(len(index))), dtype=np.uint32, count=len(index))
    finally:
        reader.close()
    return index.with_columns(**{COLUMN: sums})
