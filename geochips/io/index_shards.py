"""Reading only the rows of a saved index that one process needs: filters, then one shard.

The files are read in their order, row group by row group (pyarrow's dataset pieces, pruned
by their statistics when there are filters), so every rank sees the same rows in the same
order and takes its own contiguous share: rows ``[total * rank // world, total * (rank + 1)
// world)`` of the rows that pass. Without filters, row groups outside the share are never
read; with them, a first pass counts the passing rows from the filter's columns alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

from geochips.errors import InvalidParameterError
from geochips.io.arrow_codec import Bad


class Shard(NamedTuple):
    """Which rows to read: those passing ``filters``, then share ``rank`` of ``world``."""

    filters: Any
    rank: int
    world: int

    @classmethod
    def of(cls, shard: tuple[int, int] | None, filters: Any) -> Shard:
        """Check ``shard=(rank, world)`` and ``filters`` as ``load_index`` takes them."""
        rank, world = (0, 1) if shard is None else _pair(shard)
        return cls(_expression(filters), rank, world)

    @property
    def whole(self) -> bool:
        """Whether every row is read."""
        return self.filters is None and self.world == 1


def _pair(shard: Any) -> tuple[int, int]:
    ok = isinstance(shard, (tuple, list)) and len(shard) == 2
    ok = ok and all(isinstance(v, int) and not isinstance(v, bool) for v in shard)
    if not ok or not 0 <= shard[0] < shard[1]:
        raise InvalidParameterError(
            f"shard must be (rank, world) with 0 <= rank < world, got {shard!r}; e.g. "
            "shard=(torch.distributed.get_rank(), torch.distributed.get_world_size())"
        )
    return int(shard[0]), int(shard[1])


def _expression(filters: Any) -> Any:
    if filters is None:
        return None
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if isinstance(filters, pc.Expression):
        return filters
    try:
        return pq.filters_to_expression(filters)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(
            f"filters must be a pyarrow expression or a list of (column, op, value) tuples, "
            f"e.g. [('split', '==', 'train')]; got {filters!r} ({exc})"
        ) from None


def _pieces(files: Sequence[str], filters: Any) -> Iterator[Any]:
    """Every row group of ``files`` in order (those filters can rule out skipped)."""
    import pyarrow.dataset as ds

    for path in files:
        fragment = next(iter(ds.dataset(path, format="parquet").get_fragments()))
        yield from fragment.split_by_row_group(filters)


def read_rows(pa: Any, files: Sequence[str], names: list[str], part: Shard, where: str) -> Any:
    """The columns ``names`` of the rows ``part`` selects, as one Arrow table."""
    import pyarrow.parquet as pq

    for path in files:
        have = pq.read_schema(path).names
        wrong = {name: have.count(name) for name in names if have.count(name) != 1}
        if wrong:
            raise Bad(f"{path!r} must have each listed column once; it has {wrong} of them")
    try:
        if part.whole:
            tables = [pq.read_table(path, columns=names) for path in files]
        else:
            tables = _read_share(files, names, part)
        if not tables:  # no rows: the columns' types still come from the first file
            return pq.read_schema(files[0]).empty_table().select(names)
        return pa.concat_tables(tables)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        if part.filters is not None and "FieldRef" in str(exc):
            raise InvalidParameterError(
                f"filters {part.filters} name a column {where!r} does not have ({exc})"
            ) from None
        raise


def _read_share(files: Sequence[str], names: list[str], part: Shard) -> list[Any]:
    filters = part.filters
    pieces = list(_pieces(files, filters))
    if filters is None:
        counts = [piece.row_groups[0].num_rows for piece in pieces]
    else:
        counts = [piece.count_rows(filter=filters) for piece in pieces]
    total = sum(counts)
    low, high = total * part.rank // part.world, total * (part.rank + 1) // part.world
    tables, seen = [], 0
    for piece, count in zip(pieces, counts, strict=True):
        start, seen = seen, seen + count
        if seen <= low or start >= high or not count:
            continue
        table = piece.to_table(columns=names, filter=filters, use_threads=False)
        tables.append(table.slice(max(low - start, 0), min(high, seen) - max(low, start)))
    return tables
