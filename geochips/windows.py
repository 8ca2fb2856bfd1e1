"""Pure pixel geometry of chip grids: no I/O, no torch.

Conventions, settled once for the whole package:

* Sizes, strides and offsets are in pixels of the grid that is read (full resolution or
  one overview level) and are given as ``(height, width)``, NumPy order. An ``int`` means
  the same value on both axes.
* A window is ``(row_off, col_off, height, width)``; rows grow downwards.
* ``edge`` says what happens where the last stride does not end on the scene edge:

  ``"drop"`` (default)
      keep only windows that lie fully inside the scene. Per axis there are
      ``floor((length - size) / stride) + 1`` windows, the sliding-window convention of
      xbatcher and zen3geo; a scene shorter than ``size`` has none.
  ``"pad"``
      also keep the partial windows at the far edges; they keep the full ``size`` and the
      reader fills what lies outside the scene. ``ceil((length - size) / stride) + 1``
      windows per axis (torchgeo's count), at least one.
  ``"shift"``
      like ``"pad"`` but the last window of each axis is moved back to end exactly on the
      scene edge: full coverage, no padding, the last two windows overlap more. A scene
      shorter than ``size`` has none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol, TypeAlias, get_args

import numpy as np

from geochips.errors import InvalidParameterError

if TYPE_CHECKING:
    from geochips.scene import Scene

Edge: TypeAlias = Literal["drop", "pad", "shift"]
EDGES: tuple[str, ...] = get_args(Edge)
Pair: TypeAlias = tuple[int, int]
PairLike: TypeAlias = int | tuple[int, int] | list[int]


def to_pair(value: PairLike, name: str) -> Pair:
    """Return ``value`` as a ``(height, width)`` pair of positive ints.

    Raises:
        InvalidParameterError: if a value is not a positive integer.
    """
    values = [value, value] if not isinstance(value, (tuple, list)) else list(value)
    ints = [int(v) for v in values if isinstance(v, (int, np.integer)) and not isinstance(v, bool)]
    if len(values) != 2 or len(ints) != 2:
        raise InvalidParameterError(
            f"{name} must be an int or a (height, width) pair of ints, got {name}={value!r}"
        )
    if min(ints) <= 0:
        raise InvalidParameterError(f"{name} must be positive, got {name}={value!r}")
    return ints[0], ints[1]


def resolve_grid(
    size: PairLike,
    stride: PairLike | None = None,
    overlap: PairLike | None = None,
    edge: str = "drop",
) -> tuple[Pair, Pair]:
    """Check grid parameters and return ``(size, stride)`` as pairs.

    ``stride`` defaults to ``size`` (chips touch without overlapping); ``overlap`` is the
    xbatcher/zen3geo spelling of ``stride = size - overlap``. Giving both is an error.
    """
    if edge not in EDGES:
        raise InvalidParameterError(
            f"edge must be one of {', '.join(map(repr, EDGES))}, got edge={edge!r}"
        )
    size_hw = to_pair(size, "size")
    if stride is not None and overlap is not None:
        raise InvalidParameterError(
            f"give stride or overlap, not both (got stride={stride!r}, overlap={overlap!r}); "
            "stride = size - overlap"
        )
    if overlap is not None:
        over = (overlap, overlap) if isinstance(overlap, (int, np.integer)) else tuple(overlap)
        if len(over) != 2 or not all(isinstance(v, (int, np.integer)) for v in over):
            raise InvalidParameterError(
                f"overlap must be an int or a (height, width) pair, got overlap={overlap!r}"
            )
        if min(over) < 0 or any(o >= s for o, s in zip(over, size_hw, strict=True)):
            raise InvalidParameterError(
                "overlap must be at least 0 and less than the chip size, but the chip size "
                f"is {size_hw} and the overlap is {overlap!r}"
            )
        return size_hw, (size_hw[0] - int(over[0]), size_hw[1] - int(over[1]))
    return size_hw, size_hw if stride is None else to_pair(stride, "stride")


def axis_offsets(length: int, size: int, stride: int, edge: Edge) -> np.ndarray:
    """Return the start offsets of the windows along one axis, as int64."""
    if length < size:
        return np.zeros(1 if edge == "pad" else 0, dtype=np.int64)
    if edge == "drop":
        count = (length - size) // stride + 1
    else:
        count = -(-(length - size) // stride) + 1  # ceil: keep the partial last window
    offsets = np.arange(count, dtype=np.int64) * stride
    if edge == "shift":
        offsets[-1] = length - size
    elif edge == "pad":
        offsets = offsets[offsets < length]  # a stride longer than size can overshoot
    return offsets


def chip_count(height: int, width: int, size: Pair, stride: Pair, edge: Edge) -> int:
    """Return the number of windows of a ``height`` x ``width`` scene, by formula."""
    return len(axis_offsets(height, size[0], stride[0], edge)) * len(
        axis_offsets(width, size[1], stride[1], edge)
    )


def grid_windows(
    height: int, width: int, size: Pair, stride: Pair, edge: Edge
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(row_off, col_off)`` of every window of one scene, in row-major order.

    All windows have the full ``size``; with ``edge="pad"`` the last ones reach past the
    scene edge.
    """
    rows = axis_offsets(height, size[0], stride[0], edge)
    cols = axis_offsets(width, size[1], stride[1], edge)
    return np.repeat(rows, len(cols)), np.tile(cols, len(rows))


