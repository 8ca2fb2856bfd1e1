"""Reading only the rows of a saved index that one process needs: filters, then one shard.

The files are read in their order, row group by row group (with filters, pyarrow's dataset pieces,
pruned by their statistics), so every rank sees the same rows in the same
order and takes its own contiguous share: rows ``[total * rank // world, total * (rank + 1)
// world)`` of the rows that pass. Without filters, row groups outside the share are never
read; with them, a first pass counts the passing rows from the filter's columns alone.
:func:`plan_rows` lists the row groups and the share of each, :func:`read_groups` reads
them one at a time (a load holds one group in Arrow, never the whole table).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
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


class Take(NamedTuple):
    """The rows a load keeps of one row group: ``rows`` of its passing rows from ``start``."""

    read: Callable[[list[str]], Any]
    """The named columns of the group's passing rows, as an Arrow table."""
    start: int
    rows: int


def plan_rows(files: Sequence[str], names: list[str], part: Shard, where: str) -> list[Take]:
    """The row groups holding the rows ``part`` selects, each with the share of it kept."""
    import pyarrow.parquet as pq

    for path in files:
        have = pq.read_schema(path).names
        wrong = {name: have.count(name) for name in names if have.count(name) != 1}
        if wrong:
            raise Bad(f"{path!r} must have each listed column once; it has {wrong} of them")
    with _filter_errors(part, where):
        groups = list(_groups(files, part.filters))
    total = sum(count for _, count in groups)
    low, high = total * part.rank // part.world, total * (part.rank + 1) // part.world
    takes, seen = [], 0
    for read, count in groups:
        start, seen = seen, seen + count
        if seen > low and start < high and count:
            takes.append(Take(read, max(low - start, 0), min(high, seen) - max(low, start)))
    return takes


def read_groups(
    takes: Sequence[Take], files: Sequence[str], names: list[str], part: Shard, where: str
) -> Iterator[Any]:
    """The columns ``names`` of the rows ``takes`` keep, one Arrow table per row group.

    Reading a group at a time bounds what a load holds in Arrow to one group, whatever the
    index's size. Without rows, one empty table of the first file still carries the
    columns' types, to be checked like any other.
    """
    import pyarrow.parquet as pq

    if not takes:
        yield pq.read_schema(files[0]).empty_table().select(names)
    for take in takes:
        with _filter_errors(part, where):
            table = take.read(names)
        yield table.slice(take.start, take.rows)


def _groups(files: Sequence[str], filters: Any) -> Iterator[tuple[Callable[..., Any], int]]:
    """Every row group of ``files`` in order: how to read its passing rows, and their count.

    Without filters the counts are the files' own; with them, row groups their statistics
    rule out are skipped and the others counted from the filter's columns alone.
    """
    import pyarrow.parquet as pq

    if filters is None:
        for path in files:
            meta = pq.read_metadata(path)
            for group in range(meta.num_row_groups):
                yield partial(_read_group, path, group), meta.row_group(group).num_rows
        return
    import pyarrow.dataset as ds  # only here: a whole load need not map its libraries

    for path in files:
        fragment = next(iter(ds.dataset(path, format="parquet").get_fragments()))
        for piece in fragment.split_by_row_group(filters):
            yield partial(_read_piece, piece, filters), piece.count_rows(filter=filters)


def _read_group(path: str, group: int, names: list[str]) -> Any:
    """One row group, read through the file's own reader.

    Not pyarrow's dataset: it refuses a file whose schema repeats a name, even of a column
    it does not read.
    """
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as file:
        return file.read_row_group(group, columns=names, use_threads=False)


def _read_piece(piece: Any, filters: Any, names: list[str]) -> Any:
    return piece.to_table(columns=names, filter=filters, use_threads=False)


@contextmanager
def _filter_errors(part: Shard, where: str) -> Iterator[None]:
    """Word Arrow's error for a filter over a column the index lacks as the caller's mistake."""
    import pyarrow as pa

    try:
        yield
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        if part.filters is not None and "FieldRef" in str(exc):
            raise InvalidParameterError(
                f"filters {part.filters} name a column {where!r} does not have ({exc})"
            ) from None
        raise
