"""Reading windows: lazily opened rasterio handles, one small cache per process and thread.

Nothing here is opened before the first read, and nothing open crosses a process
boundary: a :class:`Reader` pickles as its settings only, and its handles are kept per
process and thread (:mod:`geochips.io.threads`), so DataLoader workers started by ``fork``
or ``spawn`` each own theirs. A file is checked against the header the index holds when it
is opened (:mod:`geochips.io.handles`); a failed remote read is tried again
(:mod:`geochips.io.retries`); a window partly outside its scene is filled around the part
read (:mod:`geochips.io.padding`).

GDAL settings for remote COGs (:mod:`geochips.io.settings`: no directory listing on open,
merged range requests, a bounded block cache; ``gdal_options`` overrides or extends them)
are in force during each read and gone after it (:meth:`Reader.scope`): the caller's
process keeps its own GDAL configuration. Only the threads of geochips' own pools keep
them set, thread-locally, between reads.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from geochips import hrefs
from geochips.errors import InvalidParameterError, SceneChangedError
from geochips.io import settings
from geochips.io.handles import Handle, HandleKey, WarpedHandle, changes
from geochips.io.padding import filled, group_by_file, inside, paste
from geochips.io.retries import describe, forget_downloads, read_retrying
from geochips.io.settings import merge_options, open_env, reads_network
from geochips.io.signing import Signer, resolve_signer
from geochips.io.threads import ThreadHandles, default_max_open
from geochips.scene import Scene
from geochips.windows import ChipWindow

__all__ = ["Reader", "default_max_open"]


class Reader:
    """Read chip windows of scenes; holds no open handle until the first read.

    Args:
        max_open: open datasets kept per thread of each process; ``None``: sized from
            the process's file-descriptor limit (:func:`default_max_open`).
        gdal_options: GDAL configuration options, merged over
            :data:`geochips.io.settings.DEFAULT_GDAL_OPTIONS`.
        signer: turns an unsigned href into a readable one, in the reading process; it is
            wrapped in a :class:`~geochips.io.signing.HrefSigner`, so a signed href is reused
            until its token nears expiry, and a failed open or read of a signed href is
            retried once with a fresh signature.
    """

    def __init__(
        self,
        *,
        max_open: int | None = None,
        gdal_options: Mapping[str, Any] | None = None,
        signer: Signer | None = None,
        retries: int = settings.READ_RETRIES,
    ) -> None:
        max_open = default_max_open() if max_open is None else max_open
        if isinstance(max_open, bool) or not isinstance(max_open, int) or max_open < 1:
            raise InvalidParameterError(f"max_open must be an int >= 1, got max_open={max_open!r}")
        self.max_open = max_open
        self.gdal_options = merge_options(gdal_options)
        self.signer = resolve_signer(signer)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise InvalidParameterError(f"retries must be an int >= 0, got retries={retries!r}")
        self.retries = retries
        self._threads = ThreadHandles(self.max_open, self.gdal_options)
        self._network: dict[tuple[str, ...], bool] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {
            "max_open": self.max_open,
            "gdal_options": self.gdal_options,
            "signer": self.signer,
            "retries": self.retries,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def scope(self, network: bool = True) -> AbstractContextManager[Any]:
        """Return the context reads of this thread run in: the GDAL options set, then undone.

        Every :meth:`read` enters it; entering it once around many reads (a batch) sets
        the options once. ``network=False`` (the reads are of local GeoTIFFs:
        :func:`~geochips.io.settings.reads_network`) leaves the default network options
        out; a read of another file adds them. In a thread :meth:`own_thread` has prepared
        it does nothing. Options the caller set before (an outer ``rasterio.Env``) are back
        after it.
        """
        return self._threads.scope(network)

    def own_thread(self) -> None:
        """Set the GDAL options for good in the calling thread, which geochips owns.

        For the initializer of geochips' thread pools: outside the main thread rasterio
        sets options thread-locally (CPLSetThreadLocalConfigOption), so they stay with that
        thread and its reads need no :meth:`scope` each.
        """
        self._threads.own_thread()

    def open_count(self) -> int:
        """Return how many datasets this process holds open, over all threads."""
        return self._threads.open_count()

    def close(self) -> None:
        """Close every handle this process opened."""
        self._threads.close()

    @staticmethod
    def _key(scene: Scene, file: int) -> HandleKey:
        if not scene.is_warped(file):
            return scene.hrefs[file], scene.overview_level
        grid = (scene.crs, tuple(scene.transform or ()), scene.height, scene.width)
        return scene.hrefs[file], (scene.file_level(file), grid, scene.resampling)

    def _handle(self, scene: Scene, file: int) -> Handle:
        """Return the cached handle of ``file``, opened (and checked) on first use."""
        cache = self._threads.cache()
        href = scene.hrefs[file]
        key = self._key(scene, file)
        path = self.signer(href) if self.signer is not None else href
        handle = cache.get(key)
        if handle is not None and cache.path(key) != path:
            cache.discard(key)  # its token nears expiry: reopen with the new signature
            handle = None
        if handle is None:
            handle = self._open(scene, file, path)
            cache.put(key, handle, path)
        return handle

    def _open(self, scene: Scene, file: int, path: str) -> Handle:
        """Open ``file`` of ``scene``, checking it still matches the header the index holds."""
        level = scene.file_level(file)
        kwargs = {} if level is None else {"overview_level": level}
        with open_env(path, self.gdal_options):
            if scene.georef == "none":
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", NotGeoreferencedWarning)
                    src = rasterio.open(path, **kwargs)
            else:
                src = rasterio.open(path, **kwargs)
        try:
            changed = changes(src, scene, file)
            if changed:
                raise SceneChangedError(
                    f"file {hrefs.redact(scene.hrefs[file])} of scene {scene.id!r} changed "
                    f"after the index was built: {'; '.join(changed)}. Rebuild the index "
                    "(ChipIndex.build) from the files as they are now, or restore the "
                    "original file"
                )
            return WarpedHandle(src, scene) if scene.is_warped(file) else src
        except BaseException:
            src.close()
            raise

    def _attempt(
        self,
        scene: Scene,
        file: int,
        indexes: list[int],
        inner: Window,
        out: np.ndarray | None,
        fresh: bool,
    ) -> np.ndarray:
        """Read once.

        A ``fresh`` attempt (a retry) reopens the file after clearing GDAL's HTTP cache of
        it, so the truncated bytes of a failed attempt are not served again, with GDAL's
        debug lines on: they name the HTTP status or transport error of a failure
        (:mod:`geochips.io.gdallog`).
        """
        if not fresh:
            data: np.ndarray = self._handle(scene, file).read(indexes, window=inner, out=out)
            return data
        self._threads.cache().discard(self._key(scene, file))
        with rasterio.Env(CPL_DEBUG="ON"):
            href = scene.hrefs[file]
            if hrefs.is_remote(href):
                path = self.signer(href) if self.signer is not None else href
                forget_downloads(path, self.gdal_options)
            data = self._handle(scene, file).read(indexes, window=inner, out=out)
        return data

    def _read_file(
        self,
        scene: Scene,
        file: int,
        indexes: list[int],
        inner: Window,
        out: np.ndarray | None,
        window: ChipWindow,
        chip_id: str | None,
    ) -> np.ndarray:
        """Read bands ``indexes`` of one file, retrying a failed remote read (``retries``)."""
        return read_retrying(
            lambda fresh: self._attempt(scene, file, indexes, inner, out, fresh),
            lambda: self._threads.cache().path(self._key(scene, file)),
            scene,
            file,
            window=window,
            chip_id=chip_id,
            retries=self.retries,
            signer=self.signer,
            gdal_options=self.gdal_options,
        )

    def read(
        self,
        scene: Scene,
        window: ChipWindow,
        bands: Sequence[int] | None = None,
        fill_value: float = 0,
        out: np.ndarray | None = None,
        chip_id: str | None = None,
    ) -> np.ndarray:
        """Return the pixels of ``window`` as a ``(bands, height, width)`` array.

        ``bands`` are 1-based positions in the stacked scene (all bands by default). The
        part of a window outside the scene (edge ``"pad"``) is set to ``fill_value``.
        ``out``, a C-contiguous array of that shape in the scene's dtype, receives the
        pixels straight from GDAL when the window lies inside one file of the scene, and
        is returned; otherwise a new array is returned and ``out`` is left alone.
        ``chip_id`` names the chip in errors.

        Raises:
            SceneReadError: the file could not be opened or read (after retries, for
                remote files), or GDAL warned while decoding it (damaged data).
            SceneChangedError: the file no longer matches the scene's header.
        """
        network = self._network.get(scene.hrefs)
        if network is None:
            network = self._network[scene.hrefs] = reads_network(scene.hrefs)
        with self._threads.scope(network):
            return self._read(scene, window, bands, fill_value, out, chip_id)

    def _read(
        self,
        scene: Scene,
        window: ChipWindow,
        bands: Sequence[int] | None,
        fill_value: float,
        out: np.ndarray | None,
        chip_id: str | None,
    ) -> np.ndarray:
        band_map = scene.band_map()
        wanted = [band_map[b - 1] for b in bands] if bands is not None else band_map
        # The part of the window inside the scene; it is the whole window unless padded.
        inner, full = inside(scene, window)
        padded = None if full else filled(window, len(wanted), fill_value, scene.dtype)
        if padded is not None and (inner.width == 0 or inner.height == 0):
            return padded
        parts = []
        # Consecutive bands of one file are read in one call.
        groups = group_by_file(wanted)
        direct = out if full and len(groups) == 1 else None
        for file, indexes in groups:
            try:
                parts.append(self._read_file(scene, file, indexes, inner, direct, window, chip_id))
            except SceneChangedError as exc:
                raise SceneChangedError(f"{exc} (reading {describe(window, chip_id)})") from None
        data = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return data if padded is None else paste(padded, data, window, inner)
