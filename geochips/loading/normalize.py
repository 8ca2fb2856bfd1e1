"""Per-band normalisation of samples: ``(x - mean) / std`` in float, invalid pixels at 0.0.

``ChipDataset(index, normalize=...)`` takes:

* ``"stats"``: the index's :attr:`~geochips.ChipIndex.band_stats` (recorded by
  :func:`geochips.record_band_stats`, saved with the index);
* a :class:`~geochips.BandStats` (e.g. the training split's, for the validation split);
* ``(mean, std)``: two numbers, or two sequences with one value per band read.

Samples are float32 (or ``dtype="float64"``; any other ``dtype`` is refused). With
``scale=True`` the scenes' scale and offset apply first, so statistics must be of scaled
values (``band_stats(index, scale=True)``). Pixels that are not valid (outside the scene
with ``edge="pad"``, or nodata in every band read) are set to :data:`INVALID_VALUE` in
every band, which is the mean after normalisation, and are ``False`` in ``sample["valid"]``,
present whenever the scenes have nodata or the index pads. A band equal to nodata in a
pixel where another band has data is normalised like any value: ``valid`` is per pixel,
as GDAL's mask, and so are :func:`geochips.band_stats`'s exclusions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from geochips.bandstats import BandStats
from geochips.errors import InvalidParameterError
from geochips.index import ChipIndex

INVALID_VALUE = 0.0
"""What invalid pixels (padding, nodata) hold after normalisation."""

Normalize = str | BandStats | tuple[Any, Any] | None


@dataclass(frozen=True)
class Normalizer:
    """Means and standard deviations of the bands read, shaped ``(bands, 1, 1)``."""

    mean: np.ndarray
    std: np.ndarray
    dtype: np.dtype[Any]

    def apply(
        self, pixels: np.ndarray, valid: np.ndarray | None, out: np.ndarray | None
    ) -> np.ndarray:
        """Normalise float ``pixels`` into ``out`` (or a new array); invalid pixels get 0.0."""
        result: np.ndarray = np.subtract(pixels, self.mean, out=out, dtype=self.dtype)
        np.divide(result, self.std, out=result)
        if valid is not None:
            np.copyto(result, self.dtype.type(INVALID_VALUE), where=~valid)
        return result


def resolve_normalize(
    normalize: Normalize,
    index: ChipIndex,
    bands: list[int] | None,
    dtype: str | None,
    scale: bool,
) -> Normalizer | None:
    """Check ``normalize`` against the dataset's other arguments and return its means/stds.

    Raises:
        InvalidParameterError: naming the contradiction and the fix.
    """
    if normalize is None:
        return None
    if dtype is not None and dtype not in ("float32", "float64"):
        raise InvalidParameterError(
            f"normalize= gives float samples, which dtype={dtype!r} cannot hold; leave dtype "
            "unset (float32) or choose 'float64'"
        )
    out_dtype = np.dtype(dtype or "float32")
    counts = {s.count for s in index.scenes}
    picked = bands if bands is not None else list(range(1, min(counts, default=1) + 1))
    if isinstance(normalize, str):
        if normalize != "stats":
            raise InvalidParameterError(
                f"normalize must be None, 'stats', a BandStats or (mean, std), got {normalize!r}"
            )
        if index.band_stats is None:
            raise InvalidParameterError(
                "normalize='stats' needs an index with band statistics: record them with "
                "index = geochips.record_band_stats(index) (or pass normalize=(mean, std))"
            )
        normalize = index.band_stats
    if isinstance(normalize, BandStats):
        mean, std = _from_stats(normalize, picked, scale)
    elif isinstance(normalize, tuple) and len(normalize) == 2:
        mean, std = (
            _per_band(v, name, len(picked))
            for v, name in zip(normalize, ("mean", "std"), strict=True)
        )
    else:
        raise InvalidParameterError(
            f"normalize must be None, 'stats', a BandStats or (mean, std), got {normalize!r:.100}"
        )
    if any(not math.isfinite(v) for v in mean) or any(
        not (math.isfinite(v) and v > 0) for v in std
    ):
        raise InvalidParameterError(
            f"normalize needs finite means and finite, positive stds, got mean={mean} and "
            f"std={std}; give (mean, std) yourself for a constant band"
        )
    shape = (len(picked), 1, 1)
    return Normalizer(
        np.array(mean, dtype=out_dtype).reshape(shape),
        np.array(std, dtype=out_dtype).reshape(shape),
        out_dtype,
    )


def _from_stats(
    stats: BandStats, picked: list[int], scale: bool
) -> tuple[list[float], list[float]]:
    if stats.scaled != scale:
        raise InvalidParameterError(
            f"the band statistics are of {'scaled' if stats.scaled else 'unscaled'} values but "
            f"the dataset has scale={scale}; record them with "
            f"geochips.record_band_stats(index, scale={scale})"
        )
    missing = [b for b in picked if b not in stats.bands]
    if missing:
        raise InvalidParameterError(
            f"the band statistics cover bands {list(stats.bands)}, not bands {missing} that "
            "the dataset reads; record them for those bands (record_band_stats(index, bands=...))"
        )
    where = [stats.bands.index(b) for b in picked]
    return [stats.mean[i] for i in where], [stats.std[i] for i in where]


def _per_band(value: Any, name: str, count: int) -> list[float]:
    values = [value] if isinstance(value, (int, float, np.number)) else value
    if (
        isinstance(values, (str, bytes))
        or not isinstance(values, (Sequence, np.ndarray))
        or len(values) not in (1, count)
        or not all(
            isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in values
        )
    ):
        raise InvalidParameterError(
            f"normalize=(mean, std): {name} must be a number or {count} numbers (one per band "
            f"read), got {value!r:.100}"
        )
    return [float(v) for v in values] * (count if len(values) == 1 else 1)
