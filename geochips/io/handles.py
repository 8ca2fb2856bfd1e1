"""Open datasets: a bounded LRU of handles, warped handles, and the check of a file on open.

A handle is a rasterio dataset opened at a scene's level, or a GDAL warped VRT over one
for a file resampled onto the scene's grid. Each time a process opens a file,
:func:`changes` compares it with the scene header the index holds, so a file replaced
after indexing is refused instead of read.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import TypeAlias

import numpy as np
from rasterio.enums import Resampling
from rasterio.io import DatasetReader
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from geochips.scene import Scene

HandleKey: TypeAlias = tuple[str, Hashable]
"""``(href, how it is opened)``: the overview level, or the whole warp for a resampled file."""


class WarpedHandle:
    """A file opened at ``level`` and resampled onto a scene's grid by a GDAL warped VRT."""

    def __init__(self, src: DatasetReader, scene: Scene) -> None:
        self._src = src
        try:
            self._vrt = WarpedVRT(
                src,
                crs=scene.crs,
                transform=scene.transform,
                width=scene.width,
                height=scene.height,
                resampling=Resampling[scene.resampling or "nearest"],
            )
        except Exception:
            src.close()
            raise

    def read(self, indexes: list[int], window: Window, out: np.ndarray | None = None) -> np.ndarray:
        """Read ``indexes`` in ``window`` of the scene's grid (into ``out`` when given)."""
        data: np.ndarray = self._vrt.read(indexes, window=window, out=out)
        return data

    def close(self) -> None:
        """Close the warp and the file under it."""
        self._vrt.close()
        self._src.close()


Handle: TypeAlias = DatasetReader | WarpedHandle


class HandleCache:
    """A bounded LRU of open datasets, keyed by (href, how it is opened)."""

    def __init__(self, max_open: int) -> None:
        self.max_open = max_open
        self._open: OrderedDict[HandleKey, Handle] = OrderedDict()
        self._paths: dict[HandleKey, str] = {}

    def get(self, key: HandleKey) -> Handle | None:
        """Return the open dataset for ``key`` (marking it recently used), or ``None``."""
        handle = self._open.get(key)
        if handle is not None:
            self._open.move_to_end(key)
        return handle

    def put(self, key: HandleKey, handle: Handle, path: str = "") -> None:
        """Keep ``handle`` open, closing the least recently used one beyond ``max_open``.

        ``path`` is what was opened (the signed href), kept to notice a re-signed href.
        """
        self._open[key] = handle
        self._paths[key] = path
        while len(self._open) > self.max_open:
            old_key, oldest = self._open.popitem(last=False)
            self._paths.pop(old_key, None)
            oldest.close()

    def path(self, key: HandleKey) -> str:
        """Return the path ``key``'s handle was opened with (``""`` if none is open)."""
        return self._paths.get(key, "")

    def discard(self, key: HandleKey) -> None:
        """Close and forget ``key``'s handle, if open."""
        handle = self._open.pop(key, None)
        self._paths.pop(key, None)
        if handle is not None:
            handle.close()

    def __len__(self) -> int:
        return len(self._open)

    def clear(self) -> None:
        """Close every handle."""
        self._paths.clear()
        while self._open:
            self._open.popitem()[1].close()


def changes(src: DatasetReader, scene: Scene, file: int) -> list[str]:
    """What differs between an opened file and the scene header the index holds."""
    changed = []
    count = scene.band_counts[file]
    if src.count != count:
        changed.append(f"{src.count} bands, the index has {count}")
    dtypes = set(src.dtypes)
    if dtypes != {scene.dtype}:
        changed.append(f"dtype {'/'.join(sorted(dtypes))}, the index has {scene.dtype}")
    if scene.is_warped(file):
        return changed  # read through a warp: its own grid may differ from the scene's
    if (src.height, src.width) != (scene.height, scene.width):
        level = (
            "full resolution"
            if scene.file_level(file) is None
            else (f"overview level {scene.file_level(file)}")
        )
        changed.append(
            f"{src.height}x{src.width} pixels at {level}, the index has "
            f"{scene.height}x{scene.width}"
        )
    if scene.georef == "transform" and scene.transform is not None:
        if not src.transform.almost_equals(scene.transform, precision=1e-9 * _scale(scene)):
            changed.append(
                f"transform {tuple(src.transform)[:6]}, the index has {tuple(scene.transform)[:6]}"
            )
    elif scene.georef == "gcps":
        gcps = src.gcps[0] if src.gcps else []
        if len(gcps) != len(scene.gcps):
            changed.append(f"{len(gcps)} GCPs, the index has {len(scene.gcps)}")
    return changed


def _scale(scene: Scene) -> float:
    """A tolerance unit for transforms: the largest coefficient of the scene's transform."""
    t = scene.transform
    return max(1.0, *(abs(v) for v in tuple(t)[:6])) if t is not None else 1.0
