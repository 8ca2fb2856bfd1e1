"""Coarse reads of a scene's pixels from its overviews, within a pixel budget.

:func:`read_coarse` is what :func:`geochips.band_stats` reads: one area of a scene (in the
scene's read grid), from the finest overview whose read of that area fits ``max_pixels``
per band. When even the coarsest overview does not fit, it is read decimated (GDAL
nearest) to the budget. A file without an overview coarser than the scene's level can
only be read decimated from the level itself: :attr:`CoarseRead.full_resolution` says so,
and the caller decides what to tell the user.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.windows import Window

from geochips import hrefs
from geochips.errors import InvalidParameterError, SceneReadError
from geochips.io.settings import header_options, open_env
from geochips.scene import Scene

R = TypeVar("R")
_Placed = tuple[np.ndarray, np.ndarray, float, str, bool, bool, float, float]
"""The fields of a :class:`CoarseRead` after ``data``: where a file's coarse pixels sit."""


@dataclass(frozen=True)
class CoarseRead:
    """Pixels of an area of a scene, read coarse, and where each one sits in the scene."""

    data: np.ndarray
    """``(bands, h, w)`` in the scene's dtype."""
    row_centers: np.ndarray
    """Centre of each coarse row, in rows of the scene's read grid."""
    col_centers: np.ndarray
    """Centre of each coarse column, in columns of the scene's read grid."""
    weight: float
    """Pixels of the scene's read grid that one coarse pixel stands for."""
    how: str
    """How it was read, e.g. ``"overview 1 (1/4)"``."""
    full_resolution: bool
    """True when the scene's own level had to be read (decimated): it has no overview."""
    decimated: bool
    """True when the level read was decimated to the budget (GDAL nearest), not read whole."""
    row_step: float
    """Rows of the scene's read grid between neighbouring coarse rows."""
    col_step: float
    """Columns of the scene's read grid between neighbouring coarse columns."""


@dataclass(frozen=True)
class _Level:
    level: int | None  # overview level of the file to open (None: full resolution)
    factor: float  # full-resolution pixels per pixel of that level, along one axis


def read_coarse(
    scene: Scene,
    signer: Any,
    area: tuple[int, int, int, int],
    bands: list[int],
    max_pixels: int,
    gdal_options: Mapping[str, Any] | None = None,
) -> CoarseRead:
    """Read ``area`` = ``(row0, col0, row1, col1)`` of ``scene`` (its read grid), coarse.

    ``bands`` are 1-based positions in the stacked scene. Each file picks its level by the
    same rule; files after the first are read onto the first one's coarse grid (GDAL
    nearest), which changes nothing when, as usual, they have the same overviews.

    Raises:
        InvalidParameterError: for a scene whose files are resampled onto its grid.
        SceneReadError: naming the scene and file, if a file cannot be read.
    """
    if any(scene.is_warped(f) for f in range(len(scene.hrefs))):
        raise InvalidParameterError(
            f"scene {scene.name} resamples some of its files onto its grid (grid=...); "
            "band statistics read each file's own overviews and cannot do that yet. Compute "
            "them on an index built without grid= (one per asset grid)"
        )
    options = header_options(gdal_options)
    wanted: dict[int, list[int]] = {}
    for position, (file, band) in enumerate(scene.band_map(), start=1):
        if position in bands:
            wanted.setdefault(file, []).append(band)
    parts: dict[tuple[int, int], np.ndarray] = {}
    first: _Placed | None = None
    shape: tuple[int, int] | None = None
    for file in sorted(wanted):
        data, placed = open_and_read(
            scene,
            signer,
            scene.hrefs[file],
            options,
            partial(
                _read_file,
                scene=scene,
                area=area,
                bands=wanted[file],
                budget=max_pixels,
                shape=shape,
            ),
            what="a coarse version",
            fix="Check that the file is readable",
        )
        if first is None:
            first, shape = placed, data.shape[1:]
        for band, plane in zip(wanted[file], data, strict=True):
            parts[(file, band)] = plane
    assert first is not None and shape is not None
    order = [scene.band_map()[b - 1] for b in bands]  # in the order asked for
    stacked = np.stack([parts[fb] for fb in order])
    return CoarseRead(stacked, *first)


