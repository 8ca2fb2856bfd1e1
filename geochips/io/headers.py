"""Read scene headers (size, dtype, georeferencing, tiles), never pixels: a :class:`Scene` each.

Headers of many scenes are read concurrently (they wait on the network); the files of one
scene must share a grid unless ``grid=`` names one to resample the others onto
(:mod:`geochips.io.stacking` checks them and makes the :class:`Scene`). GCP-only scenes get
the affine transform fitted to their GCPs, scaled to the level read.
"""

from __future__ import annotations

import os
import re
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any, NamedTuple

import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioError

from geochips import hrefs
from geochips.errors import (
    IncompatibleScenesError,
    SceneHeaderError,
    SceneReadError,
)
from geochips.io.gdallog import diagnose
from geochips.io.settings import header_options, open_env
from geochips.io.signing import Signer
from geochips.io.stacking import grid_position, stack_scene, warp_level
from geochips.scene import Scene, SceneSource


def _read_one(
    href: str, overview_level: int | None, signer: Signer | None, options: dict[str, str]
) -> dict[str, Any]:
    # Set in the reading thread: rasterio's options are thread-local outside the main
    # thread. Without GDAL_DISABLE_READDIR_ON_OPEN a remote header took 10 requests instead
    # of 2 (8 of them 404s), and GDAL serialised the listings, so 32 threads read headers
    # no faster than one (benchmarks/RESULTS.md).
    with rasterio.Env(**options), open_env(href, options):
        return _read_one_in_env(href, overview_level, signer)


def _read_one_in_env(
    href: str, overview_level: int | None, signer: Signer | None
) -> dict[str, Any]:
    path = signer(href) if signer is not None else href
    with rasterio.open(path) as full:
        info: dict[str, Any] = {
            "full_shape": (full.height, full.width),
            "count": full.count,
            "dtypes": set(full.dtypes),
            "nodata": full.nodata,
            "scales": tuple(float(s) for s in full.scales),
            "offsets": tuple(float(o) for o in full.offsets),
            "overviews": full.overviews(1),
            "crs": full.crs,
            "transform": full.transform,
            "gcps": full.gcps,
            "shape": (full.height, full.width),
            "tile_shape": full.block_shapes[0],
        }
    if overview_level is not None:
        n = len(info["overviews"])
        if not 0 <= overview_level < n:
            raise SceneHeaderError(
                f"scene {hrefs.redact(href)} has {n} overview level(s) "
                f"({', '.join(f'{i}: 1/{f}' for i, f in enumerate(info['overviews'])) or 'none'}); "
                f"overview_level={overview_level} does not exist: choose one of those, or "
                "None for full resolution",
                reason="no such overview level",
            )
        with rasterio.open(path, overview_level=overview_level) as ovr:
            info["shape"] = (ovr.height, ovr.width)
            info["tile_shape"] = ovr.block_shapes[0]
            if not info["gcps"][0]:
                info["transform"] = ovr.transform
    return info


def read_header(
    source: SceneSource,
    overview_level: int | None = None,
    signer: Signer | None = None,
    grid: str | int | None = None,
    resampling: str = "nearest",
    gdal_options: Mapping[str, Any] | None = None,
) -> Scene:
    """Read the header of one scene (every file of it), without reading pixels.

    ``grid`` names the file (asset key, or position among the scene's files) whose grid
    the others are resampled onto with ``resampling``; by default every file must already
    be on the first file's grid. ``gdal_options`` extend
    :data:`geochips.io.settings.DEFAULT_GDAL_OPTIONS`.

    Raises:
        SceneHeaderError: if a file cannot be opened or lacks the overview level.
        IncompatibleScenesError: if stacked files are not on one grid (and no ``grid``
            was given), or differ in dtype or nodata.
    """
    # A scene without georeferencing is handled (georef="none"), so rasterio's warning
    # about it says nothing new.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        access = Access(signer, header_options(gdal_options))
        return _read_header(source, overview_level, access, grid, resampling)


class Access(NamedTuple):
    """How header reads reach the files: the signer and the GDAL options of each thread."""

    signer: Signer | None
    options: dict[str, str]


def _open_info(
    source: SceneSource, file: int, overview_level: int | None, access: Access
) -> dict[str, Any]:
    href = source.hrefs[file]
    message = None
    try:
        return _read_one(href, overview_level, access.signer, access.options)
    except RasterioError as exc:
        # Built outside the except block, so the error's context holds no signed URL.
        message = hrefs.redact_text(str(exc))
    except UnicodeDecodeError as exc:  # rasterio decodes GDAL's metadata text as UTF-8
        message = f"a text field of its header is not UTF-8, so the file is damaged ({exc.reason})"
    raise SceneHeaderError(
        f"cannot open scene {source.id!r} at {hrefs.redact(href)}: {message}. Check that "
        "the path or URL exists and is a raster GDAL can read (GeoTIFF/COG)",
        reason=_reason(message, remote="://" in href),
    )


