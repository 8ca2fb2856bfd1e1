"""STAC-GeoParquet catalogs as STAC items: how planet-scale catalogs are distributed.

A ``.parquet`` / ``.geoparquet`` path (or a URI pyarrow's filesystems read, such as
``s3://``), or a pyarrow ``Table`` (or
``RecordBatchReader``) in the STAC-GeoParquet layout (one row per item: ``id``,
``stac_version``, ``assets``, ``geometry``, the properties as columns), is read with the
``stac-geoparquet`` library (``pip install geochips[stac-geoparquet]``) into STAC Item
dicts, batch by batch, and then indexed like STAC JSON (:mod:`geochips.sources.stac`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from geochips import hrefs
from geochips.errors import InvalidParameterError

SUFFIXES = (".parquet", ".geoparquet")


def is_stac_geoparquet(obj: object) -> bool:
    """Whether ``obj`` names a STAC-GeoParquet catalog: a Parquet path/URL or an Arrow table."""
    if isinstance(obj, (str, os.PathLike)):
        return os.fspath(obj).split("?")[0].lower().endswith(SUFFIXES)
    schema = getattr(obj, "schema", None) if type(obj).__module__.startswith("pyarrow") else None
    return schema is not None and {"stac_version", "assets"} <= set(schema.names)


def geoparquet_items(obj: object) -> Iterator[dict[str, Any]]:
    """Yield the STAC Item dicts of a STAC-GeoParquet file, URL or Arrow table.

    Raises:
        ImportError: without stac-geoparquet (``pip install geochips[stac-geoparquet]``).
        InvalidParameterError: if the file cannot be read or is not STAC-GeoParquet.
    """
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
        from stac_geoparquet.arrow import stac_table_to_items
    except ImportError as exc:
        raise ImportError(
            "reading STAC-GeoParquet needs stac-geoparquet: pip install "
            "'geochips[stac-geoparquet]'",
            name=exc.name,
        ) from None
    if isinstance(obj, (str, os.PathLike)):
        href = hrefs.normalize(obj)
        try:
            file = pq.ParquetFile(href)
        except Exception as exc:  # pyarrow's OS and format errors: all mean "not readable"
            raise InvalidParameterError(
                f"cannot read STAC-GeoParquet at {hrefs.redact(href)}: "
                f"{hrefs.redact_text(f'{type(exc).__name__}: {exc}')}"
            ) from None
        schema = file.schema_arrow
        _check_columns(schema.names, hrefs.redact(href))
        # Batch by batch: a catalog of a million items is never one table in memory.
        yield from stac_table_to_items(
            pa.RecordBatchReader.from_batches(schema, file.iter_batches())
        )
    else:
        _check_columns(obj.schema.names, type(obj).__name__)  # type: ignore[attr-defined]
        yield from stac_table_to_items(obj)


def _check_columns(names: list[str], where: str) -> None:
    missing = [c for c in ("id", "assets") if c not in names]
    if missing:
        raise InvalidParameterError(
            f"{where} is not STAC-GeoParquet: it has no {', '.join(missing)} column "
            "(one row per STAC item, as stac-geoparquet writes). A saved geochips index "
            "is loaded with ChipIndex.load, not indexed again"
        )
