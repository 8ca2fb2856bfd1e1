"""Writing a chip index as GeoParquet: one file or a folder, a row group at a time.

The layouts are described in :mod:`geochips.io.parquet`, which reads them back. Rows are
built just before their row group is written (bounded memory), under a temporary name that
replaces the target only once the index is complete, so a failed save leaves the older
index, if any, as it was.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import Any

import numpy as np

from geochips.bandstats import stats_to_json
from geochips.errors import InvalidParameterError
from geochips.io.arrow_codec import DERIVED, WINDOW, pyarrow_modules, to_arrow
from geochips.io.index_meta import FILE_VERSION, FOLDER_VERSION, FORMAT, SCENES
from geochips.io.index_rows import RowGroups
from geochips.progress import ProgressSpec, start_progress
from geochips.scene_json import scene_to_json
from geochips.windows import ChipTable

ROW_GROUP = 1 << 16
"""Rows per Parquet row group (each with its bbox statistics, for readers that filter)."""
PART_ROWS = 1 << 20
"""Rows per part file of a folder."""
FOOTER_LIMIT = 32 << 20
"""Most bytes of metadata one file takes: pyarrow refuses footers from ~75 MB (2 KB a scene
with GCPs: ~16,000 such scenes, or ~50,000 plain ones); save bigger indexes to a folder."""
UNIQUE = ("chip_id", "geometry")
"""Columns of a value per chip, written without a dictionary: Parquet would build one, find
it too large and fall back to plain pages, ~20% of the time spent writing (same values)."""
BUILDERS = 2
"""Threads that make row groups' tables while the calling thread writes them."""
AUTO_MIN_ROWS = 100_000
"""``progress=None`` shows progress on a terminal from this many rows (about 2 s)."""


def save_index(
    index: ChipTable,
    path: str | os.PathLike[str],
    extra: dict[str, Any] | None = None,
    progress: ProgressSpec = None,
    folder: bool | None = None,
) -> None:
    """Write ``index`` as GeoParquet (see the module docstring for the layouts).

    Args:
        index: the chip table.
        path: the file or folder to write.
        extra: entries (JSON values, such as the index's labels) to join the ``geochips``
            metadata; :func:`load_index` hands them back.
        progress: ``"saving index"`` counted in rows as their row group is written;
            ``None`` shows it when stderr is a terminal and there are at least
            :data:`AUTO_MIN_ROWS` rows, ``True``/``False`` always/never, or a callable
            ``(done, total)`` (see :mod:`geochips.progress`).
        folder: write a folder; ``None``: when ``path`` ends with a separator or is a folder.

    Raises:
        InvalidParameterError: if a column cannot be stored or clashes with a derived one,
            if ``path`` is a folder (or file) of something else, or if the scene headers are
            too large for one file (save to a folder).
        ImportError: without pyarrow (``pip install geochips[parquet]``).
    """
    pa, pq = pyarrow_modules()
    final = os.fspath(path)
    as_folder = (
        folder if folder is not None else final.endswith(("/", os.sep)) or os.path.isdir(final)
    )
    final = final.rstrip("/" + os.sep) or final
    clash = [c for c in index.column_names if c in DERIVED]
    if clash:
        raise InvalidParameterError(
            f"column(s) {clash} clash with columns written from the scenes; rename them "
            "before saving"
        )
    _check_target(final, as_folder)
    # Whole columns go to Arrow first, so every row group gets one type per column.
    own = {name: to_arrow(pa, name, np.asarray(index.column(name))) for name in index.column_names}
    infos = [own[n][1] for n in WINDOW] + [info for n, (_, info) in own.items() if n not in WINDOW]
    meta: dict[str, Any] = {
        "format": FORMAT,
        "version": FOLDER_VERSION if as_folder else FILE_VERSION,
        "size": None if index.size is None else list(index.size),
        "stride": None if index.stride is None else list(index.stride),
        "edge": index.edge,
        "columns": infos,
        **{k: v for k, v in (extra or {}).items() if v is not None},
    }
    stats = getattr(index, "band_stats", None)
    if stats is not None:
        meta["band_stats"] = stats_to_json(stats)
    headers = [scene_to_json(s) for s in index.scenes]
    groups = RowGroups(pa, index, {name: array for name, (array, _) in own.items()})
    counter = start_progress(
        progress, len(index), label="saving index", unit="row", auto_min=AUTO_MIN_ROWS
    )
    if not as_folder:
        text = json.dumps({**meta, "scenes": headers}, default=str)
        if len(text) > FOOTER_LIMIT:
            raise InvalidParameterError(
                f"the {len(index.scenes)} scene headers of this index take {len(text) >> 20} MB,"
                f" more than one Parquet file's footer holds ({FOOTER_LIMIT >> 20} MB); save it "
                f"to a folder: index.save({(final + '/')!r})"
            )
        with _replacing(final, as_folder=False) as partial:
            _write_part(pq, partial, groups, range(len(index)), {"geochips": text}, counter.add)
        return
    with _replacing(final, as_folder=True) as partial:
        parts = []
        for k, start in enumerate(range(0, max(len(index), 1), PART_ROWS)):
            name = f"part-{k:06d}.parquet"
            rows = range(start, min(start + PART_ROWS, len(index)))
            mark = json.dumps({"format": FORMAT, "version": FOLDER_VERSION, "part_of": SCENES})
            _write_part(
                pq, os.path.join(partial, name), groups, rows, {"geochips": mark}, counter.add
            )
            parts.append({"file": name, "rows": len(rows)})
        table = pa.table(
            {
                "scene": pa.array(np.arange(len(index.scenes), dtype=np.int32)),
                **{k: groups.per_scene[k] for k in ("scene_id", "overview_level", "crs")},
                "height": pa.array([s.height for s in index.scenes], pa.int32()),
                "width": pa.array([s.width for s in index.scenes], pa.int32()),
                "hrefs": groups.per_scene["hrefs"],
                "header": pa.array([json.dumps(h, default=str) for h in headers], pa.string()),
            }
        ).replace_schema_metadata({"geochips": json.dumps({**meta, "parts": parts}, default=str)})
        pq.write_table(table, os.path.join(partial, SCENES), row_group_size=ROW_GROUP)


