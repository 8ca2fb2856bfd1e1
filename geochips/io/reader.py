"""Reading windows: lazily opened rasterio handles, one small cache per process and thread.

Nothing here is opened before the first read, and nothing open crosses a process
boundary: a :class:`Reader` pickles as its settings only, notices a fork (the process id
changes) and then reopens, so DataLoader workers started by ``fork`` or ``spawn`` each
own their handles. rasterio datasets are not thread-safe, so each thread has its own
bounded LRU cache (``max_open`` handles; the least recently used is closed).

GDAL settings for remote COGs (:mod:`geochips.io.settings`: no directory listing on open,
merged range requests, a bounded block cache; ``gdal_options`` overrides or extends them)
are in force during each read and gone after it (:meth:`Reader.scope`): the caller's
process keeps its own GDAL configuration. Only the threads of geochips' own pools keep
them set, thread-locally, between reads.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import numpy as np
import rasterio
from rasterio.env import set_gdal_config
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.windows import Window

from geochips import hrefs
from geochips.errors import InvalidParameterError, SceneChangedError, SceneReadError
from geochips.io import gdallog, settings
from geochips.io.handles import Handle, HandleCache, HandleKey, WarpedHandle, changes
from geochips.io.settings import config_values, merge_options, open_env
from geochips.io.signing import Signer, resolve_signer
from geochips.scene import Scene
from geochips.windows import ChipWindow

MAX_OPEN_RANGE = (8, 256)
"""Bounds of :func:`default_max_open`, handles per thread."""
SHARING_THREADS = 8
"""Reading threads a process is assumed to run (``__getitems__`` uses 8 for remote scenes)."""


def default_max_open() -> int:
    """Handles each reading thread keeps: a quarter of the file-descriptor limit, shared.

    Shuffled reads over many scenes reopened a file for almost every chip with 8 handles
    (669 chips/s over 104 scenes, 5,265 with all open: issue 14). An open COG holds one
    descriptor and its parsed header (a few kB; the decoded tiles live in GDAL's block
    cache, bounded apart). So a quarter of the soft ``RLIMIT_NOFILE`` is shared by
    :data:`SHARING_THREADS` threads, within :data:`MAX_OPEN_RANGE`: 256 with the usual
    container limits (20k descriptors or more), 32 with a desktop's 1024, and 32 where
    there is no ``resource`` module (Windows).
    """
    try:
        import resource  # POSIX only
    except ImportError:
        return 32
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_OPEN_RANGE[1]
    low, high = MAX_OPEN_RANGE
    return max(low, min(high, soft // 4 // SHARING_THREADS))


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
        self._pid: int | None = None
        self._local = threading.local()
        self._caches: list[HandleCache] = []
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {
            "max_open": self.max_open,
            "gdal_options": self.gdal_options,
            "signer": self.signer,
            "retries": self.retries,
        }

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
            cache = HandleCache(self.max_open)
            self._local.cache = cache
            with self._lock:
                self._caches.append(cache)
        return cache

    def scope(self) -> AbstractContextManager[Any]:
        """Return the context reads of this thread run in: the GDAL options set, then undone.

        Every :meth:`read` enters it; entering it once around many reads (a batch) sets
        the options once. In a thread :meth:`own_thread` has prepared it does nothing.
        Options the caller set before (an outer ``rasterio.Env``) are back after it.
        """
        self._cache()  # a fork forgets the parent's thread state first
        if getattr(self._local, "scoped", False):
            return nullcontext()
        return self._scoped()

    @contextmanager
    def _scoped(self) -> Iterator[None]:
        with settings.applied(config_values(self.gdal_options)):
            self._local.scoped = True
            try:
                yield
            finally:
                self._local.scoped = False

    def own_thread(self) -> None:
        """Set the GDAL options for good in the calling thread, which geochips owns.

        For the initializer of geochips' thread pools: outside the main thread rasterio
        sets options thread-locally (CPLSetThreadLocalConfigOption), so they stay with that
        thread and its reads need no :meth:`scope` each.
        """
        if threading.current_thread() is threading.main_thread():
            return  # process-wide there: each read scopes its options instead
        self._cache()
        for key, value in config_values(self.gdal_options).items():
            set_gdal_config(key, value)
        self._local.scoped = True

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
        """Return the cached handle of ``file``, opened (and checked) on first use."""
        cache = self._cache()
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
        self._cache().discard(self._key(scene, file))
        with rasterio.Env(CPL_DEBUG="ON"):
            href = scene.hrefs[file]
            if hrefs.is_remote(href):
                self._forget_downloads(self.signer(href) if self.signer is not None else href)
            data = self._handle(scene, file).read(indexes, window=inner, out=out)
        return data

    def _forget_downloads(self, path: str) -> None:
        """Drop what GDAL's HTTP cache holds of ``path`` (a failed read may have left part).

        Opening a file with ``CPL_VSIL_CURL_NON_CACHED`` naming it clears its cached
        ranges; the handle itself is closed at once.
        """
        with open_env(path, self.gdal_options, {"CPL_VSIL_CURL_NON_CACHED": _vsi_path(path)}):
            rasterio.open(path).close()

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
        """Read bands ``indexes`` of one file, retrying a failed remote read.

        Remote reads get :data:`~geochips.io.settings.READ_RETRIES` more attempts with
        backoff, within :data:`~geochips.io.settings.READ_BUDGET` seconds; each retry reopens
        the file with its HTTP cache cleared (and a refused signed href signed afresh), and
        stops early when GDAL's answer says trying again cannot help (404, damaged tile).
        """
        href = scene.hrefs[file]
        remote = hrefs.is_remote(href)
        signed = self.signer is not None
        attempts = 1 + (self.retries if remote or signed else 0)
        started = time.monotonic()
        cause: gdallog.Cause | None = None
        made = 0
        for attempt in range(attempts):
            made = attempt + 1
            error_text = ""
            try:
                with gdallog.capture(debug=attempt > 0) as records:
                    data = self._attempt(scene, file, indexes, inner, out, fresh=attempt > 0)
            except RasterioError as exc:
                # Only text leaves this block: no exception context may hold a signed path.
                error_text = _error_chain(exc)
            if error_text:
                cause = gdallog.diagnose(error_text, records, remote)
            else:
                # GDAL may return pixels and only warn: a corrupt JPEG tile decodes wrong.
                cause = gdallog.warned_cause(records)
                if cause is None:
                    return data
            if cause.persistent or attempt + 1 == attempts:
                break
            if cause.kind == "http" and attempt > 0 and not (cause.status == 403 and signed):
                break  # GDAL retried this status itself (GDAL_HTTP_MAX_RETRY) on each attempt
            if time.monotonic() - started > settings.READ_BUDGET:
                break
            if self.signer is not None:
                path = self._cache().path(self._key(scene, file)) or self.signer(href)
                if path != href:
                    self.signer.refresh(href, failed=path)
            time.sleep(settings.RETRY_BACKOFF * 2**attempt)
        assert cause is not None
        raise SceneReadError(
            f"cannot read {_describe(window, chip_id)} of scene {scene.id!r} at "
            f"{hrefs.redact(href)}: "
            f"{cause.text}; {made} attempt{'s' if made > 1 else ''} in "
            f"{time.monotonic() - started:.1f} s. "
            + gdallog.advice(
                cause,
                remote=remote,
                signed=self.signer is not None and self.signer(href) != href,
                options=self.gdal_options,
            )
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
        with self.scope():
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
            try:
                parts.append(self._read_file(scene, file, indexes, inner, direct, window, chip_id))
            except SceneChangedError as exc:
                raise SceneChangedError(f"{exc} (reading {_describe(window, chip_id)})") from None
        data = parts[0] if len(parts) == 1 else np.concatenate(parts)
        if padded is None:
            return data
        padded[
            :, r0 - window.row_off : r1 - window.row_off, c0 - window.col_off : c1 - window.col_off
        ] = data
        return padded


def _describe(window: ChipWindow, chip_id: str | None) -> str:
    """Name a chip and its window in a message."""
    text = (
        f"window (row_off={window.row_off}, col_off={window.col_off}, "
        f"height={window.height}, width={window.width})"
    )
    return text if chip_id is None else f"chip {chip_id!r}, {text}"


def _error_chain(exc: BaseException) -> str:
    """GDAL's messages in ``exc`` and its causes, most specific first, redacted.

    rasterio raises "Read failed. See previous exception for details." and chains GDAL's
    own errors as causes ("TIFFFillTile: Read error ... got 0 bytes, expected 119771").
    """
    messages: list[str] = []
    seen: BaseException | None = exc
    while seen is not None and len(messages) < 8:
        text = str(seen)
        if text and "See previous exception" not in text and text not in messages:
            messages.append(text)
        seen = seen.__cause__
    return hrefs.redact_text(" <- ".join(reversed(messages)) or type(exc).__name__)


def _vsi_path(path: str) -> str:
    """The GDAL /vsi path of ``path``, as GDAL's HTTP cache names the file."""
    if path.startswith("/vsi"):
        return path
    scheme = path.split("://", 1)[0].lower() if "://" in path else ""
    if scheme in ("http", "https", "ftp"):
        return f"/vsicurl/{path}"
    if scheme in ("s3", "gs", "az", "oss"):
        return f"/vsi{scheme}/{path.split('://', 1)[1]}"
    return path


def _group_by_file(wanted: list[tuple[int, int]]) -> list[tuple[int, list[int]]]:
    groups: list[tuple[int, list[int]]] = []
    for file, band in wanted:
        if groups and groups[-1][0] == file:
            groups[-1][1].append(band)
        else:
            groups.append((file, [band]))
    return groups
