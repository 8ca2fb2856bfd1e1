"""How overlapping chips combine: per-chip weights, the running blend, the final values.

``"mean"``, ``"linear"`` and ``"cosine"`` keep a weighted sum and the sum of the weights
(triangular and Hann windows fall towards a chip's edges but never reach 0, so a scene
border covered by one chip keeps its values); ``"center"`` keeps, per pixel, the distance
to the centre of the chip it came from and that chip's position (the nearest wins, ties
to the chip first in the index); ``"max"`` keeps the largest value and a coverage count.
"""

from __future__ import annotations

import math

import numpy as np

from geochips.predict.tiles import Tile

BLENDS = ("mean", "linear", "cosine", "center", "max")
OUTPUTS = ("values", "argmax", "quantized")


def window_weights(blend: str, height: int, width: int) -> np.ndarray:
    """Per pixel of a chip: its blend weight, or for ``"center"`` its distance to the centre."""
    rows = (np.arange(height) + 0.5) / height
    cols = (np.arange(width) + 0.5) / width
    if blend == "center":
        weight = (rows[:, None] - 0.5) ** 2 * height**2 + (cols[None] - 0.5) ** 2 * width**2
    elif blend == "linear":
        weight = np.outer(1 - np.abs(2 * rows - 1), 1 - np.abs(2 * cols - 1))
    elif blend == "cosine":
        weight = np.outer(np.sin(np.pi * rows) ** 2, np.sin(np.pi * cols) ** 2)
    else:
        weight = np.ones((height, width))
    out: np.ndarray = weight.astype(np.float32)
    return out


def blend_into(
    blend: str,
    tile: Tile,
    into: tuple[slice, slice],
    values: np.ndarray,
    weight: np.ndarray,
    position: int,
) -> None:
    """Add one chip's ``values`` (its part over ``into`` of ``tile``) to the blend."""
    if blend == "center":
        best, source = tile.weight[into], tile.source[into]
        better = (weight < best) | ((weight == best) & (position < source))
        tile.value[(slice(None), *into)][:, better] = values[:, better]
        best[better] = weight[better]
        source[better] = position
    elif blend == "max":
        covered = weight > 0
        view = tile.value[(slice(None), *into)]
        np.maximum(view, np.where(covered, values, -np.inf), out=view)
        tile.weight[into] += covered
    else:
        tile.value[(slice(None), *into)] += values * weight
        tile.weight[into] += weight


def output_type(output: str, bands: int, nodata: float | None) -> tuple[str, float]:
    """``(dtype, nodata)`` of an output kind (NaN for float, the dtype's largest for ints)."""
    if output == "values":
        return "float32", math.nan if nodata is None else float(nodata)
    if output == "quantized":
        return "uint8", 255 if nodata is None else nodata
    dtype = "uint8" if bands <= 255 else "uint16"
    return dtype, (np.iinfo(dtype).max if nodata is None else nodata)


def final(tile: Tile, blend: str, output: str, dtype: str, nodata: float) -> np.ndarray:
    """A finished tile's output pixels, nodata where no valid chip pixel landed."""
    if blend == "center":
        covered = tile.source >= 0
        values = tile.value
    else:
        covered = tile.weight > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            values = tile.value if blend == "max" else tile.value / tile.weight
    if output == "argmax":
        out = np.argmax(values, axis=0)[None].astype(dtype)
    elif output == "quantized":
        out = np.rint(np.clip(values, 0, 1) * 254).astype(dtype)
    else:
        out = values.astype(dtype)
    out[:, ~covered] = nodata
    result: np.ndarray = out
    return result