def _write_part(
    pq: Any,
    target: str,
    groups: RowGroups,
    rows: range,
    metadata: dict[str, str],
    add: Callable[[int], None],
) -> None:
    """Write ``rows`` to one file, a row group at a time, with its ``geo`` metadata.

    :data:`BUILDERS` threads make the tables of the next groups (footprints and WKB: PROJ
    through GDAL, NumPy and pyarrow, much of it without the GIL) while this one writes them
    in order: at most ``BUILDERS + 1`` groups are held at a time.
    """
    groups.reset_extent()
    part = _Part(pq, target, groups, metadata)
    starts = range(rows.start, max(rows.stop, rows.start + 1), ROW_GROUP)  # one, for no rows
    pending: deque[Future[Any]] = deque()
    with ThreadPoolExecutor(max_workers=BUILDERS, thread_name_prefix="geochips-save") as pool:
        try:
            for start in starts:
                group = slice(start, min(start + ROW_GROUP, rows.stop))
                pending.append(pool.submit(groups.build, group))
                if len(pending) > BUILDERS:
                    add(part.write(pending.popleft().result()))
            while pending:
                add(part.write(pending.popleft().result()))
            part.finish()
        finally:
            for future in pending:
                future.cancel()
            wait(pending)  # a failed save closes the file only once no thread builds
            part.close()


class _Part:
    """One file being written, its row groups in order."""

    def __init__(self, pq: Any, target: str, groups: RowGroups, metadata: dict[str, str]):
        self.pq, self.target, self.groups, self.metadata = pq, target, groups, metadata
        self.writer: Any = None
        self.schema: Any = None

    def write(self, table: Any) -> int:
        """Write the table of a row group; return its number of rows."""
        if self.writer is None:
            geo = json.dumps(self.groups.geo())
            self.schema = table.schema.with_metadata({**self.metadata, "geo": geo})
            plain = _leaf_paths(self.pq, self.schema) - set(UNIQUE)
            self.writer = self.pq.ParquetWriter(
                self.target, self.schema, use_dictionary=sorted(plain)
            )
        self.writer.write_table(table.replace_schema_metadata(self.schema.metadata))
        return int(table.num_rows)

    def finish(self) -> None:
        """Put the final ``geo`` metadata in the footer (written at close).

        The extent and geometry types are known once every footprint is; readers take them
        from the footer and from the Arrow schema stored there.
        """
        final = self.schema.with_metadata({**self.metadata, "geo": json.dumps(self.groups.geo())})
        arrow = base64.b64encode(final.serialize().to_pybytes()).decode()
        self.writer.add_key_value_metadata(
            {"geo": final.metadata[b"geo"].decode(), "ARROW:schema": arrow}
        )

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _leaf_paths(pq: Any, schema: Any) -> set[str]:
    """The Parquet column paths of an Arrow schema (``bbox.xmin``, ``hrefs.list.element``)."""
    buffer = io.BytesIO()
    pq.write_table(schema.empty_table(), buffer)
    stored = pq.ParquetFile(io.BytesIO(buffer.getvalue())).schema
    return {stored.column(i).path for i in range(len(stored))}


def _check_target(final: str, as_folder: bool) -> None:
    """Refuse to replace something that is not an index of the same layout."""
    if as_folder and os.path.isfile(final):
        raise InvalidParameterError(
            f"{final!r} is a file; a folder index cannot replace it: remove it or save elsewhere"
        )
    if not as_folder and os.path.isdir(final):
        raise InvalidParameterError(
            f"{final!r} is a folder; save to a file path, or pass folder=True to replace the "
            "folder index there"
        )
    if as_folder and os.path.isdir(final) and os.listdir(final):
        if not os.path.isfile(os.path.join(final, SCENES)):
            raise InvalidParameterError(
                f"{final!r} is a folder that holds no geochips index (no {SCENES}); it is not "
                "replaced: give an empty or new folder"
            )


@contextmanager
def _replacing(final: str, as_folder: bool) -> Iterator[str]:
    """A temporary path beside ``final`` that replaces it once the block ends without error.

    A save that fails part-way leaves no file that looks like a whole index, and the older
    index there, if any, is kept.
    """
    partial = f"{final}.partial-{os.getpid()}"
    _remove(partial)
    if as_folder:
        os.makedirs(partial)
    try:
        yield partial
        if not as_folder:
            os.replace(partial, final)
        elif os.path.isdir(final):
            old = f"{final}.old-{os.getpid()}"
            os.rename(final, old)
            os.rename(partial, final)
            shutil.rmtree(old)
        else:
            os.rename(partial, final)
    finally:
        _remove(partial)


def _remove(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


# -- load -----------------------------------------------------------------------------------
