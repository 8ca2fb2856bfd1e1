"""Per-band statistics of an index's pixels: the :class:`BandStats` value and its JSON codec.

:func:`geochips.band_stats` estimates them from overviews and
:func:`geochips.record_band_stats` attaches them to an index, which saves them in its
GeoParquet metadata (:mod:`geochips.io.parquet` uses :func:`stats_to_json` and
:func:`stats_from_json`, which trusts nothing it reads).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from geochips.errors import InvalidParameterError

PERCENTILES = (1, 2, 98, 99)
"""The percentiles kept, as fields ``p1``, ``p2``, ``p98`` and ``p99``."""

_VALUES = ("mean", "std", "min", "max", "p1", "p2", "p98", "p99")


@dataclass(frozen=True, slots=True)
class BandStats:
    """Statistics of each band over the valid pixels of an index's chips.

    **Usage**::

        stats = geochips.band_stats(index)
        stats.mean, stats.std        # one float per band, in the order of stats.bands
        stats.p2, stats.p98          # e.g. for a contrast stretch

    Values are in the units of the pixels (``scaled=False``) or after each scene's scale
    and offset (``scaled=True``). They are estimates from overviews (see
    :func:`geochips.band_stats` for how far they are from full resolution).
    """

    bands: tuple[int, ...]
    """1-based band positions of the stacked scene, as ``ChipDataset(bands=...)`` takes."""
    mean: tuple[float, ...]
    std: tuple[float, ...]
    """Population standard deviation."""
    min: tuple[float, ...]
    """Smallest value read (from an overview: not the full-resolution extreme)."""
    max: tuple[float, ...]
    """Largest value read (from an overview: not the full-resolution extreme)."""
    p1: tuple[float, ...]
    p2: tuple[float, ...]
    p98: tuple[float, ...]
    p99: tuple[float, ...]
    pixels: int
    """Valid pixels read (at the levels read), shared by every band."""
    scaled: bool = False
    """Whether values include the scenes' scale and offset (``ChipDataset(scale=True)``)."""
    levels: tuple[str, ...] = ()
    """How each scene was read, e.g. ``"S2A_T29/ov1: overview 1 (1/4)"``."""

    def __post_init__(self) -> None:
        n = len(self.bands)
        if not n or not all(
            isinstance(b, int) and not isinstance(b, bool) and b >= 1 for b in self.bands
        ):
            raise InvalidParameterError(f"bands must be 1-based ints, got {self.bands!r}")
        for name in _VALUES:
            values = getattr(self, name)
            if len(values) != n or not all(isinstance(v, float) for v in values):
                raise InvalidParameterError(
                    f"{name} must hold {n} floats (one per band), got {values!r}"
                )
        if any(not math.isfinite(v) or v < 0 for v in self.std):
            raise InvalidParameterError(f"std must be finite and >= 0, got {self.std!r}")
        if isinstance(self.pixels, bool) or not isinstance(self.pixels, int) or self.pixels < 0:
            raise InvalidParameterError(f"pixels must be an int >= 0, got {self.pixels!r}")
        if not isinstance(self.scaled, bool):
            raise InvalidParameterError(f"scaled must be a bool, got {self.scaled!r}")
        if not all(isinstance(v, str) for v in self.levels):
            raise InvalidParameterError(f"levels must be strings, got {self.levels!r}")


def stats_to_json(stats: BandStats) -> dict[str, Any]:
    """Return ``stats`` as plain JSON values (non-finite floats as strings)."""
    out = asdict(stats)
    for name in _VALUES:
        out[name] = [v if math.isfinite(v) else str(v) for v in getattr(stats, name)]
    out["bands"] = list(stats.bands)
    out["levels"] = list(stats.levels)
    return out


def stats_from_json(raw: Any) -> BandStats:
    """Rebuild a :class:`BandStats` from :func:`stats_to_json` output, checking every field.

    Raises:
        ValueError: naming the field that is missing or wrong.
    """
    if not isinstance(raw, dict):
        raise ValueError(f"must be an object, got {type(raw).__name__}")
    names = {f.name for f in fields(BandStats)}
    unknown = sorted(set(raw) - names)
    missing = sorted(n for n in ("bands", *_VALUES, "pixels") if n not in raw)
    if unknown or missing:
        raise ValueError(f"has unknown fields {unknown} and lacks {missing}")
    values: dict[str, Any] = {}
    for name in ("bands", *_VALUES, "levels"):
        items = raw.get(name, [])
        if not isinstance(items, list):
            raise ValueError(f"field {name!r} must be a list, got {type(items).__name__}")
        if name in _VALUES:
            try:
                items = [_number(v) for v in items]
            except (TypeError, ValueError, OverflowError):
                raise ValueError(f"field {name!r} must hold numbers, got {items!r:.200}") from None
        values[name] = tuple(items)
    try:
        return BandStats(pixels=raw["pixels"], scaled=raw.get("scaled", False), **values)
    except InvalidParameterError as exc:
        raise ValueError(str(exc)) from None


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError(value)
    if isinstance(value, str) and value not in ("nan", "inf", "-inf"):
        raise ValueError(value)
    return float(value)
