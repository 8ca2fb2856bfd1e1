"""Scene headers as JSON, for the saved index: written plainly, read back distrustfully.

:func:`scene_from_json` is the only way a saved file turns into :class:`~geochips.Scene`
objects, so it checks every field against what :func:`~geochips.io.headers.read_header` can produce:
types, ranges and the agreement between fields (one band count per href, a transform that
can be inverted, a dtype GDAL reads, a nodata value the dtype holds, a CRS that PROJ
parses). A header that passes reads like one just read from its files; anything else is a
:class:`ValueError` that names the field, what was expected and what was found.
"""

from __future__ import annotations

import math
import reprlib
from functools import lru_cache
from typing import Any

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import CRSError

from geochips import hrefs
from geochips.scene import RESAMPLINGS, Scene

MAX_PIXELS = 2**31 - 1
"""Largest height, width or offset (window columns are int32, as GDAL's raster sizes)."""
DTYPES = (
    "uint8",
    "int8",
    "uint16",
    "int16",
    "uint32",
    "int32",
    "uint64",
    "int64",
    "float32",
    "float64",
    "complex64",
    "complex128",
)
"""Pixel dtypes GDAL reads into NumPy arrays (rasterio's names)."""
GEOREFS = ("transform", "gcps", "none")

_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 60
_repr.maxlevel = 3


def show(value: Any) -> str:
    """Return a short repr of a value from a file (deep or long values are abbreviated)."""
    return _repr.repr(value)


def _safe_href(href: str) -> str:
    """Drop the query of an href that carries a token (a signed URL must never be saved)."""
    return hrefs.redact(href) if hrefs.redact_text(href) != href else href


def scene_to_json(scene: Scene) -> dict[str, Any]:
    """Return a scene header as plain JSON values (hrefs unsigned)."""
    return {
        "id": scene.id,
        "hrefs": [_safe_href(h) for h in scene.hrefs],
        "assets": list(scene.assets),
        "overview_level": scene.overview_level,
        "height": scene.height,
        "width": scene.width,
        "band_counts": list(scene.band_counts),
        "dtype": scene.dtype,
        "nodata": scene.nodata,
        "crs": scene.crs,
        "transform": None if scene.transform is None else list(scene.transform)[:6],
        "georef": scene.georef,
        "gcps": [list(g) for g in scene.gcps],
        "tile_shape": list(scene.tile_shape),
        "scales": list(scene.scales),
        "offsets": list(scene.offsets),
        "full_shape": list(scene.full_shape),
        "properties": scene.properties,
        "resampling": scene.resampling,
        "warped": list(scene.warped),
        "file_levels": list(scene.file_levels),
    }


def _fail(field: str, expected: str, value: Any) -> ValueError:
    return ValueError(f"field {field!r} must be {expected}, got {show(value)}")


def _int(value: Any, field: str, low: int = 0, high: int = MAX_PIXELS) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _fail(field, f"an int in {low}..{high}", value)
    return value


