"""GDAL settings for reading COGs, local or remote, in every process and thread that reads.

:data:`DEFAULT_GDAL_OPTIONS` apply to header reads (:func:`geochips.io.headers.read_headers`)
and pixel reads (:class:`geochips.io.reader.Reader`), :data:`REMOTE_OPEN_OPTIONS` around the
opening of remote files only; ``gdal_options=`` of
:meth:`geochips.ChipIndex.build` and :class:`geochips.ChipDataset` override or extend
them. They are in force during each read only (:func:`applied`), except in geochips' own
reading threads, where rasterio sets them thread-locally once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import rasterio
from rasterio._env import del_gdal_config
from rasterio.env import get_gdal_config, set_gdal_config

from geochips import hrefs

DEFAULT_GDAL_OPTIONS: dict[str, str | int] = {
    # Adjacent tiles of one chip come back in one request.
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_MULTIPLEX": "YES",
    # Transient HTTP failures (429/5xx) are retried by GDAL itself.
    "GDAL_HTTP_MAX_RETRY": "3",
    "GDAL_HTTP_RETRY_DELAY": "0.5",
    # No request waits forever: a server that does not answer, or a body that stalls, ends
    # the request with an error (which the reader retries, see READ_RETRIES). A transfer
    # that keeps moving faster than the low-speed limit is never cut short by it, and
    # GDAL_HTTP_TIMEOUT caps even a trickle.
    "GDAL_HTTP_CONNECTTIMEOUT": "10",
    "GDAL_HTTP_LOW_SPEED_LIMIT": "1024",
    "GDAL_HTTP_LOW_SPEED_TIME": "30",
    "GDAL_HTTP_TIMEOUT": "300",
    # Uncompressed local GeoTIFFs (localized copies) are read through a memory map of the
    # file, not a read() into GDAL's block cache and a copy out of it: 2.4x the chips/s
    # of a 512x512 uint16 tile (9,000 against 3,800 a second, issue 15), the page cache
    # shared by every worker. GDAL maps only uncompressed files in native byte order, and
    # reads tiles the file lacks as before. A file truncated in place while mapped kills
    # the process (SIGBUS): "NO" in gdal_options= turns it off.
    "GTIFF_VIRTUAL_MEM_IO": "YES",
    # Decoded blocks cached per process, in MB (as GDAL reads it: below 100000 is MB): bounded,
    # so many workers stay small, and large enough to keep the tiles that neighbouring
    # chips of an overlapping grid share (128 MB = 256 uint16 512x512 tiles).
    "GDAL_CACHEMAX": 128,
}


READ_RETRIES = 3
"""Attempts after the first for a failed read of a remote file (reset, short body, stall,
5xx after GDAL's own retries, a refused signature): each reopens the file with GDAL's HTTP
cache of it cleared, so a truncated download is not served again."""

RETRY_BACKOFF = 0.5
"""Seconds before the first retry; doubled for each next one (0.5, 1, 2)."""

READ_BUDGET = 300.0
"""Seconds after the first attempt of a read past which no new attempt starts."""


REMOTE_OPEN_OPTIONS: dict[str, str] = {
    # Opening /vsicurl/ files must not list the "directory" or probe for side-car files
    # (.aux.xml, .ovr, .msk, .tfw...): one HEAD and one ranged GET per file. With it, GDAL
    # needs no CPL_VSIL_CURL_ALLOWED_EXTENSIONS, which would refuse hrefs without a .tif
    # extension (STAC asset hrefs, presigned URLs). Only around remote opens: on local
    # files it would hide external .ovr overviews and .aux.xml metadata (gdaladdo -ro),
    # and listing a local folder costs nothing.
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
}


def open_env(
    href: str, options: Mapping[str, Any], extra: Mapping[str, str] | None = None
) -> AbstractContextManager[Any]:
    """Return the context to open ``href`` in: :data:`REMOTE_OPEN_OPTIONS` for remote hrefs.

    Options the user gave (``options``) win over them; ``extra`` is added for remote hrefs.
    """
    if not hrefs.is_remote(href):
        return nullcontext()
    scoped = {k: v for k, v in REMOTE_OPEN_OPTIONS.items() if k not in options}
    scoped.update(extra or {})
    return rasterio.Env(**scoped) if scoped else nullcontext()


LOCAL_SUFFIXES = (".tif", ".tiff")
"""Local files with these suffixes read no network resource (a VRT, say, can name URLs)."""
NETWORK_OPTIONS = frozenset(k for k in DEFAULT_GDAL_OPTIONS if k.startswith("GDAL_HTTP_"))
"""Default options that act on network reads only."""


def reads_network(paths: Iterable[str]) -> bool:
    """Whether reading ``paths`` may reach the network: anything but local GeoTIFFs."""
    return not all(
        not hrefs.is_remote(p) and not p.startswith("/vsi") and p.lower().endswith(LOCAL_SUFFIXES)
        for p in paths
    )


def local_values(values: Mapping[str, str | int]) -> dict[str, str | int]:
    """``values`` (:func:`config_values`) without the network options left at their default.

    What local GeoTIFF reads need: a cached-tile read scoped with the eight default network
    options costs ~16 µs more (65 against 50 µs a chip, issue 15) for nothing. Options a
    user set to other values are kept.
    """
    defaults = config_values(DEFAULT_GDAL_OPTIONS)
    return {k: v for k, v in values.items() if k not in NETWORK_OPTIONS or v != defaults[k]}


def apply(options: Mapping[str, str | int]) -> dict[str, str | None]:
    """Set GDAL ``options`` (as :func:`config_values` gives them); return what was set before.

    In the main thread GDAL's configuration is process-wide, so a read must not leave its
    options behind: :func:`restore` puts back the returned values (unset ones unset). ~12
    µs for the default options, a sixth of a ``rasterio.Env`` (~70 µs).
    """
    saved = {key: get_gdal_config(key, normalize=False) for key in options}
    for key, value in options.items():
        set_gdal_config(key, value)
    return saved


def restore(saved: Mapping[str, str | None]) -> None:
    """Put back the GDAL configuration :func:`apply` returned."""
    for key, old in saved.items():
        if old is None:
            del_gdal_config(key)
        else:
            set_gdal_config(key, old, normalize=False)


@contextmanager
def applied(options: Mapping[str, str | int]) -> Iterator[None]:
    """:func:`apply` ``options``, then :func:`restore` what was."""
    saved = apply(options)
    try:
        yield
    finally:
        restore(saved)


def config_values(options: Mapping[str, Any]) -> dict[str, str | int]:
    """``options`` as GDAL is given them: GDAL_CACHEMAX in bytes, every other one a string."""
    return {
        key: cache_bytes(value) if key == "GDAL_CACHEMAX" else str(value)
        for key, value in options.items()
    }


def merge_options(options: Mapping[str, Any] | None = None) -> dict[str, str | int]:
    """Return :data:`DEFAULT_GDAL_OPTIONS` updated by ``options``, values normalised."""
    return {**DEFAULT_GDAL_OPTIONS, **{k: gdal_value(v) for k, v in (options or {}).items()}}


def header_options(options: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Return the options for reading headers, as strings for ``rasterio.Env``.

    The block cache size is left alone: headers decode no block.
    """
    return {k: str(v) for k, v in merge_options(options).items() if k != "GDAL_CACHEMAX"}


def cache_bytes(value: str | int) -> int:
    """GDAL_CACHEMAX as GDAL reads it (MB below 100000, else bytes), in bytes.

    rasterio passes an int GDAL_CACHEMAX straight to GDALSetCacheMax64, which takes bytes:
    ``128`` would be a 128-byte block cache, so every tile shared by overlapping chips was
    decoded again (benchmarks/RESULTS.md, 512/256 grid).
    """
    mb_or_bytes = int(value)
    return mb_or_bytes * 1024 * 1024 if mb_or_bytes < 100_000 else mb_or_bytes


def gdal_value(value: Any) -> str | int:
    """Return an option value as rasterio takes it: ``YES``/``NO`` for bools, ints as ints.

    GDAL_CACHEMAX must be an int for rasterio (see :func:`cache_bytes`); the reader turns
    every other option into a string when it sets it.
    """
    if isinstance(value, bool):
        return "YES" if value else "NO"
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return int(value)
    return str(value)
