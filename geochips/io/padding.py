"""Windows partly outside their scene (edge ``"pad"``): the part read, and the fill around it.

GDAL reads only the part of a window inside the scene (:func:`inside`); the window's array
is filled with the fill value (:func:`filled`) and that part pasted in (:func:`paste`). Bands
of a stacked scene are read file by file, consecutive bands of one file in one call
(:func:`group_by_file`).
"""

from __future__ import annotations

import numpy as np
from rasterio.windows import Window

from geochips.scene import Scene
from geochips.windows import ChipWindow


def inside(scene: Scene, window: ChipWindow) -> tuple[Window, bool]:
    """Return the part of ``window`` inside ``scene``, and whether it is the whole window."""
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
    return inner, full


def filled(window: ChipWindow, bands: int, fill_value: float, dtype: str) -> np.ndarray:
    """Return a ``(bands, height, width)`` array of ``window``, every pixel ``fill_value``."""
    return np.full((bands, window.height, window.width), fill_value, dtype=dtype)


def paste(padded: np.ndarray, data: np.ndarray, window: ChipWindow, inner: Window) -> np.ndarray:
    """Put ``data``, the pixels of ``inner``, at their place in ``padded`` and return it."""
    r0, c0 = inner.row_off - window.row_off, inner.col_off - window.col_off
    padded[:, r0 : r0 + inner.height, c0 : c0 + inner.width] = data
    return padded


def group_by_file(wanted: list[tuple[int, int]]) -> list[tuple[int, list[int]]]:
    """Group ``(file, band)`` pairs into ``(file, bands)`` runs of one file, in order."""
    groups: list[tuple[int, list[int]]] = []
    for file, band in wanted:
        if groups and groups[-1][0] == file:
            groups[-1][1].append(band)
        else:
            groups.append((file, [band]))
    return groups
