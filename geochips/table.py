"""The chip table's rules: the columns a grid lays, their checks, and the rows a key names.

:class:`~geochips.ChipIndex` is these columns plus its scenes; the functions here are
what it does with them, written over plain arrays so that they read (and test) without
the index around them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from geochips.errors import InvalidParameterError, SmallSceneWarning
from geochips.scene import Scene
from geochips.summary import small_scenes_text
from geochips.windows import WINDOW_COLUMNS, Pair, grid_windows, rows_by_scene, window_bounds


def grid_columns(
    scenes: Sequence[Scene], size: Pair, stride: Pair, edge: str, *, stacklevel: int
) -> dict[str, np.ndarray]:
    """The window columns of a grid over every scene, and one column per scene property.

    Warns (:class:`~geochips.errors.SmallSceneWarning`) naming the scenes too small for one
    chip; ``stacklevel`` points the warning at the user's call.
    """
    parts = [grid_windows(s.height, s.width, size, stride, edge) for s in scenes]  # type: ignore[arg-type]
    empty = [s for s, (rows, _) in zip(scenes, parts, strict=True) if len(rows) == 0]
    if empty:
        warnings.warn(
            small_scenes_text(empty, size, edge), SmallSceneWarning, stacklevel=stacklevel + 1
        )
    counts = np.array([len(rows) for rows, _ in parts], dtype=np.int64)
    n = int(counts.sum())

    def offsets(k: int) -> np.ndarray:
        if not n:
            return np.zeros(0, np.int32)
        return np.concatenate([p[k] for p in parts]).astype(np.int32)

    columns: dict[str, np.ndarray] = {
        "scene": np.repeat(np.arange(len(scenes), dtype=np.int32), counts),
        "row_off": offsets(0),
        "col_off": offsets(1),
        "height": np.full(n, size[0], dtype=np.int32),
        "width": np.full(n, size[1], dtype=np.int32),
    }
    for key in sorted({k for s in scenes for k in s.properties}):
        per_scene = np.array([s.properties.get(key) for s in scenes], dtype=object)
        try:
            per_scene = per_scene.astype(np.result_type(*[type(v) for v in per_scene]))
        except (TypeError, ValueError):
            pass  # mixed or non-numeric values stay Python objects
        columns[key] = per_scene[columns["scene"]]
    return columns


def check_table(columns: Mapping[str, np.ndarray], n_scenes: int) -> None:
    """Refuse columns that cannot be a chip table over ``n_scenes`` scenes."""
    missing = [c for c in WINDOW_COLUMNS if c not in columns]
    if missing:
        raise InvalidParameterError(f"index columns {missing} are missing")
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) > 1:
        raise InvalidParameterError(f"index columns differ in length: {lengths}")
    scene_col = columns["scene"]
    if len(scene_col) and (scene_col.min() < 0 or scene_col.max() >= n_scenes):
        raise InvalidParameterError("index column 'scene' refers to a scene it does not have")


def checked_column(name: str, values: np.ndarray | Sequence[Any], n: int) -> np.ndarray:
    """``values`` as a column of a table of ``n`` chips, or an error saying why not."""
    array = np.asarray(values)
    if name in WINDOW_COLUMNS:
        raise InvalidParameterError(f"column {name!r} holds the windows; it is not replaced")
    if array.shape[:1] != (n,):
        raise InvalidParameterError(f"column {name!r} has {array.shape[:1]} values for {n} chips")
    return array


def selected_rows(key: Any, n: int, position: Callable[[str], int]) -> np.ndarray | slice:
    """The rows of a table of ``n`` chips that ``key`` names, in the order it gives them.

    ``key`` is a slice, a boolean mask, positions (negative ones count from the end) or
    chip ids, which ``position`` finds.
    """
    if isinstance(key, slice):
        return key
    values = list(key) if not isinstance(key, np.ndarray) else key
    if len(values) and isinstance(values[0], str):
        return np.array([position(str(v)) for v in values], dtype=np.int64)
    rows = np.asarray(values)
    if rows.dtype == bool:
        if rows.shape != (n,):
            raise InvalidParameterError(
                f"a boolean mask must have one value per chip ({n}), got shape {rows.shape}"
            )
        return rows
    if len(rows) and not np.issubdtype(rows.dtype, np.integer):
        raise InvalidParameterError(
            f"select takes positions, a boolean mask, a slice or chip ids, got values of "
            f"dtype {rows.dtype}"
        )
    rows = rows.astype(np.int64)
    bad = rows[(rows < -n) | (rows >= n)]
    if len(bad):
        raise IndexError(f"chip position {int(bad[0])} is out of range for {n} chips")
    return rows


def chip_bounds(scenes: Sequence[Scene], columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """``(left, bottom, right, top)`` of every chip in its scene's CRS (NaN: no transform)."""
    out = np.full((len(columns["scene"]), 4), np.nan)
    for position, rows in rows_by_scene(columns["scene"]):
        transform = scenes[position].transform
        if transform is not None:
            out[rows] = window_bounds(
                tuple(transform),
                columns["row_off"][rows],
                columns["col_off"][rows],
                columns["height"][rows],
                columns["width"][rows],
            )
    return out
