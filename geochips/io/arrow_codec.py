"""Columns of a chip index to Arrow and back, exactly: a NumPy dtype per column, no lossy cast.

:func:`to_arrow` turns a column into an Arrow array and the entry the saved metadata keeps
for it (name, dtype, row shape); :func:`column_dtype` checks such an entry read back from a
file, and :func:`from_arrow` converts the stored array to that dtype, refusing nulls and
types that would change values; :func:`fill_columns` does it for every row group of a load.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from geochips.errors import InvalidParameterError
from geochips.scene_json import show

WINDOW = ("scene", "row_off", "col_off", "height", "width")
"""The window columns every saved index has (integers)."""
DERIVED = ("chip_id", "scene_id", "hrefs", "assets", "overview_level", "crs", "geometry", "bbox")
"""Columns written from the scenes and windows, never from the index's own columns."""


class Bad(Exception):
    """What is wrong with a file, before the message gets the file's name."""


def field(mapping: dict[str, Any], key: str, where: str) -> Any:
    """``mapping[key]``, or :class:`Bad` naming what lacks it."""
    if key not in mapping:
        raise Bad(f"{where} has no {key!r}")
    return mapping[key]


def to_arrow(pa: Any, name: str, values: np.ndarray) -> tuple[Any, dict[str, Any]]:
    """Column ``name`` as an Arrow array, and its entry in the saved column list."""
    info: dict[str, Any] = {
        "name": name,
        "dtype": values.dtype.str,
        "shape": list(values.shape[1:]),
    }
    try:
        if values.ndim == 1:
            if values.dtype.kind == "O":
                return pa.array(values.tolist()), info
            if values.dtype.kind == "U":
                return pa.array(values.astype(object).tolist(), type=pa.string()), info
            return pa.array(values), info
        if values.ndim == 2 and values.dtype.kind in "biuf":
            flat = pa.array(values.reshape(-1))
            return pa.FixedSizeListArray.from_arrays(flat, values.shape[1]), info
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise InvalidParameterError(
            f"column {name!r} cannot be saved to Parquet ({exc}); make it one type "
            "(e.g. index.with_columns(name=values.astype(str)))"
        ) from None
    raise InvalidParameterError(
        f"column {name!r} has shape {values.shape} and dtype {values.dtype}; only 1-D columns "
        "and 2-D numeric columns can be saved"
    )


def column_dtype(info: Any, position: int) -> tuple[str, np.dtype[Any], int | None]:
    """Check one entry of the metadata's column list: ``(name, dtype, row length or None)``."""
    if not isinstance(info, dict):
        raise Bad(f"columns[{position}] must be an object, got {show(info)}")
    name = field(info, "name", f"columns[{position}]")
    text = field(info, "dtype", f"columns[{position}]")
    if not isinstance(name, str) or not name:
        raise Bad(f"columns[{position}].name must be a non-empty string, got {show(name)}")
    if name in DERIVED:
        raise Bad(f"column {name!r} is written from the scenes; it cannot be a stored column")
    try:
        dtype = np.dtype(text) if isinstance(text, str) else None
    except (TypeError, ValueError, SyntaxError):
        dtype = None
    kinds = "biuf" if name not in WINDOW else "iu"
    if dtype is None or dtype.kind not in kinds + "UOMm" or dtype.fields or dtype.subdtype:
        raise Bad(
            f"column {name!r}: dtype must be a NumPy dtype of kind {kinds}, U, O, M or m, "
            f"got {show(text)}"
        )
    if name in WINDOW and dtype.kind not in "iu":
        raise Bad(f"column {name!r}: dtype must be an integer dtype, got {show(text)}")
    if dtype.kind == "U" and dtype.itemsize > 4 * 65536:
        raise Bad(f"column {name!r}: dtype {text!r} is wider than 65536 characters")
    shape = info.get("shape", [])
    if shape == []:
        return name, dtype, None
    if (
        name in WINDOW
        or dtype.kind not in "biuf"
        or not isinstance(shape, list)
        or len(shape) != 1
        or not isinstance(shape[0], int)
        or isinstance(shape[0], bool)
        or not 1 <= shape[0] <= 65536
    ):
        raise Bad(
            f"column {name!r}: shape must be [] or [k] (k in 1..65536) for a numeric column, "
            f"got {show(shape)}"
        )
    return name, dtype, shape[0]


