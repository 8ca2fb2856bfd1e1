"""Coarse masks of valid pixels, read from overviews (never at full resolution).

:func:`read_coarse_valid` is what :func:`geochips.estimate_valid` reads: one coarse mask a
scene, opened with the reader's GDAL settings (no directory listing on *remote* opens
only, so local external ``.ovr`` overviews are found).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling

from geochips.io.coarse import open_and_read
from geochips.io.settings import header_options
from geochips.scene import Scene


def read_coarse_valid(
    scene: Scene,
    signer: Any,
    samples: int,
    chip_side: int,
    gdal_options: Mapping[str, Any] | None = None,
) -> tuple[np.ndarray, str]:
    """Read one coarse valid mask of ``scene`` (any band not nodata) and say how it was read.

    The mask comes from the coarsest overview on which a chip of ``chip_side`` pixels (of
    the read grid) still spans ``samples`` pixels, or the finest overview if none does; a
    file without overviews is read once, decimated (GDAL nearest) to that density.

    Raises:
        SceneReadError: naming the scene and file, if it cannot be read.
    """
    read_factor = scene.full_shape[0] / scene.height if scene.height else 1.0
    chip_full = chip_side * read_factor  # chip side in full-resolution pixels
    options = header_options(gdal_options)
    nodata = scene.nodata
    assert nodata is not None, "scenes without nodata need no mask"
    masks = []
    how = ""
    for href in scene.hrefs:
        data, how = open_and_read(
            scene,
            signer,
            href,
            options,
            lambda path: _coarse_read(path, read_factor, chip_full, samples),
            what="a coarse mask",
            fix="Check that the file is readable, or skip estimate_valid for this scene",
        )
        bad = np.isnan(data) if np.isnan(nodata) else data == nodata
        masks.append(~bad.all(axis=0))
    if len({m.shape for m in masks}) > 1:
        masks = [masks[0]]  # assets of one scene share a grid; overviews could still differ
    return np.logical_or.reduce(masks), how


def _coarse_read(
    path: str, read_factor: float, chip_full: float, samples: int
) -> tuple[np.ndarray, str]:
    with rasterio.open(path) as full:
        factors = full.overviews(1)
        usable = [(k, f) for k, f in enumerate(factors) if f >= read_factor * 0.999 and f > 1]
        chosen = [(k, f) for k, f in usable if chip_full / f >= samples]
        if usable:
            level, factor = chosen[-1] if chosen else usable[0]
            with rasterio.open(path, overview_level=level) as ovr:
                return ovr.read(), f"overview {level} (1/{factor})"
        step = max(1.0, chip_full / samples)
        shape = (full.count, max(1, round(full.height / step)), max(1, round(full.width / step)))
        data = full.read(out_shape=shape, resampling=Resampling.nearest)
        return data, f"decimated read 1/{step:g} (no overview)"
