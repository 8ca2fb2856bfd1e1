"""Reading windows: lazily opened rasterio handles, one small cache per process and thread.

Nothing here is opened before the first read, and nothing open crosses a process
boundary: a :class:`Reader` pickles as its settings only, notices a fork (the process id
changes) and then reopens, so DataLoader workers started by ``fork`` or ``spawn`` each
own their handles. rasterio datasets are not thread-safe, so each thread has its own
bounded LRU cache (``max_open`` handles; the least recently used is closed).

GDAL settings for remote COGs (:mod:`geochips.settings`: no directory listing on open,
merged range requests, a bounded block cache) are set in every thread of every process
that reads, before its first open; ``gdal_options`` overrides or extends them.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, TypeAlias

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.env import set_gdal_config
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.io import DatasetReader
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from geochips import hrefs
from geochips.errors import InvalidParameterError, SceneReadError
from geochips.scenes import Scene
from geochips.settings import cache_bytes, merge_options, open_env
from geochips.signing import Signer, resolve_signer
from geochips.windows import ChipWindow

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


class Reader:
    """Read chip windows of scenes; holds no open handle until the first read.

    Args:
        max_open: open datasets kept per thread of each process.
        gdal_options: GDAL configuration options, merged over
            :data:`geochips.settings.DEFAULT_GDAL_OPTIONS`.
        signer: turns an unsigned href into a readable one, in the reading process; it is
            wrapped in a :class:`~geochips.signing.HrefSigner`, so a signed href is reused
            until its token nears expiry, and a failed open or read of a signed href is
            retried once with a fresh signature.
    """

    def __init__(
        self,
        *,
        max_open: int = 8,
        gdal_options: Mapping[str, Any] | None = None,
        signer: Signer | None = None,
    ) -> None:
        if isinstance(max_open, bool) or not isinstance(max_open, int) or max_open < 1:
            raise InvalidParameterError(f"max_open must be an int >= 1, got max_open={max_open!r}")
        self.max_open = max_open
        self.gdal_options = merge_options(gdal_options)
        self.signer = resolve_signer(signer)
        self._pid: int | None = None
        self._local = threading.local()
        self._caches: list[HandleCache] = []
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"max_open": self.max_open, "gdal_options": self.gdal_options, "signer": self.signer}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def _cache(self) -> HandleCache:
        pid = os.getpid()
        if self._pid != pid:
            with self._lock:
                if self._pid != pid:
                    # A forked child inherits the parent's handles in memory: forget them
                    # without closing (closing would touch the parent's file state).
                    self._local = threading.local()
                    self._caches = []
                    self._pid = pid
        cache: HandleCache | None = getattr(self._local, "cache", None)
        if cache is None:
            # Outside the main thread rasterio sets options thread-locally
            # (CPLSetThreadLocalConfigOption), so every reading thread applies them once:
            # set only by the first thread of a __getitems__ pool, the other threads
            # probed for side-car files (404s) on each open.
            for key, value in self.gdal_options.items():
                set_gdal_config(key, cache_bytes(value) if key == "GDAL_CACHEMAX" else str(value))
            cache = HandleCache(self.max_open)
            self._local.cache = cache
            with self._lock:
                self._caches.append(cache)
        return cache

    def open_count(self) -> int:
        """Return how many datasets this process holds open, over all threads."""
        return sum(len(c) for c in self._caches) if self._pid == os.getpid() else 0

    def close(self) -> None:
        """Close every handle this process opened."""
        if self._pid == os.getpid():
            with self._lock:
                for cache in self._caches:
                    cache.clear()

    @staticmethod
    def _key(scene: Scene, file: int) -> HandleKey:
        if not scene.is_warped(file):
            return scene.hrefs[file], scene.overview_level
        grid = (scene.crs, tuple(scene.transform or ()), scene.height, scene.width)
        return scene.hrefs[file], (scene.file_level(file), grid, scene.resampling)

    def _handle(self, scene: Scene, file: int) -> Handle:
        cache = self._cache()
        href = scene.hrefs[file]
        key = self._key(scene, file)
        path = self.signer(href) if self.signer is not None else href
        handle = cache.get(key)
        if handle is not None and cache.path(key) != path:
            cache.discard(key)  # its token nears expiry: reopen with the new signature
            handle = None
        if handle is None:
            handle, failure = self._try_open(scene, file, path)
            if handle is None and self.signer is not None and path != href:
                # A refused signature (HTTP 403, expired or revoked token): sign afresh once.
                path = self.signer.refresh(href, failed=path)
                handle, failure = self._try_open(scene, file, path)
            if handle is None:
                raise self._open_error(scene, href, failure)
            cache.put(key, handle, path)
        return handle

    def _open(self, scene: Scene, file: int, path: str) -> Handle:
        level = scene.file_level(file)
        kwargs = {} if level is None else {"overview_level": level}
        with open_env(path, self.gdal_options):
            if scene.georef == "none":
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", NotGeoreferencedWarning)
                    return rasterio.open(path, **kwargs)
            src = rasterio.open(path, **kwargs)
        return WarpedHandle(src, scene) if scene.is_warped(file) else src

    def _try_open(self, scene: Scene, file: int, path: str) -> tuple[Handle | None, str]:
        # Errors are turned into text here, so that the SceneReadError raised later has no
        # exception context that could hold the signed path.
        try:
            return self._open(scene, file, path), ""
        except RasterioError as exc:
            return None, hrefs.redact_text(str(exc))

    @staticmethod
    def _open_error(scene: Scene, href: str, failure: str) -> SceneReadError:
        return SceneReadError(
            f"cannot open scene {scene.id!r} at {hrefs.redact(href)}: "
            f"{failure}. The index was built from this file: "
            "check it still exists and is readable"
            + (", and that its signer (sign=) gives access" if hrefs.is_remote(href) else "")
        )

    def _read_file(
        self,
        scene: Scene,
        file: int,
        indexes: list[int],
        inner: Window,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """Read bands ``indexes`` of one file; a refused signed href is re-signed once."""
        handle = self._handle(scene, file)
        try:
            first: np.ndarray = handle.read(indexes, window=inner, out=out)
            return first
        except RasterioError:
            href = scene.hrefs[file]
            key = self._key(scene, file)
            path = self._cache().path(key)
            if self.signer is None or path in ("", href):
                raise
            # GDAL reports a 403 on a block as a bare read failure: the token may have
            # expired since the file was opened. Reopen with a fresh signature, once.
            self._cache().discard(key)
            self.signer.refresh(href, failed=path)
            data: np.ndarray = self._handle(scene, file).read(indexes, window=inner, out=out)
            return data

    def read(
        self,
        scene: Scene,
        window: ChipWindow,
        bands: Sequence[int] | None = None,
        fill_value: float = 0,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """Return the pixels of ``window`` as a ``(bands, height, width)`` array.

        ``bands`` are 1-based positions in the stacked scene (all bands by default). The
        part of a window outside the scene (edge ``"pad"``) is set to ``fill_value``.
        ``out``, a C-contiguous array of that shape in the scene's dtype, receives the
        pixels straight from GDAL when the window lies inside one file of the scene, and
        is returned; otherwise a new array is returned and ``out`` is left alone.
        """
        band_map = scene.band_map()
        wanted = [band_map[b - 1] for b in bands] if bands is not None else band_map
        # The part of the window inside the scene; it is the whole window unless padded.
        r0, c0 = max(window.row_off, 0), max(window.col_off, 0)
        r1 = min(window.row_off + window.height, scene.height)
        c1 = min(window.col_off + window.width, scene.width)
        inner = Window(col_off=c0, row_off=r0, width=max(c1 - c0, 0), height=max(r1 - r0, 0))
        full = (r0, c0, r1, c1) == (
            window.row_off,
            window.col_off,
            window.row_off + window.height,
            window.col_off + window.width,
        )
        padded = (
            None
            if full
            else np.full((len(wanted), window.height, window.width), fill_value, dtype=scene.dtype)
        )
        if padded is not None and (inner.width == 0 or inner.height == 0):
            return padded
        parts = []
        # Consecutive bands of one file are read in one call.
        groups = _group_by_file(wanted)
        direct = out if full and len(groups) == 1 else None
        for file, indexes in groups:
            failure = None
            try:
                parts.append(self._read_file(scene, file, indexes, inner, direct))
            except RasterioError as exc:
                failure = hrefs.redact_text(str(exc))
            if failure is not None:  # raised here: no exception context holds a signed path
                raise SceneReadError(
                    f"cannot read window (row_off={window.row_off}, col_off={window.col_off}, "
                    f"height={window.height}, width={window.width}) of scene {scene.id!r} at "
                    f"{hrefs.redact(scene.hrefs[file])}: {failure}. The file may be "
                    "truncated or corrupt; re-download it or drop the scene"
                )
        data = parts[0] if len(parts) == 1 else np.concatenate(parts)
        if padded is None:
            return data
        padded[
            :, r0 - window.row_off : r1 - window.row_off, c0 - window.col_off : c1 - window.col_off
        ] = data
        return padded


def _group_by_file(wanted: list[tuple[int, int]]) -> list[tuple[int, list[int]]]:
    groups: list[tuple[int, list[int]]] = []
    for file, band in wanted:
        if groups and groups[-1][0] == file:
            groups[-1][1].append(band)
        else:
            groups.append((file, [band]))
    return groups