_NOT_RASTER = re.compile(r"not recognized as|not a supported file format", re.IGNORECASE)


def _reason(message: str, remote: bool) -> str:
    """The short cause of a failed open: ``"not found"``, ``"HTTP 403"``, ``"not a raster"``."""
    if _NOT_RASTER.search(message):
        return "not a raster"
    cause = diagnose(message, [], remote)
    if cause.kind == "missing":
        return "not found"
    if cause.kind == "http":
        return f"HTTP {cause.status}"
    return cause.kind


def _read_header(
    source: SceneSource,
    overview_level: int | None,
    access: Access,
    grid: str | int | None = None,
    resampling: str = "nearest",
) -> Scene:
    files = range(len(source.hrefs))
    ref = 0 if grid is None else grid_position(source, grid, resampling)
    infos = [
        _open_info(source, f, overview_level, access) if grid is None or f == ref else {}
        for f in files
    ]
    levels: list[int | None] = [overview_level] * len(infos)
    warped = [False] * len(infos)
    if grid is not None:
        ref_full = infos[ref] if overview_level is None else _open_info(source, ref, None, access)
        for f in files:
            if f == ref:
                continue
            full = _open_info(source, f, None, access)
            if (full["full_shape"], full["crs"], full["transform"]) == (
                ref_full["full_shape"],
                ref_full["crs"],
                ref_full["transform"],
            ):
                infos[f] = (
                    full
                    if overview_level is None
                    else _open_info(source, f, overview_level, access)
                )
            else:
                infos[f], warped[f] = full, True
                levels[f] = warp_level(source, f, full, infos[ref])
    return stack_scene(source, infos, ref, overview_level, resampling, warped, levels)


def read_headers(
    sources: Sequence[SceneSource],
    overview_level: int | None = None,
    *,
    signer: Signer | None = None,
    workers: int = 32,
    progress: Callable[[int, int], None] | None = None,
    grid: str | int | None = None,
    resampling: str = "nearest",
    gdal_options: Mapping[str, Any] | None = None,
) -> list[Scene]:
    """Read the headers of many scenes concurrently (GDAL releases the GIL).

    Arguments as for :func:`read_header`; ``progress(done, total)`` is called after each
    scene completed (in the order they complete).

    Raises:
        SceneHeaderError: collecting every failure in ``failures`` (in the order of
            ``sources``), or the one error of a single failure. Past
            :data:`~geochips.errors.LISTED_FAILURES` failures the message counts them by
            cause and lists the first few.
    """
    access = Access(signer, header_options(gdal_options))
    results: list[Scene | None] = [None] * len(sources)
    errors: list[tuple[int, SceneReadError | IncompatibleScenesError]] = []
    # Warnings filters are process-wide, so they are set here, around all the threads.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        native_ids: list[int] = []
        with ThreadPoolExecutor(
            max_workers=max(1, min(workers, len(sources))),
            initializer=lambda: native_ids.append(threading.get_native_id()),
        ) as pool:
            futures = {
                pool.submit(_read_header, s, overview_level, access, grid, resampling): position
                for position, s in enumerate(sources)
            }
            # Counted as they complete, so a slow scene does not hold the count back.
            for done, future in enumerate(as_completed(futures), start=1):
                try:
                    results[futures[future]] = future.result()
                except (SceneReadError, IncompatibleScenesError) as exc:  # signing too
                    errors.append((futures[future], exc))
                if progress is not None:
                    progress(done, len(sources))
    _wait_until_exited(native_ids)
    failures = [exc for _, exc in sorted(errors, key=lambda e: e[0])]
    if len(failures) == 1:
        raise failures[0]
    if failures:
        raise SceneHeaderError.of_many(failures, len(sources))
    return [s for s in results if s is not None]


def _wait_until_exited(native_ids: list[int], timeout: float = 2.0) -> None:
    """Wait until the header threads have exited from the OS, not only joined in Python.

    ``join`` returns before a thread's C++ thread-local destructors run, and GDAL's (PROJ
    contexts finalising sqlite statements) take process-wide mutexes. A DataLoader forking
    its workers right after ``ChipIndex.build`` could hand them a locked mutex: the worker
    then deadlocked at its first CRS lookup (seen twice in the test suite). Linux only.
    """
    deadline = time.monotonic() + timeout
    for tid in native_ids:
        while os.path.exists(f"/proc/self/task/{tid}") and time.monotonic() < deadline:
            time.sleep(0.001)
