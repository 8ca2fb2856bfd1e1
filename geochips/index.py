"""The chip index: every window of every scene, computed from headers, stored as columns.

A :class:`ChipIndex` holds the scene headers and one NumPy array per column (``scene``,
``row_off``, ``col_off``, ``height``, ``width``, plus any extra column such as STAC
properties), so a million chips cost a few tens of bytes each, select and pickle cheaply,
and are built without a Python loop per chip.

Chip ids are ``"<scene id>/<level>/<row_off>/<col_off>/<height>x<width>"`` with level
``full`` or ``ov<k>``: they name the scene, the grid and the window, not a position, so they
survive selection, splitting, re-ordering and a save/load.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple, overload

import numpy as np

from geochips import labels as labels_
from geochips.bandstats import BandStats
from geochips.errors import ChipNotFoundError, GeochipsWarning
from geochips.footprints import footprints
from geochips.ids import ChipIds
from geochips.io.index_save import save_index
from geochips.io.parquet import load_index
from geochips.io.scan import scan_scenes
from geochips.io.signing import Signer, SignSpec
from geochips.progress import ProgressSpec
from geochips.scene import Scene, check_bands
from geochips.summary import describe_scenes
from geochips.table import (
    check_table,
    checked_column,
    chip_bounds,
    grid_columns,
    selected_rows,
)
from geochips.tiles import warn_if_unaligned
from geochips.windows import WINDOW_COLUMNS, ChipWindow, Pair, PairLike, resolve_grid


class Chip(NamedTuple):
    """One entry of the index, as iteration and ``index[i]`` return it."""

    chip_id: str
    scene: Scene
    window: ChipWindow


class ChipIndex:
    """Windows of scenes, as columns; ``len(index)`` is the number of chips.

    **Usage**::

        index = ChipIndex.build(["a.tif", "b.tif"], size=512, stride=256)
        index.chip_ids[0]          # 'a/full/0/0/512x512'
        index[index.column("scene") == 0]   # a new index with the chips of scene a
    """

    def __init__(
        self,
        scenes: Sequence[Scene],
        columns: dict[str, np.ndarray],
        *,
        size: Pair | None = None,
        stride: Pair | None = None,
        edge: str | None = None,
        signer: Signer | None = None,
        gdal_options: Mapping[str, Any] | None = None,
        labels: Any = None,
        band_stats: BandStats | None = None,
        bands: Sequence[int] | None = None,
    ) -> None:
        check_table(columns, len(scenes))
        self.scenes: tuple[Scene, ...] = tuple(scenes)
        """Scene headers; the ``scene`` column holds positions in this tuple (a sample and
        a saved index name the scene by its id, ``scene_id``)."""
        self._columns = dict(columns)
        self.size = size
        """Chip size the index was built with, ``(height, width)``."""
        self.stride = stride
        """Stride the index was built with, ``(height, width)``."""
        self.edge = edge
        """Edge policy the index was built with."""
        self.signer = signer
        """Signer applied to hrefs at read time (never saved)."""
        self.gdal_options: dict[str, Any] = dict(gdal_options or {})
        """GDAL options given to :meth:`build`, used by every read of the index's scenes
        (``ChipDataset``, ``estimate_valid``, ``record_checksums``) unless they override
        them; never saved (they may hold credentials)."""
        self.labels = labels
        """The labels of the chips (a :class:`~geochips.VectorLabels` or
        :class:`~geochips.RasterLabels`, or ``None``), which ``ChipDataset`` reads unless
        given others; saved with the index when their source is a file or URL."""
        self.band_stats = band_stats
        """Per-band statistics recorded by :func:`geochips.record_band_stats` (saved with
        the index; kept through selections), or ``None``."""
        self.bands = check_bands(bands, self.scenes)
        """1-based bands a :class:`~geochips.ChipDataset` reads unless given others
        (``None``: all); saved with the index. Set with :meth:`with_bands`."""
        self._ids = ChipIds(self.scenes, self._columns)

    # -- building ---------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        sources: object,
        *,
        size: PairLike = 512,
        stride: PairLike | None = None,
        overlap: PairLike | None = None,
        edge: str = "drop",
        overview_level: int | None = None,
        assets: Sequence[str] | None = None,
        properties: Sequence[str] = (),
        sign: SignSpec = "auto",
        workers: int = 32,
        progress: ProgressSpec = None,
        gdal_options: Mapping[str, Any] | None = None,
        grid: str | int | None = None,
        resampling: str = "nearest",
    ) -> ChipIndex:
        """Read scene headers (never pixels) and lay a grid of chips over each scene.

        Args:
            sources: raster paths/URLs, a ``{scene_id: href}`` mapping, STAC items or
                item JSON (see :mod:`geochips.sources`).
            size: chip size in pixels, an int or ``(height, width)``.
            stride: step between chips; defaults to ``size`` (no overlap).
            overlap: alternative to ``stride``: ``stride = size - overlap``.
            edge: ``"drop"``, ``"pad"`` or ``"shift"`` (see :mod:`geochips.windows`).
            overview_level: ``None`` for full resolution, ``0`` for the first overview.
            assets: STAC asset keys to stack as bands, in order.
            properties: STAC item properties to keep as index columns.
            sign: ``"auto"`` (Planetary Computer signing for hrefs on Azure Blob
                Storage), ``None``, ``"planetary-computer"`` or a callable ``href -> href``
                (see :mod:`geochips.io.signing`).
            workers: threads reading headers concurrently.
            progress: called as ``progress(done, total)`` after each header; ``True``
                prints a counter on stderr, ``None`` does so for 20 scenes or more when
                stderr is a terminal (see :mod:`geochips.progress`).
            gdal_options: GDAL configuration options, over
                :data:`geochips.io.settings.DEFAULT_GDAL_OPTIONS`, for reading the headers;
                the index keeps them for every later read (:attr:`gdal_options`), so they
                are given once.
            grid: asset key (or file position) whose grid the other assets of each scene
                are resampled onto, lazily, through a GDAL warped VRT; e.g. ``grid="B04"``
                to read Sentinel-2's 20 m bands on the 10 m grid. By default assets must
                already share a grid.
            resampling: how resampled assets are interpolated: ``"nearest"``,
                ``"bilinear"``, ``"cubic"``, ``"cubic_spline"``, ``"lanczos"``,
                ``"average"`` or ``"mode"``.

        Raises:
            InvalidParameterError: on bad grid parameters or sources.
            SceneHeaderError: listing every scene whose header could not be read.
        """
        size_hw, stride_hw = resolve_grid(size, stride, overlap, edge)
        scenes, signer = scan_scenes(
            sources,
            overview_level=overview_level,
            assets=assets,
            properties=properties,
            sign=sign,
            workers=workers,
            progress=progress,
            gdal_options=gdal_options,
            grid=grid,
            resampling=resampling,
        )
        index = cls.from_scenes(scenes, size=size_hw, stride=stride_hw, edge=edge, signer=signer)
        index.gdal_options = dict(gdal_options or {})
        warn_if_unaligned(index, stacklevel=3)
        return index

    @classmethod
    def from_scenes(
        cls,
        scenes: Sequence[Scene],
        *,
        size: PairLike = 512,
        stride: PairLike | None = None,
        overlap: PairLike | None = None,
        edge: str = "drop",
        signer: Signer | None = None,
    ) -> ChipIndex:
        """Lay a grid of chips over scenes whose headers are already read."""
        size_hw, stride_hw = resolve_grid(size, stride, overlap, edge)
        columns = grid_columns(scenes, size_hw, stride_hw, edge, stacklevel=2)
        return cls(scenes, columns, size=size_hw, stride=stride_hw, edge=edge, signer=signer)

    # -- the table ----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._columns["scene"])

    @property
    def column_names(self) -> tuple[str, ...]:
        """Names of all columns, the window columns first."""
        return tuple(self._columns)

    def column(self, name: str) -> np.ndarray:
        """Return one column as a read-only array."""
        try:
            values = self._columns[name]
        except KeyError:
            raise KeyError(
                f"the index has no column {name!r}; it has {list(self._columns)}"
            ) from None
        view = values.view()
        view.flags.writeable = False
        return view

    def with_columns(self, **columns: np.ndarray | Sequence[Any]) -> ChipIndex:
        """Return a copy of the index with columns added or replaced."""
        new = dict(self._columns)
        for name, values in columns.items():
            new[name] = checked_column(name, values, len(self))
        return self._replace(new)

    @property
    def chip_ids(self) -> list[str]:
        """Chip ids in index order, computed once, on first use.

        :meth:`position` and :meth:`chip_id` do without them.
        """
        return self._ids.all()

    def chip_id(self, position: int) -> str:
        """Return the id of the chip at ``position`` (without building the whole id list)."""
        return self._ids.one(position)

    def position(self, chip_id: str) -> int:
        """Return the position of ``chip_id`` in this index (the last, if it holds it twice).

        The id is parsed into its scene and window and found by binary search
        (:class:`geochips.ids.IdLookup`, built on first use: 16 bytes a chip, no id strings).

        Raises:
            ChipNotFoundError: naming the id, if no chip has it.
        """
        found = self._ids.find(chip_id) if isinstance(chip_id, str) else None
        if found is not None:
            return found
        raise ChipNotFoundError(
            f"no chip with id {chip_id!r} in this index of {len(self)} chips "
            f"(ids look like {self.chip_id(0)!r})"
            if len(self)
            else f"no chip with id {chip_id!r}: the index is empty"
        )

    def locate(self, position: int) -> tuple[int, ChipWindow]:
        """Return the scene position and window of the chip at ``position`` (no checks)."""
        c = self._columns
        return int(c["scene"][position]), ChipWindow(
            int(c["row_off"][position]),
            int(c["col_off"][position]),
            int(c["height"][position]),
            int(c["width"][position]),
        )

    def window(self, position: int) -> ChipWindow:
        """Return the window of the chip at ``position``."""
        return self.locate(position)[1]

    def scene_of(self, position: int) -> Scene:
        """Return the scene of the chip at ``position``."""
        return self.scenes[int(self._columns["scene"][position])]

    def bounds(self) -> np.ndarray:
        """Return ``(left, bottom, right, top)`` of every chip in its scene's CRS.

        Rows of scenes without georeferencing are NaN; GCP scenes use their fitted transform.
        """
        return chip_bounds(self.scenes, self._columns)

    # -- selection and iteration ---------------------------------------------------------

    @overload
    def __getitem__(self, key: int | np.integer[Any]) -> Chip: ...
    @overload
    def __getitem__(self, key: slice | np.ndarray | Sequence[int] | Sequence[str]) -> ChipIndex: ...

    def __getitem__(self, key: Any) -> Chip | ChipIndex:
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            position = self._check_position(int(key))
            return Chip(self.chip_id(position), self.scene_of(position), self.window(position))
        if isinstance(key, str):
            return self[self.position(key)]
        return self.select(key)

    def _check_position(self, position: int) -> int:
        n = len(self)
        if not -n <= position < n:
            raise IndexError(f"chip position {position} is out of range for {n} chips")
        return position % n

    def select(self, key: slice | np.ndarray | Sequence[int] | Sequence[str]) -> ChipIndex:
        """Return a new index of the chips at positions, a boolean mask, a slice or chip ids.

        Positions keep the order given (so a shuffled selection is shuffled).
        """
        rows = selected_rows(key, len(self), self.position)
        return self._replace({name: values[rows] for name, values in self._columns.items()})

    def _replace(self, columns: dict[str, np.ndarray]) -> ChipIndex:
        return ChipIndex(
            self.scenes,
            columns,
            size=self.size,
            stride=self.stride,
            edge=self.edge,
            signer=self.signer,
            gdal_options=self.gdal_options,
            labels=self.labels,
            band_stats=self.band_stats,
            bands=self.bands,
        )

    def with_bands(self, bands: Sequence[int] | None) -> ChipIndex:
        """Return a copy of the index whose chips are read with ``bands`` (1-based).

        Raises:
            InvalidParameterError: if a scene lacks one of the bands.
        """
        new = self._replace(self._columns)
        new.bands = check_bands(bands, self.scenes)
        return new

    def with_labels(self, labels: Any) -> ChipIndex:
        """Return a copy of the index that carries ``labels`` (see :mod:`geochips.labels`).

        ``labels`` is a :class:`~geochips.VectorLabels`, a :class:`~geochips.RasterLabels`,
        vector data (a path, a GeoDataFrame: it burns 1 into every geometry), or ``None``.
        """
        new = self._replace(self._columns)
        new.labels = labels_.as_labels(labels)
        return new

    def __iter__(self) -> Iterator[Chip]:
        c = self._columns
        rows = zip(*(c[name].tolist() for name in WINDOW_COLUMNS), strict=True)
        for chip_id, (s, r, col, h, w) in zip(self.chip_ids, rows, strict=True):
            yield Chip(chip_id, self.scenes[s], ChipWindow(r, col, h, w))

    # -- plumbing -------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_ids"]  # derived; cheaper to rebuild than to pickle
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("gdal_options", {})  # pickled before indexes carried them
        state.setdefault("labels", None)
        state.setdefault("band_stats", None)
        state.setdefault("bands", None)
        self.__dict__.update(state)
        self._ids = ChipIds(self.scenes, self._columns)

    def __repr__(self) -> str:
        return (
            f"ChipIndex({len(self)} chips from {len(self.scenes)} scene(s), size={self.size}, "
            f"stride={self.stride}, edge={self.edge!r})"
        )

    def describe(self) -> str:
        """Return a short, token-free summary of the scenes and their chips.

        Up to :data:`DESCRIBED_SCENES` scenes, one line each with its chip count; past
        that, totals, the scenes grouped by CRS, dtype, band count and size, chips per
        scene (min/median/max) and the first few scenes.
        """
        counts = np.bincount(self._columns["scene"], minlength=len(self.scenes)).tolist()
        return describe_scenes(repr(self), self.scenes, counts)

    # -- footprints and files (geochips.footprints, geochips.io.parquet) --------------------

    def footprints(self, frame: str = "scene") -> np.ndarray:
        """Return each chip's footprint as a shapely geometry (``None`` where unknown).

        ``frame`` is ``"scene"`` (each scene's CRS), ``"pixel"`` or a CRS such as
        ``"EPSG:4326"`` (cut at the antimeridian); see :mod:`geochips.footprints`.
        """
        columns = {name: self._columns[name] for name in WINDOW_COLUMNS}
        return footprints(self.scenes, columns, frame)

    def save(
        self,
        path: str | os.PathLike[str],
        *,
        progress: ProgressSpec = None,
        folder: bool | None = None,
    ) -> None:
        """Write the index as GeoParquet (needs ``pip install geochips[parquet]``).

        One row per chip with its id, scene, unsigned hrefs, window, every column and its
        footprint in longitude/latitude; the signer is never saved. See
        :mod:`geochips.io.parquet`. The :attr:`labels` are saved with it (their hrefs
        without tokens) when they come from files; labels held in memory are not, and a
        :class:`~geochips.errors.GeochipsWarning` says so.

        ``folder=True`` writes a folder of part files and a scene table, which any number
        of scenes fits and any GeoParquet reader opens; by default it is a folder when
        ``path`` ends with a separator or is one, else one file (its scenes in the footer).
        An existing index at ``path`` is replaced only once the new one is complete.

        ``progress`` shows ``"saving index"`` in rows written: by default on a terminal
        from :data:`~geochips.io.index_save.AUTO_MIN_ROWS` rows; ``True``/``False``
        always/never, or a callable ``(done, total)`` (see :mod:`geochips.progress`).
        """
        saved, why_not = labels_.to_json(self.labels)
        if why_not is not None:
            warnings.warn(
                f"the index is saved to {os.fspath(path)!r} without labels: {why_not}",
                GeochipsWarning,
                stacklevel=2,
            )
        save_index(self, path, {"labels": saved, "bands": self.bands}, progress, folder=folder)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        sign: SignSpec = "auto",
        gdal_options: Mapping[str, Any] | None = None,
        columns: Sequence[str] | None = None,
        filters: Any = None,
        shard: tuple[int, int] | None = None,
    ) -> ChipIndex:
        """Read an index written by :meth:`save`; ``sign`` attaches a signer, as in :meth:`build`.

        ``gdal_options`` become the index's :attr:`gdal_options` (they are never saved).
        ``columns`` reads only those of the index's own columns (windows always come);
        ``filters`` (pyarrow's ``[("split", "==", "train")]`` or an expression, over any
        saved column) and ``shard=(rank, world)`` read only some rows, so each process of
        a distributed job holds its own share: shards are contiguous, disjoint and together
        whole, their sizes within one chip of each other. Chip ids do not change.

        Raises:
            IndexFileError: if the file is missing, malformed or of an unknown version.
            InvalidParameterError: for ``columns``, ``filters`` or ``shard`` it cannot apply.
        """
        meta: dict[str, Any] = {}
        index = load_index(
            path, cls, sign=sign, extra=meta, columns=columns, filters=filters, shard=shard
        )
        index.gdal_options = dict(gdal_options or {})
        saved = meta.get("labels")
        if saved is not None:
            index.labels = labels_.from_json(saved, os.fspath(path))
        index.bands = check_bands(meta.get("bands"), index.scenes)
        return index