def _num(value: Any, field: str, finite: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(field, "a number", value)
    try:
        number = float(value)
    except OverflowError:  # an int beyond the float range
        raise _fail(field, "a number in the float range", value) from None
    if finite and not math.isfinite(number):
        raise _fail(field, "a finite number", value)
    return number


def _str(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise _fail(field, "a string", value)
    return value


def _list(value: Any, field: str, length: int | None = None) -> list[Any]:
    if not isinstance(value, list):
        raise _fail(field, "a list", value)
    if length is not None and len(value) != length:
        raise _fail(field, f"a list of {length} values", value)
    return value


def _per_file(value: Any, field: str, files: int) -> list[Any]:
    """A list with one entry per file, or empty (the field's default)."""
    values = _list(value, field)
    if len(values) not in (0, files):
        raise _fail(field, f"empty or one value per href ({files})", value)
    return values


def _pair(value: Any, field: str, low: int) -> tuple[int, int]:
    a, b = (_int(v, field, low) for v in _list(value, field, 2))
    return a, b


@lru_cache(maxsize=256)
def check_crs(text: str) -> None:
    """Raise ValueError unless PROJ parses ``text`` (cached: scenes share a few CRSs)."""
    try:
        CRS.from_user_input(text)
    except CRSError as exc:
        raise ValueError(
            f"field 'crs' must be a CRS PROJ parses, got {show(text)}: {exc}"
        ) from None


def _nodata(value: Any, dtype: str) -> float | None:
    if value is None:
        return None
    number = _num(value, "nodata", finite=False)
    kind = np.dtype(dtype).kind
    if kind in "iu":
        info = np.iinfo(dtype)
        if not (math.isfinite(number) and number.is_integer() and info.min <= number <= info.max):
            raise _fail("nodata", f"an integer in the {dtype} range {info.min}..{info.max}", value)
    elif math.isfinite(number) and abs(number) > float(np.finfo(dtype).max):
        raise _fail("nodata", f"a value the {dtype} pixels hold", value)
    return number


def _transform(value: Any) -> Affine | None:
    if value is None:
        return None
    values = [_num(v, "transform") for v in _list(value, "transform", 6)]
    affine = Affine(*values)
    determinant = affine.a * affine.e - affine.b * affine.d
    if not math.isfinite(determinant) or determinant == 0:
        raise _fail("transform", "6 finite values of an invertible affine transform", value)
    return affine


def _gcps(value: Any, georef: str) -> tuple[tuple[float, float, float, float], ...]:
    gcps = tuple(
        (
            _num(g[0], "gcps"),
            _num(g[1], "gcps"),
            _num(g[2], "gcps"),
            _num(g[3], "gcps"),
        )
        for g in (_list(g, "gcps", 4) for g in _list(value, "gcps"))
    )
    if georef == "gcps" and len(gcps) < 3:
        raise _fail("gcps", "at least 3 (row, col, x, y) points for georef 'gcps'", value)
    return gcps


def scene_from_json(data: Any) -> Scene:
    """Rebuild a scene header from :func:`scene_to_json` output, checking every field.

    Raises:
        ValueError: naming the field that is missing, of the wrong type, out of range or
            inconsistent with another field.
    """
    if not isinstance(data, dict):
        raise ValueError(f"a scene must be a JSON object, got {show(data)}")
    if "tile_shape" not in data and "block_shape" in data:
        # Indexes saved before the glossary named tiles used GDAL's word for them.
        data = {**data, "tile_shape": data["block_shape"]}
    missing = [
        k
        for k in ("id", "hrefs", "assets", "overview_level", "height", "width", "band_counts")
        + ("dtype", "nodata", "crs", "transform", "georef", "gcps", "tile_shape", "scales")
        + ("offsets", "full_shape")
        if k not in data
    ]
    if missing:
        raise ValueError(f"field(s) {missing} are missing")
    sid = _str(data["id"], "id")
    if not sid:
        raise _fail("id", "a non-empty string", sid)
    paths = tuple(_str(h, "hrefs") for h in _list(data["hrefs"], "hrefs"))
    if not paths or not all(paths):
        raise _fail("hrefs", "a non-empty list of non-empty strings", data["hrefs"])
    files = len(paths)
    assets = tuple(_str(a, "assets") for a in _per_file(data["assets"], "assets", files))
    level = data["overview_level"]
    counts = tuple(
        _int(b, "band_counts", 1, 65535) for b in _list(data["band_counts"], "band_counts", files)
    )
    dtype = _str(data["dtype"], "dtype")
    if dtype not in DTYPES:
        raise _fail("dtype", f"one of {', '.join(DTYPES)}", dtype)
    crs = data["crs"]
    if crs is not None:
        check_crs(_str(crs, "crs"))
    georef = _str(data["georef"], "georef")
    if georef not in GEOREFS:
        raise _fail("georef", f"one of {', '.join(GEOREFS)}", georef)
    transform = _transform(data["transform"])
    if (transform is None) != (georef == "none"):
        raise _fail("transform", "null exactly when georef is 'none'", data["transform"])
    count = sum(counts)
    scales = tuple(_num(v, "scales") for v in _list(data["scales"], "scales"))
    offsets = tuple(_num(v, "offsets") for v in _list(data["offsets"], "offsets"))
    for name, values in (("scales", scales), ("offsets", offsets)):
        if len(values) not in (0, count):
            raise _fail(name, f"empty or one value per band ({count})", data[name])
    full = _pair(data["full_shape"], "full_shape", 0)
    if (full[0] == 0) != (full[1] == 0):
        raise _fail("full_shape", "(0, 0) (unknown) or two positive ints", data["full_shape"])
    properties = data.get("properties", {})
    if not isinstance(properties, dict):
        raise _fail("properties", "a JSON object", properties)
    resampling = data.get("resampling")
    if resampling is not None and _str(resampling, "resampling") not in RESAMPLINGS:
        raise _fail("resampling", f"null or one of {', '.join(RESAMPLINGS)}", resampling)
    warped = tuple(v for v in _per_file(data.get("warped", []), "warped", files))
    if not all(isinstance(v, bool) for v in warped):
        raise _fail("warped", "a list of true/false", data.get("warped"))
    if any(warped) and resampling is None:
        raise _fail("resampling", "set when a file is warped", resampling)
    file_levels = tuple(
        None if v is None else _int(v, "file_levels", 0, 64)
        for v in _per_file(data.get("file_levels", []), "file_levels", files)
    )
    return Scene(
        id=sid,
        hrefs=paths,
        assets=assets,
        overview_level=None if level is None else _int(level, "overview_level", 0, 64),
        height=_int(data["height"], "height", 1),
        width=_int(data["width"], "width", 1),
        band_counts=counts,
        dtype=dtype,
        nodata=_nodata(data["nodata"], dtype),
        crs=crs,
        transform=transform,
        georef=georef,  # type: ignore[arg-type]
        gcps=_gcps(data["gcps"], georef),
        tile_shape=_pair(data["tile_shape"], "tile_shape", 1),
        scales=scales,
        offsets=offsets,
        full_shape=full,
        properties=properties,
        resampling=resampling,
        warped=warped,
        file_levels=file_levels,
    )