class ChipWindow(NamedTuple):
    """A window in the read grid of a scene: named fields, NumPy order."""

    row_off: int
    col_off: int
    height: int
    width: int

    def slices(self) -> tuple[slice, slice]:
        """Return ``(rows, cols)`` slices, e.g. to cut the same window from an array."""
        return (
            slice(self.row_off, self.row_off + self.height),
            slice(self.col_off, self.col_off + self.width),
        )


def window_bounds(
    transform: tuple[float, ...],
    row_off: np.ndarray,
    col_off: np.ndarray,
    height: np.ndarray,
    width: np.ndarray,
) -> np.ndarray:
    """Return ``(left, bottom, right, top)`` of windows under an affine ``transform``.

    Vectorised over windows; the bounding box of the four corners, so rotated grids
    (and GCP-fitted transforms) get the box that contains the window.
    """
    a, b, c, d, e, f = transform[:6]
    rows = np.stack([row_off, row_off, row_off + height, row_off + height]).astype(np.float64)
    cols = np.stack([col_off, col_off + width, col_off, col_off + width]).astype(np.float64)
    xs = a * cols + b * rows + c
    ys = d * cols + e * rows + f
    return np.stack([xs.min(0), ys.min(0), xs.max(0), ys.max(0)], axis=-1)


WINDOW_COLUMNS = ("scene", "row_off", "col_off", "height", "width")
"""The columns of a chip table that hold its windows (``scene`` is a scene position)."""


class ChipTable(Protocol):
    """What the layers below the index read of a table of chips.

    :class:`~geochips.ChipIndex` is one; :mod:`geochips.tiles` and :mod:`geochips.io.parquet`
    take any, so they need not import the index (which builds on them).
    """

    scenes: tuple[Scene, ...]
    size: Pair | None
    stride: Pair | None
    edge: str | None
    signer: Any

    @property
    def column_names(self) -> tuple[str, ...]:
        """Names of all columns, the window columns first."""

    def column(self, name: str) -> np.ndarray:
        """Return one column."""

    @property
    def chip_ids(self) -> list[str]:
        """Chip ids in table order."""

    def __len__(self) -> int:
        """Number of chips."""


def rows_by_scene(scene_col: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """``(scene position, its rows)`` for every scene that has chips, in scene order.

    One stable sort of the ``scene`` column, cut where the scene changes: linear in the
    chips whatever the number of scenes (a mask per scene costs chips x scenes). The rows
    of each scene keep their order in the index.
    """
    scene_col = np.asarray(scene_col)
    if not len(scene_col):
        return []
    order = np.argsort(scene_col, kind="stable")
    ordered = scene_col[order]
    cuts = np.flatnonzero(ordered[1:] != ordered[:-1]) + 1
    starts = np.concatenate([[0], cuts]).tolist()
    stops = np.concatenate([cuts, [len(ordered)]]).tolist()
    return [(int(ordered[a]), order[a:b]) for a, b in zip(starts, stops, strict=True)]


def windows_area(scene: Scene, win: Mapping[str, np.ndarray]) -> tuple[int, int, int, int]:
    """``(row0, col0, row1, col1)``: the windows' bounding box, clipped to the scene.

    What a coarse read of the windows' pixels covers (``edge="pad"`` windows reach outside
    the scene, where there is nothing to read).
    """
    r0 = int(np.clip(win["row_off"].min(), 0, scene.height))
    c0 = int(np.clip(win["col_off"].min(), 0, scene.width))
    r1 = int(np.clip((win["row_off"] + win["height"]).max(), 0, scene.height))
    c1 = int(np.clip((win["col_off"] + win["width"]).max(), 0, scene.width))
    return r0, c0, r1, c1
