"""Predictions stitched back into their scenes: one Cloud-Optimized GeoTIFF per scene.

**Usage**::

    index = geochips.ChipIndex.build(scenes, size=512, overlap=64, edge="shift")
    ds = geochips.ChipDataset(index, dtype="float32")
    with geochips.Stitcher(index, "preds/{scene}.tif", bands=3, blend="cosine") as out:
        for batch in DataLoader(ds, batch_size=16, num_workers=2, collate_fn=geochips.collate):
            out.add(batch, model(batch["image"]))     # (N, bands, H, W), in any order
    out.paths                                          # one COG per scene

Each output is on its scene's grid at the level read (CRS and transform, or the GCPs of a
Sentinel-1 GRD scene), written by :mod:`geochips.io.writer`. Overlapping chips blend:

- ``"mean"``: the plain average;
- ``"linear"`` / ``"cosine"``: an average weighted by a window falling towards each chip's
  edges (triangular / Hann), normalised by the weights' sum, so a scene border covered by
  one chip keeps that chip's values;
- ``"center"``: each pixel from the chip whose centre is nearest (ties: the chip first in
  the index), the clipping rule that hides chip edges best;
- ``"max"``: the largest value.

A pixel no valid chip pixel covers (``batch["valid"]`` False, or no chip) is nodata. The
result does not depend on the order chips arrive in (exactly, for ``"center"`` and
``"max"``; within float rounding for the averages). A chip added twice (DistributedSampler
pads its shards with repeats) counts once.

Memory: each output tile (512x512) accumulates until every chip over it has arrived, then
is written and freed; accumulators beyond ``cache_mb`` spill to disk
(:mod:`geochips.predict.tiles`), so shuffled chips over a 16k x 16k scene stay within it.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from geochips.errors import GeochipsWarning, InvalidParameterError
from geochips.index import ChipIndex
from geochips.io.writer import BLOCK, SceneWriter
from geochips.predict.tiles import Tile, TileCache, TileKey
from geochips.scene import Scene
from geochips.windows import ChipWindow

BLENDS = ("mean", "linear", "cosine", "center", "max")
OUTPUTS = ("values", "argmax", "quantized")
COMPRESSIONS = ("deflate", "zstd", "lzw", "none")


class Stitcher:
    """Write predictions of an index's chips into one COG per scene (module docstring).

    Args:
        index: the chips predicted (their windows and scenes).
        path: the output of each scene: a pattern with ``{scene}`` (the scene id, ``/``
            and other characters unsafe in file names replaced by ``_``), a plain path
            for an index of one scene, or a callable ``scene -> path``.
        bands: bands of each prediction (classes, or channels).
        blend: how overlapping chips combine, one of :data:`BLENDS`.
        output: ``"values"`` (float32, the blended values), ``"argmax"`` (the class of the
            largest band, uint8, or uint16 beyond 254 classes) or ``"quantized"``
            (probabilities in 0..1 as uint8 0..254, with the file's scale set to 1/254).
        nodata: the value of pixels no chip covers (default NaN for float, 255 / 65535).
        overwrite: replace outputs that exist (else an error before anything is written).
        cache_mb: memory for tiles still waiting for chips; the rest spills to disk.
        use_valid: leave out pixels whose ``batch["valid"]`` is False.
        compress: the COGs' compression (``"deflate"``, read everywhere; ``"zstd"``, about
            twice as fast to write; ``"lzw"``; ``"none"``).
    """

    def __init__(
        self,
        index: ChipIndex,
        path: str | os.PathLike[str] | Callable[[Scene], str],
        *,
        bands: int,
        blend: str = "cosine",
        output: str = "values",
        nodata: float | None = None,
        overwrite: bool = False,
        cache_mb: int = 512,
        use_valid: bool = True,
        compress: str = "deflate",
    ) -> None:
        if blend not in BLENDS:
            raise InvalidParameterError(f"blend must be one of {BLENDS}, got {blend!r}")
        if output not in OUTPUTS:
            raise InvalidParameterError(f"output must be one of {OUTPUTS}, got {output!r}")
        if isinstance(bands, bool) or not isinstance(bands, int) or bands < 1:
            raise InvalidParameterError(f"bands must be an int >= 1, got {bands!r}")
        self.index, self.bands, self.blend, self.output = index, bands, blend, output
        self.use_valid = use_valid
        if compress.lower() not in COMPRESSIONS:
            raise InvalidParameterError(f"compress must be one of {COMPRESSIONS}, got {compress!r}")
        self.compress = compress.lower()
        self.dtype, self.nodata = _output_type(output, bands, nodata)
        used = np.unique(index.column("scene")).tolist() if len(index) else []
        self._paths = {s: _path_for(path, index.scenes[s], len(used)) for s in used}
        clash = [p for p in self._paths.values() if os.path.exists(p)]
        if clash and not overwrite:
            raise InvalidParameterError(
                f"{clash[0]!r} exists ({len(clash)} output(s) do); remove them, choose "
                "another path, or pass overwrite=True"
            )
        self.overwrite = overwrite
        self._expected, self._received = _tile_counts(index, used)
        self._seen = np.zeros(len(index), dtype=bool)
        folder = os.path.dirname(os.path.abspath(next(iter(self._paths.values()), ".")))
        os.makedirs(folder, exist_ok=True)
        self._cache = TileCache(cache_mb * 2**20, folder)
        self._writers: dict[int, SceneWriter] = {}
        self._tiles_left = {s: int((self._expected[s] > 0).sum()) for s in used}
        self._weights: dict[tuple[int, int], np.ndarray] = {}
        self.paths: list[str] = []
        """Outputs written, in the order their scenes were completed."""
        self.missing: list[str] = []
        """Chip ids of the index never added (set by :meth:`close`)."""
        self._closed = False

    @property
    def spills(self) -> int:
        """Tiles written to the scratch folder so far.

        Many spills: raise ``cache_mb``, or add chips in a more local order (e.g. that of
        :class:`~geochips.BlockShuffleSampler`).
        """
        return self._cache.spills

    def __enter__(self) -> Stitcher:
        return self

    def __exit__(self, kind: Any, *_: Any) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()

    # -- adding predictions -------------------------------------------------------------

    def add(self, batch: Mapping[str, Any] | list[str], predictions: Any) -> None:
        """Add the predictions ``(N, bands, H, W)`` of a batch's chips (``batch["chip_id"]``).

        ``batch`` is a batch from :func:`geochips.collate` (its ``valid`` is used), or the
        list of chip ids. ``predictions`` is a tensor (any device) or an array.

        Raises:
            InvalidParameterError: predictions whose shape does not match their chips, a
                batch without chip ids, or a stitcher already closed.
            ChipNotFoundError: a chip id the index does not have.
        """
        if self._closed:
            raise InvalidParameterError("this Stitcher is closed; make a new one")
        ids = _chip_ids(batch)
        values = _array(predictions)
        valid = batch.get("valid") if isinstance(batch, Mapping) and self.use_valid else None
        valid_arr = None if valid is None else _array(valid).astype(bool)
        if values.ndim != 4 or values.shape[0] != len(ids) or values.shape[1] != self.bands:
            raise InvalidParameterError(
                f"predictions of shape {tuple(values.shape)} do not match a batch of "
                f"{len(ids)} chips with bands={self.bands}: give (N, bands, H, W)"
            )
        for i, chip_id in enumerate(ids):
            position = self.index.position(chip_id)
            scene_pos, window = self.index.locate(position)
            if values.shape[2:] != (window.height, window.width):
                raise InvalidParameterError(
                    f"the prediction for chip {chip_id!r} is {values.shape[2]}x"
                    f"{values.shape[3]} pixels, its window {window.height}x{window.width}"
                )
            if self._seen[position]:
                continue  # a repeat (DistributedSampler pads shards with them)
            self._seen[position] = True
            mask = None if valid_arr is None else valid_arr[i, 0]
            self._add_chip(scene_pos, position, window, values[i], mask)

    def _add_chip(
        self,
        s: int,
        position: int,
        w: ChipWindow,
        values: np.ndarray,
        valid: np.ndarray | None,
    ) -> None:
        scene = self.index.scenes[s]
        weight = self._window_weights(w.height, w.width)
        if valid is not None:
            weight = np.where(valid, weight, np.float32(np.nan if self.blend == "center" else 0))
        r0, c0 = max(w.row_off, 0), max(w.col_off, 0)
        r1, c1 = min(w.row_off + w.height, scene.height), min(w.col_off + w.width, scene.width)
        for ty in range(r0 // BLOCK, (r1 - 1) // BLOCK + 1):
            for tx in range(c0 // BLOCK, (c1 - 1) // BLOCK + 1):
                key = (s, ty, tx)
                tr0, tc0 = ty * BLOCK, tx * BLOCK
                shape = (min(BLOCK, scene.height - tr0), min(BLOCK, scene.width - tc0))
                tile = self._cache.get(key, (self.bands, shape, self.blend))
                ar0, ar1 = max(r0, tr0), min(r1, tr0 + shape[0])
                ac0, ac1 = max(c0, tc0), min(c1, tc0 + shape[1])
                into = (slice(ar0 - tr0, ar1 - tr0), slice(ac0 - tc0, ac1 - tc0))
                take = (
                    slice(ar0 - w.row_off, ar1 - w.row_off),
                    slice(ac0 - w.col_off, ac1 - w.col_off),
                )
                self._blend_into(tile, into, values[(slice(None), *take)], weight[take], position)
                self._received[s][ty, tx] += 1
                if self._received[s][ty, tx] == self._expected[s][ty, tx]:
                    self._finish_tile(key)

    def _blend_into(
        self, tile: Tile, into: tuple[slice, slice], values: np.ndarray, weight: np.ndarray,
        position: int,
    ) -> None:  # fmt: skip
        if self.blend == "center":
            best, source = tile.weight[into], tile.source[into]
            better = (weight < best) | ((weight == best) & (position < source))
            tile.value[(slice(None), *into)][:, better] = values[:, better]
            best[better] = weight[better]
            source[better] = position
        elif self.blend == "max":
            covered = weight > 0
            view = tile.value[(slice(None), *into)]
            np.maximum(view, np.where(covered, values, -np.inf), out=view)
            tile.weight[into] += covered
        else:
            tile.value[(slice(None), *into)] += values * weight
            tile.weight[into] += weight

    def _window_weights(self, height: int, width: int) -> np.ndarray:
        """Per pixel of a chip: its blend weight, or for ``"center"`` its distance to the centre."""
        found = self._weights.get((height, width))
        if found is not None:
            return found
        rows = (np.arange(height) + 0.5) / height
        cols = (np.arange(width) + 0.5) / width
        if self.blend == "center":
            weight = (rows[:, None] - 0.5) ** 2 * height**2 + (cols[None] - 0.5) ** 2 * width**2
        elif self.blend == "linear":
            weight = np.outer(1 - np.abs(2 * rows - 1), 1 - np.abs(2 * cols - 1))
        elif self.blend == "cosine":
            weight = np.outer(np.sin(np.pi * rows) ** 2, np.sin(np.pi * cols) ** 2)
        else:
            weight = np.ones((height, width))
        self._weights[(height, width)] = weight.astype(np.float32)
        return self._weights[(height, width)]

    # -- writing ------------------------------------------------------------------------

    def _finish_tile(self, key: TileKey) -> None:
        tile = self._cache.pop(key)
        s, ty, tx = key
        if tile is not None:
            self._writer(s).write(self._final(tile), ty * BLOCK, tx * BLOCK)
        self._tiles_left[s] -= 1
        if self._tiles_left[s] == 0:
            self.paths.append(self._writers.pop(s).finish(self._resampling(), self.compress))

    def _final(self, tile: Tile) -> np.ndarray:
        if self.blend == "center":
            covered = tile.source >= 0
            values = tile.value
        else:
            covered = tile.weight > 0
            with np.errstate(invalid="ignore", divide="ignore"):
                values = tile.value if self.blend == "max" else tile.value / tile.weight
        if self.output == "argmax":
            out = np.argmax(values, axis=0)[None].astype(self.dtype)
        elif self.output == "quantized":
            out = np.rint(np.clip(values, 0, 1) * 254).astype(self.dtype)
        else:
            out = values.astype(self.dtype)
        out[:, ~covered] = self.nodata
        final: np.ndarray = out
        return final

    def _writer(self, s: int) -> SceneWriter:
        writer = self._writers.get(s)
        if writer is None:
            writer = self._writers[s] = SceneWriter(
                self._paths[s],
                self.index.scenes[s],
                bands=1 if self.output == "argmax" else self.bands,
                dtype=self.dtype,
                nodata=self.nodata,
                overwrite=self.overwrite,
                scales=(1 / 254,) * self.bands if self.output == "quantized" else None,
            )
        return writer

    def _resampling(self) -> str:
        return "mode" if self.output == "argmax" else "average"

    def close(self) -> list[str]:
        """Write every scene not yet complete and return all outputs' paths.

        Chips of the index never added leave their pixels nodata; their ids are in
        :attr:`missing`, and a :class:`~geochips.errors.GeochipsWarning` says how many.
        """
        if self._closed:
            return self.paths
        self._closed = True
        try:
            for key in sorted(self._cache.keys()):
                self._finish_tile(key)
            for s in sorted(s for s, left in self._tiles_left.items() if left):
                if s in self._writers:
                    self.paths.append(
                        self._writers.pop(s).finish(self._resampling(), self.compress)
                    )
        finally:
            self._cache.close()
        missing = np.flatnonzero(~self._seen)
        if len(missing):
            self.missing = [self.index.chip_id(int(p)) for p in missing]
            warnings.warn(
                f"{len(missing)} of {len(self.index)} chips were never added (e.g. "
                f"{self.missing[0]!r}); their pixels are nodata unless another chip covers "
                "them. Stitcher.missing lists them",
                GeochipsWarning,
                stacklevel=2,
            )
        return self.paths

    def abort(self) -> None:
        """Stop without writing: partial files and the scratch folder are removed."""
        self._closed = True
        for writer in self._writers.values():
            writer.abort()
        self._writers.clear()
        self._cache.close()


def _output_type(output: str, bands: int, nodata: float | None) -> tuple[str, float]:
    if output == "values":
        return "float32", math.nan if nodata is None else float(nodata)
    if output == "quantized":
        return "uint8", 255 if nodata is None else nodata
    dtype = "uint8" if bands <= 255 else "uint16"
    return dtype, (np.iinfo(dtype).max if nodata is None else nodata)


def safe_name(scene_id: str) -> str:
    """A scene id as a file name: characters other than letters, digits, ``.-_+`` become ``_``."""
    return re.sub(r"[^A-Za-z0-9._+-]", "_", scene_id)


def _path_for(path: Any, scene: Scene, scenes: int) -> str:
    if callable(path):
        return str(os.fspath(path(scene)))
    text = str(os.fspath(path))
    if "{scene}" in text:
        return text.replace("{scene}", safe_name(scene.id))
    if scenes > 1:
        raise InvalidParameterError(
            f"the index has {scenes} scenes but the output path {text!r} has no {{scene}}; "
            "use e.g. 'preds/{scene}.tif'"
        )
    return text


def _tile_counts(
    index: ChipIndex, used: list[int]
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """Per scene, how many chips touch each output tile, and a zeroed count of arrivals."""
    c = {n: index.column(n) for n in ("scene", "row_off", "col_off", "height", "width")}
    expected, received = {}, {}
    for s in used:
        scene = index.scenes[s]
        rows = c["scene"] == s
        r0 = np.maximum(c["row_off"][rows], 0)
        c0 = np.maximum(c["col_off"][rows], 0)
        r1 = np.minimum(c["row_off"][rows] + c["height"][rows], scene.height)
        c1 = np.minimum(c["col_off"][rows] + c["width"][rows], scene.width)
        counts = np.zeros((-(-scene.height // BLOCK), -(-scene.width // BLOCK)), dtype=np.int64)
        spans = zip(
            (r0 // BLOCK).tolist(),
            ((r1 - 1) // BLOCK).tolist(),
            (c0 // BLOCK).tolist(),
            ((c1 - 1) // BLOCK).tolist(),
            strict=True,
        )
        for top, bottom, left, right in spans:
            counts[top : bottom + 1, left : right + 1] += 1
        expected[s], received[s] = counts, np.zeros_like(counts)
    return expected, received


def _chip_ids(batch: Mapping[str, Any] | list[str]) -> list[str]:
    ids = batch.get("chip_id") if isinstance(batch, Mapping) else batch
    if not isinstance(ids, (list, tuple)) or not all(isinstance(i, str) for i in ids):
        raise InvalidParameterError(
            "Stitcher.add needs the batch's chip ids: a batch from geochips.collate (with "
            "its 'chip_id' list) or the list of chip ids"
        )
    return list(ids)


def _array(values: Any) -> np.ndarray:
    """A tensor (any device) or array as a NumPy array (float32 for floats)."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    return array.astype(np.float32, copy=False) if array.dtype.kind == "f" else array