def open_and_read(
    scene: Scene,
    signer: Any,
    href: str,
    options: Mapping[str, str],
    read: Callable[[str], R],
    *,
    what: str,
    fix: str,
) -> R:
    """Return ``read(path)`` of one file of ``scene``, under the reader's GDAL settings.

    Raises:
        SceneReadError: naming ``what`` was read, the scene and the file (no token), and
            ``fix``.
    """
    path = signer(href) if signer is not None else href
    try:
        with warnings.catch_warnings(), rasterio.Env(**options), open_env(path, options):
            # Scenes without georeferencing are indexed on purpose (georef="none").
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return read(path)
    except RasterioError as exc:
        failure = hrefs.redact_text(str(exc))  # text only: no context holds the token
    except UnicodeDecodeError as exc:  # rasterio decodes GDAL's metadata text as UTF-8
        failure = f"a text field of its header is not UTF-8, so the file is damaged ({exc.reason})"
    raise SceneReadError(
        f"cannot read {what} of scene {scene.id!r} at {hrefs.redact(href)}: {failure}. {fix}"
    )


def _choose(full: Any, scene: Scene, area: tuple[int, int, int, int], max_pixels: int) -> _Level:
    """The finest overview (no finer than the scene) whose read of ``area`` fits the budget."""
    read_factor = scene.full_shape[0] / scene.height if scene.height else 1.0
    full_pixels = (area[2] - area[0]) * (area[3] - area[1]) * read_factor**2
    usable = [
        _Level(k, float(f))
        for k, f in enumerate(full.overviews(1))
        if f >= read_factor * 0.999 and f > 1
    ]
    for candidate in usable:
        if full_pixels / candidate.factor**2 <= max_pixels:
            return candidate
    if usable:
        return usable[-1]
    return _Level(None, read_factor)  # no overview: only the scene's own level is there


def _read_file(
    path: str,
    *,
    scene: Scene,
    area: tuple[int, int, int, int],
    bands: list[int],
    budget: int,
    shape: tuple[int, int] | None,
) -> tuple[np.ndarray, _Placed]:
    with rasterio.open(path) as full:
        chosen = _choose(full, scene, area, budget)
    opener = {} if chosen.level is None else {"overview_level": chosen.level}
    with rasterio.open(path, **opener) as src:
        sr, sc = src.height / scene.height, src.width / scene.width
        r0, c0 = math.floor(area[0] * sr), math.floor(area[1] * sc)
        r1 = min(src.height, max(r0 + 1, math.ceil(area[2] * sr)))
        c1 = min(src.width, max(c0 + 1, math.ceil(area[3] * sc)))
        h, w = r1 - r0, c1 - c0
        if shape is None:
            step = max(1.0, math.sqrt(h * w / budget))
            shape = (max(1, round(h / step)), max(1, round(w / step)))
        window = Window(col_off=c0, row_off=r0, width=w, height=h)
        data = src.read(
            bands, window=window, out_shape=(len(bands), *shape), resampling=Resampling.nearest
        )
    # Where each output pixel sits: GDAL nearest samples the source pixel under its centre.
    row_step, col_step = h / shape[0] / sr, w / shape[1] / sc
    rows = r0 / sr + (np.arange(shape[0]) + 0.5) * row_step
    cols = c0 / sc + (np.arange(shape[1]) + 0.5) * col_step
    weight = row_step * col_step
    decimated = shape != (h, w)
    if chosen.level is None:
        how = f"decimated read 1/{math.sqrt(weight):.3g} (no overview)"
    else:
        how = f"overview {chosen.level} (1/{chosen.factor:g})"
        if decimated:
            how += f", decimated to 1/{chosen.factor * h / shape[0]:.3g}"
    return data, (rows, cols, weight, how, chosen.level is None, decimated, row_step, col_step)
