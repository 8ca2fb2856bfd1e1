"""The real SpaceNet buildings burnt on their image's grid: label rasters for the tests."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import rasterio
import rasterio.features

from geochips import sample_data

IMAGE = sample_data.path("spacenet_atlanta.tif")
BUILDINGS = sample_data.path("spacenet_atlanta_buildings.geojson")


def burn_buildings(value: Callable[[int], int] = lambda n: n % 3 + 1) -> np.ndarray:
    """uint8 classes on the image's grid: ``value(n)`` in building ``n``, 0 elsewhere."""
    with rasterio.open(IMAGE) as src:
        shape, transform = src.shape, src.transform
    features = json.loads(BUILDINGS.read_text())["features"]
    return rasterio.features.rasterize(
        [(f["geometry"], value(n)) for n, f in enumerate(features)],
        out_shape=shape,
        transform=transform,
        dtype="uint8",
    )
