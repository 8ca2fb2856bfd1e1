"""The saved chip index (GeoParquet), and loading it back exactly, or a part of it; no code runs.

One row per chip::

    chip_id          string        "<scene id>/<level>/<row_off>/<col_off>/<h>x<w>"
    scene_id         string
    scene            int32         position in the scene table (below)
    row_off, col_off, height, width   int32   the window, in the read grid
    hrefs            list<string>  unsigned (query strings that carry tokens are removed)
    assets           list<string>  STAC asset keys ([] for plain files)
    overview_level   int32         null: full resolution
    crs              string        the scene's CRS ("EPSG:<code>" or WKT; GCP CRS for
                                   GCP-only scenes; null without georeferencing)
    ...              every other column of the index (split, valid_fraction, properties)
    geometry         binary        WKB footprint in longitude/latitude (OGC:CRS84, that is
                                   EPSG:4326 with longitude first), cut at the antimeridian;
                                   null for scenes with neither CRS nor GCPs
    bbox             struct        xmin, ymin, xmax, ymax of the footprint (GeoParquet 1.1
                                   covering, for row-group filtering in DuckDB/GDAL)

Two layouts hold those rows, both GeoParquet that geopandas, GDAL, DuckDB and pyarrow read:

**One file** (version 1, ``chips.parquet``): key-value metadata ``geo`` (GeoParquet 1.1) and
``geochips``: JSON with the format version, the grid parameters, the dtype of every column,
the full scene headers, and the index's ``band_stats`` and labels when it has them. A footer
holds at most :data:`~geochips.io.index_save.FOOTER_LIMIT` bytes of it (readers refuse bigger).

**A folder** (version 2, ``chips/``, any size): ``part-000000.parquet``, ... of
:data:`~geochips.io.index_save.PART_ROWS` rows each (each with its own ``geo`` metadata), and
the scene table :data:`~geochips.io.index_meta.SCENES`, one row per scene (``scene``,
``scene_id``, ``overview_level``, ``crs``, ``height``, ``width``, ``hrefs`` and the checked
``header`` JSON), whose ``geochips`` metadata is the file layout's without the scenes, plus
the list of parts. Its leading ``_`` keeps it out of ``pyarrow.parquet.read_table("chips")``
and ``geopandas.read_parquet("chips")``; DuckDB reads ``'chips/part-*.parquet'``.

:mod:`geochips.io.index_save` writes both in row groups of
:data:`~geochips.io.index_save.ROW_GROUP` chips, each built just before it is written (bounded
memory), under a temporary name renamed at the end. Nothing is pickled:
:func:`load_index` parses JSON and Arrow only, checks everything, and checks the stored chip
ids against the ones rebuilt from scenes and windows. It reads a row group at a time into
arrays allocated once, whole, then the chip ids again, alone, to check them (load adds
little to the index's own arrays: no table, derived column or joined copy of the whole). It
can read a part: ``columns`` (which
of the index's own columns), ``filters`` (pyarrow's, pruned by row-group statistics) and
``shard=(rank, world)`` (one contiguous share of the rows that pass, read alone). The index's
signer is never saved; pass ``sign=`` when loading.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from geochips.errors import IndexFileError, InvalidParameterError
from geochips.io.arrow_codec import WINDOW, Bad, field, fill_columns, pyarrow_modules
from geochips.io.index_meta import (
    FILE_VERSION,
    FOLDER_VERSION,
    SCENES,
    check_band_stats,
    check_chip_ids,
    check_windows,
    decode_scenes,
    read_header,
)
from geochips.io.index_shards import Shard, plan_rows, read_groups
from geochips.io.signing import SignSpec, resolve_signer
from geochips.scene_json import show
from geochips.windows import ChipTable

T = TypeVar("T", bound=ChipTable)


def _fail(where: str, what: str) -> IndexFileError:
    return IndexFileError(
        f"{where!r} is not a valid geochips index: {what}. Rebuild it and save it again with "
        "ChipIndex.save"
    )


def _open(pq: Any, where: str) -> Any:
    """The ``geochips`` metadata of an index (a JSON value, checked later)."""
    folder = os.path.isdir(where)
    first = os.path.join(where, SCENES) if folder else where
    try:
        raw = (pq.read_schema(first).metadata or {}).get(b"geochips")
    except Exception as exc:  # noqa: BLE001 - any failure to parse untrusted bytes
        reason = "it does not exist" if isinstance(exc, FileNotFoundError) else str(exc)
        raise IndexFileError(
            f"cannot read {first!r} as Parquet: {reason}. Give the path of a file or folder "
            "written by ChipIndex.save"
        ) from None
    if raw is None:
        raise IndexFileError(
            f"{first!r} is Parquet but not a geochips index: its metadata has no 'geochips' "
            "key. Write indexes with ChipIndex.save"
        )
    try:
        meta = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: deeply nested JSON
        raise _fail(
            where, f"its 'geochips' metadata is not JSON ({type(exc).__name__}: {show(str(exc))})"
        ) from None
    if isinstance(meta, dict) and meta.get("part_of") == SCENES:
        raise IndexFileError(
            f"{where!r} is one part of a folder index; load the folder that holds it"
        )
    version = meta.get("version") if isinstance(meta, dict) else None
    if (
        isinstance(meta, dict)
        and "version" in meta
        and version not in (FILE_VERSION, FOLDER_VERSION)
    ):
        raise IndexFileError(
            f"{where!r} is a geochips index of version {show(version)}; this geochips reads "
            f"versions {FILE_VERSION} and {FOLDER_VERSION}. Upgrade geochips or rebuild the index"
        )
    return meta


def _contents(pq: Any, where: str, meta: dict[str, Any], version: int) -> tuple[list[str], Any]:
    """The chip files of an index and its stored scene headers (checked later)."""
    folder = os.path.isdir(where)
    if version != (FOLDER_VERSION if folder else FILE_VERSION):
        layout = "a folder" if folder else "one file"
        raise Bad(f"it is {layout} but its metadata is of version {version}")
    if not folder:
        scenes = field(meta, "scenes", "the metadata")
        if not isinstance(scenes, list):
            raise Bad(f"'scenes' must be a list, got {show(scenes)}")
        return [where], scenes
    parts = meta.get("parts")
    if not isinstance(parts, list) or not all(
        isinstance(p, dict) and isinstance(p.get("file"), str) and "/" not in p["file"]
        for p in parts
    ):
        raise Bad(f"'parts' must list the part files, got {show(parts)}")
    try:
        # ParquetFile, not read_table, which imports pyarrow.dataset (a whole load needs none).
        with pq.ParquetFile(os.path.join(where, SCENES)) as table:
            headers = table.read(columns=["header"]).column(0)
    except Exception as exc:  # noqa: BLE001
        raise Bad(f"its scene table cannot be read ({show(str(exc))})") from None
    files = [os.path.join(where, p["file"]) for p in parts]
    missing = [p["file"] for p, f in zip(parts, files, strict=True) if not os.path.isfile(f)]
    if missing:
        raise Bad(f"part file(s) {missing} are missing")
    for p, f in zip(parts, files, strict=True):
        rows = pq.read_metadata(f).num_rows
        if rows != p.get("rows"):
            raise Bad(
                f"part {p['file']!r} has {rows} rows where its scene table lists "
                f"{show(p.get('rows'))}"
            )
    return files, headers


def load_index(
    path: str | os.PathLike[str],
    make: Callable[..., T],
    *,
    sign: SignSpec = "auto",
    extra: dict[str, Any] | None = None,
    columns: Sequence[str] | None = None,
    filters: Any = None,
    shard: tuple[int, int] | None = None,
) -> T:
    """Read an index written by :func:`save_index`, or a part of it, checking every value.

    ``make(scenes, columns, size=, stride=, edge=)`` builds the table (``ChipIndex``), with
    ``band_stats=`` too when the file has them. ``extra``, when given, receives the metadata
    entries ``save_index`` was given (such as ``labels``), as JSON values for their owners to
    check. ``sign`` attaches a signer, as in :meth:`ChipIndex.build
    <geochips.ChipIndex.build>`: by default (``"auto"``) Planetary Computer hrefs are signed.

    ``columns`` names the index's own columns to read (``None``: all; windows always);
    ``filters`` (pyarrow's list of tuples or an expression, over any stored column) and
    ``shard=(rank, world)`` read only some rows: the shard is one contiguous share of the
    rows that pass, its size within one of the others', shards disjoint and together whole.
    An index read in part keeps only the scenes its chips use (chip ids do not change).

    Nothing in the file is trusted. Every scene header is checked field by field (see
    :func:`geochips.scene_json.scene_from_json`), every column's Arrow type against its
    stored dtype (no nulls, no lossy casts), and every window, vectorised: at least 1x1,
    in a scene of the file, inside it for ``edge="drop"``/``"shift"``, and for ``"pad"``
    (or no edge policy) overlapping it and no larger than the scene or the chip size.
    Finally the stored chip ids must equal the ones rebuilt from scenes and windows.

    Raises:
        IndexFileError: for any file that is missing, unreadable, not Parquet, not a
            geochips index, of an unknown version or damaged; the message names the file,
            the field (and the scene, for a scene field) and what was expected. No other
            exception escapes for a damaged file.
        InvalidParameterError: for ``columns``, ``filters`` or ``shard`` it cannot apply.
        ImportError: without pyarrow (``pip install geochips[parquet]``).
    """
    pa, pq = pyarrow_modules()
    where = os.fspath(path).rstrip("/" + os.sep) or os.fspath(path)
    meta = _open(pq, where)
    part = Shard.of(shard, filters)
    try:
        header = read_header(meta)
        files, raw_scenes = _contents(pq, where, meta, header.version)
        specs = header.columns
        if columns is not None:
            own = [name for name, _, _ in specs if name not in WINDOW]
            unknown = [c for c in columns if c not in own]
            if unknown:
                raise InvalidParameterError(
                    f"columns {unknown} are not among {where!r}'s own columns {own} (window "
                    "columns are always read)"
                )
            specs = [s for s in specs if s[0] in WINDOW or s[0] in columns]
        names = [name for name, _, _ in specs]
        takes = plan_rows(files, [*names, "chip_id"], part, where)
        groups = read_groups(takes, files, names, part, where)
        arrays = fill_columns(pa, groups, specs, sum(take.rows for take in takes))
        index = _decode(pa, header, arrays, raw_scenes, part.whole, make, meta)
        check_chip_ids(pa, read_groups(takes, files, ["chip_id"], part, where), index)
        if extra is not None:
            extra.update(meta)
    except (InvalidParameterError, IndexFileError):
        raise
    except Bad as exc:
        raise _fail(where, str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - a check is missing; the file is still bad
        raise _fail(
            where, f"unexpected {type(exc).__name__} while decoding it ({show(str(exc))})"
        ) from exc
    # As ChipIndex.build does: "auto" signs Planetary Computer hrefs, and nothing else.
    index.signer = resolve_signer(sign, (h for scene in index.scenes for h in scene.hrefs))
    return index


def _decode(
    pa: Any,
    header: Any,
    arrays: dict[str, np.ndarray],
    raw_scenes: Any,
    whole: bool,
    make: Callable[..., T],
    meta: dict[str, Any],
) -> T:
    folder = header.version == FOLDER_VERSION
    used = _used_scenes(arrays, len(raw_scenes), whole)
    raw = raw_scenes.take(pa.array(used)).to_pylist() if folder else [raw_scenes[i] for i in used]
    scenes = decode_scenes(raw, range(len(raw)), text=folder)
    check_windows(arrays, scenes, header.size, header.edge)
    extra = {}
    if meta.get("band_stats") is not None:  # indexes saved before band statistics lack it
        extra["band_stats"] = check_band_stats(meta["band_stats"], scenes)
    return make(scenes, arrays, size=header.size, stride=header.stride, edge=header.edge, **extra)


def _used_scenes(arrays: dict[str, np.ndarray], count: int, whole: bool) -> np.ndarray:
    """The positions of the scenes the rows use, ``arrays["scene"]`` renumbered to them.

    A part of an index keeps only its scenes; a whole one (or one whose ``scene`` column is
    out of range, for :func:`check_windows` to name the row) keeps all ``count``.
    """
    scene = arrays["scene"]
    if whole or not len(scene) or scene.min() < 0 or scene.max() >= count:
        return np.arange(count)
    present = np.zeros(count, dtype=bool)
    present[scene] = True
    renumbered = (np.cumsum(present) - 1).astype(scene.dtype)
    arrays["scene"] = renumbered[scene]
    return np.flatnonzero(present)