def from_arrow(pa: Any, column: Any, name: str, dtype: np.dtype[Any], k: int | None) -> np.ndarray:
    """Convert one Arrow column to NumPy, refusing types that would convert lossily."""
    typ = column.type

    def wrong(expected: str) -> Bad:
        return Bad(f"column {name!r}: expected Arrow type {expected} for dtype {dtype}, got {typ}")

    if k is not None:
        value_type = pa.from_numpy_dtype(dtype)
        if (
            not pa.types.is_fixed_size_list(typ)
            or typ.list_size != k
            or typ.value_type != value_type
        ):
            raise wrong(f"fixed_size_list<{value_type}>[{k}]")
        flat = column.combine_chunks().flatten()
        if column.null_count or flat.null_count or len(flat) != len(column) * k:
            raise Bad(f"column {name!r} has null values")
        values: np.ndarray = flat.to_numpy(zero_copy_only=False).reshape(-1, k)
        return values.astype(dtype, copy=False)
    kind = dtype.kind
    if kind in "biuf":
        expected = pa.from_numpy_dtype(dtype)
        if typ != expected:
            raise wrong(str(expected))
        if column.null_count:
            raise Bad(f"column {name!r} has {column.null_count} null value(s)")
        return np.asarray(column.to_numpy(zero_copy_only=False)).astype(dtype, copy=False)
    if kind == "U":
        if not (pa.types.is_string(typ) or pa.types.is_large_string(typ)):
            raise wrong("string")
        if column.null_count:
            raise Bad(f"column {name!r} has {column.null_count} null value(s)")
        import pyarrow.compute as pc

        longest = pc.max(pc.utf8_length(column)).as_py() or 0
        if longest > dtype.itemsize // 4:
            raise Bad(
                f"column {name!r} holds strings of {longest} characters; its dtype is {dtype}"
            )
        return np.asarray(column.to_numpy(zero_copy_only=False)).astype(dtype)
    if kind in "Mm":
        ok = pa.types.is_temporal(typ) if kind == "M" else pa.types.is_duration(typ)
        if not ok:
            raise wrong("timestamp" if kind == "M" else "duration")
        return np.asarray(column.to_numpy(zero_copy_only=False)).astype(dtype)
    values = column.to_numpy(zero_copy_only=False)
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def fill_columns(
    pa: Any, groups: Iterable[Any], specs: list[tuple[str, np.dtype[Any], int | None]], rows: int
) -> dict[str, np.ndarray]:
    """The columns ``specs`` of ``rows`` rows, filled from Arrow tables a row group at a time.

    Each column is allocated once, whole, and each group converted straight into its rows:
    no group's Arrow data outlives its conversion, and no array is copied to be joined.
    """
    arrays = {name: np.empty((rows, k) if k else rows, dtype) for name, dtype, k in specs}
    start = 0
    for table in groups:
        table.validate(full=True)  # e.g. strings that are not UTF-8, from flipped bytes
        stop = start + table.num_rows
        for name, dtype, k in specs:
            arrays[name][start:stop] = from_arrow(pa, table.column(name), name, dtype, k)
        start = stop
    if start != rows:  # the rows left would hold whatever memory np.empty gave
        raise Bad(f"its row groups hold {start} rows where their metadata counts {rows}")
    return arrays


def pyarrow_modules() -> tuple[Any, Any]:
    """``pyarrow`` and ``pyarrow.parquet``, or an error that says how to install them."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ImportError(
            "saving and loading a chip index as GeoParquet needs pyarrow: "
            "pip install geochips[parquet]"
        ) from exc
    return pa, pq
