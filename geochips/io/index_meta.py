"""What a saved index's ``geochips`` metadata says, checked field by field before it is used.

:func:`read_header` checks the format, version, grid and column list; :func:`decode_scenes`
turns stored scene headers into :class:`~geochips.scene.Scene` s, naming the scene that is
wrong; :func:`check_windows` checks every window against its scene, vectorised;
:func:`check_chip_ids` the stored chip ids against those windows; and
:func:`check_band_stats` the band statistics. Every failure is an :class:`~geochips.io.
arrow_codec.Bad` that :mod:`geochips.io.parquet` words with the file's name.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np

from geochips.bandstats import stats_from_json
from geochips.ids import scene_prefixes
from geochips.io.arrow_codec import WINDOW, Bad, column_dtype, field
from geochips.io.index_rows import chip_id_array
from geochips.scene import Scene
from geochips.scene_json import MAX_PIXELS, scene_from_json, show
from geochips.windows import EDGES, ChipTable

FORMAT = "geochips.ChipIndex"
FILE_VERSION = 1
"""One Parquet file, the scene headers in its footer."""
FOLDER_VERSION = 2
"""A folder of part files and a scene table (:data:`SCENES`)."""
SCENES = "_scenes.parquet"
"""The scene table of a folder."""


class Header(NamedTuple):
    """The grid and columns of a saved index."""

    version: int
    size: tuple[int, int] | None
    stride: tuple[int, int] | None
    edge: str | None
    columns: list[tuple[str, np.dtype[Any], int | None]]


def _grid_pair(value: Any, name: str) -> tuple[int, int] | None:
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(
            isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_PIXELS for v in value
        )
    ):
        raise Bad(f"{name!r} must be null or 2 ints in 1..{MAX_PIXELS}, got {show(value)}")
    return value[0], value[1]


def read_header(meta: Any) -> Header:
    """Check the ``geochips`` metadata's format, version, grid and columns."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else meta
        raise Bad(
            f"the 'geochips' metadata must be an object with format {FORMAT!r}, got {show(got)}"
        )
    version = meta.get("version")
    if version not in (FILE_VERSION, FOLDER_VERSION):
        raise Bad(f"'version' must be {FILE_VERSION} or {FOLDER_VERSION}, got {show(version)}")
    size = _grid_pair(field(meta, "size", "the metadata"), "size")
    stride = _grid_pair(field(meta, "stride", "the metadata"), "stride")
    edge = field(meta, "edge", "the metadata")
    if edge is not None and edge not in EDGES:
        raise Bad(f"'edge' must be null or one of {', '.join(EDGES)}, got {show(edge)}")
    infos = field(meta, "columns", "the metadata")
    if not isinstance(infos, list):
        raise Bad(f"'columns' must be a list, got {show(infos)}")
    specs = [column_dtype(info, position) for position, info in enumerate(infos)]
    names = [name for name, _, _ in specs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    missing = [n for n in WINDOW if n not in names]
    if repeated or missing:
        raise Bad(f"'columns' repeats {repeated} and lacks {missing}")
    return Header(version, size, stride, edge, specs)


def decode_scenes(raw: Sequence[Any], positions: Sequence[int], text: bool) -> list[Scene]:
    """The scenes at ``positions`` of ``raw`` (JSON values, or JSON texts when ``text``)."""
    scenes = []
    for position in positions:
        value = raw[position]
        try:
            if text:
                if not isinstance(value, str):
                    raise ValueError(f"its header must be a JSON string, got {show(value)}")
                try:
                    value = json.loads(value)
                except (ValueError, RecursionError) as exc:
                    raise ValueError(f"its header is not JSON ({show(str(exc))})") from None
            scenes.append(scene_from_json(value))
        except ValueError as exc:
            sid = value.get("id") if isinstance(value, dict) else None
            named = f" ({show(sid)})" if isinstance(sid, str) else ""
            raise Bad(f"scene {position}{named}: {exc}") from None
    return scenes


CHECK_ROWS = 1 << 16
"""Rows checked at a time on load: the int64 copies made to check them stay small."""


def check_windows(
    columns: dict[str, np.ndarray],
    scenes: list[Scene],
    size: tuple[int, int] | None,
    edge: str | None,
) -> None:
    """Check every window against its scene, vectorised (see :func:`load_index`).

    :data:`CHECK_ROWS` rows at a time; the message names the first bad row and counts all.
    """
    scene = columns["scene"]
    outside = (scene < 0) | (scene >= len(scenes))
    if outside.any():
        row = int(np.argmax(outside))
        raise Bad(
            f"column 'scene': row {row} refers to scene {int(scene[row])} but the file has "
            f"{len(scenes)} scene(s) ({int(outside.sum())} such row(s))"
        )
    shapes = np.array([(s.height, s.width) for s in scenes], dtype=np.int64).reshape(-1, 2)
    first, bad = -1, 0
    for start in range(0, len(scene), CHECK_ROWS):
        rows = slice(start, start + CHECK_ROWS)
        ok = _windows_ok({k: columns[k][rows] for k in WINDOW}, shapes, size, edge)
        if first < 0 and not ok.all():
            first = start + int(np.argmin(ok))
        bad += int((~ok).sum())
    if bad:
        r, c, h, w = (int(columns[k][first]) for k in WINDOW[1:])
        s = scenes[int(scene[first])]
        rule = (
            f"edge={edge!r} windows must lie inside their scene"
            if edge in ("drop", "shift")
            else f"edge={edge!r} windows must overlap their scene and be no larger than the "
            "scene or the chip size"
        )
        raise Bad(
            f"row {first}: window (row_off={r}, col_off={c}, height={h}, width={w}) of scene "
            f"{int(scene[first])} ({s.id!r}, {s.height}x{s.width}) is out of bounds: {rule} "
            f"and be at least 1x1 ({bad} such row(s))"
        )


def _windows_ok(
    rows: dict[str, np.ndarray],
    shapes: np.ndarray,
    size: tuple[int, int] | None,
    edge: str | None,
) -> np.ndarray:
    """Which of these windows fit their scene (``shapes``: each scene's height, width)."""
    scene, r, c, h, w = (rows[k].astype(np.int64) for k in WINDOW)
    heights, widths = shapes[scene, 0], shapes[scene, 1]
    ok = (h >= 1) & (w >= 1) & (np.abs(r) <= MAX_PIXELS) & (np.abs(c) <= MAX_PIXELS)
    if edge in ("drop", "shift"):
        ok &= (r >= 0) & (c >= 0) & (r + h <= heights) & (c + w <= widths)
    else:
        size_h, size_w = size if size is not None else (0, 0)
        ok &= (r < heights) & (c < widths) & (r + h > 0) & (c + w > 0)
        ok &= (h <= np.maximum(heights, size_h)) & (w <= np.maximum(widths, size_w))
    return ok


def check_chip_ids(pa: Any, groups: Iterable[Any], index: ChipTable) -> None:
    """Compare the stored chip ids with the ones the scenes and windows give, a group at a time.

    ``groups`` holds the stored ids, one table per row group, in the order the windows were
    read; load reads them on their own, after the windows, so that neither they nor the ids
    made to check them ever all exist at once.
    """
    import pyarrow.compute as pc

    prefixes = pa.array(scene_prefixes(index.scenes), pa.string())
    start = 0
    for table in groups:
        table.validate(full=True)
        stored = table.column("chip_id")
        if not pa.types.is_string(stored.type):
            raise Bad("the table must have one 'chip_id' column of strings")
        rows = slice(start, start + len(stored))
        expected = chip_id_array(pa, prefixes, {k: index.column(k)[rows] for k in WINDOW})
        same = np.asarray(pc.fill_null(pc.equal(stored, expected), False), dtype=bool)
        if not same.all():
            at = int(np.argmin(same))
            raise Bad(
                f"it is inconsistent: row {start + at} has chip_id {show(stored[at].as_py())} "
                f"but its scene and window give {show(expected[at].as_py())}; the file was "
                "edited"
            )
        start += len(stored)


def check_band_stats(raw: Any, scenes: list[Scene]) -> Any:
    """The band statistics stored with an index, checked against its scenes' band counts."""
    try:
        stats = stats_from_json(raw)
    except ValueError as exc:
        raise Bad(f"'band_stats' {exc}") from None
    fewest = min((s.count for s in scenes), default=0)
    if max(stats.bands) > fewest:
        raise Bad(
            f"'band_stats' has statistics of band {max(stats.bands)} but a scene of the file "
            f"has {fewest} band(s)"
        )
    return stats
