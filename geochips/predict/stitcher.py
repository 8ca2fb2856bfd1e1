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
is written and freed (:mod:`geochips.predict.canvas`); accumulators beyond ``cache_mb``
spill to disk (:mod:`geochips.predict.tiles`), so shuffled chips over a 16k x 16k scene
stay within it.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from geochips.errors import GeochipsWarning, InvalidParameterError
from geochips.index import ChipIndex
from geochips.predict.blend import BLENDS, OUTPUTS, output_type
from geochips.predict.canvas import Canvas
from geochips.predict.parts import Held, add_shares, close_share, merge_scene, seen_file
from geochips.predict.plan import as_array, chip_ids, output_paths
from geochips.progress import ProgressSpec, start_progress
from geochips.scene import Scene

COMPRESSIONS = ("deflate", "zstd", "lzw", "none")
AUTO_MIN_CHIPS = 1000
"""``progress=None`` shows progress on a terminal from this many chips expected."""


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
        part: ``(rank, world_size)``: this process stitches one share of the chips (its
            DistributedSampler's); :meth:`close` writes the share's accumulators beside the
            outputs, and :meth:`merge`, run once after every rank closed, writes the COGs
            (:mod:`geochips.predict.parts`).
        progress: ``"stitching"`` counted in chips added (repeats once), over the chips
            of the index (a share's for ``part``); :meth:`close` ends it once the last
            tiles are written. ``None`` shows it when stderr is a terminal and at least
            :data:`AUTO_MIN_CHIPS` chips are expected, ``True``/``False`` always/never,
            or a callable ``(done, total)`` (see :mod:`geochips.progress`).
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
        part: tuple[int, int] | None = None,
        progress: ProgressSpec = None,
    ) -> None:
        if part is not None and not (
            isinstance(part, tuple) and len(part) == 2 and 0 <= part[0] < part[1]
        ):
            raise InvalidParameterError(
                f"part must be (rank, world_size) with 0 <= rank < world_size, got {part!r}"
            )
        self.part = part
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
        self.dtype, self.nodata = output_type(output, bands, nodata)
        self._paths = output_paths(path, index, overwrite)
        self.overwrite = overwrite
        self._seen = np.zeros(len(index), dtype=bool)
        self._pending: Held | None = None
        self._canvas = Canvas(
            index,
            self._paths,
            bands=bands,
            blend=blend,
            output=output,
            dtype=self.dtype,
            nodata=self.nodata,
            overwrite=overwrite,
            compress=self.compress,
            cache_bytes=cache_mb * 2**20,
            hold=part is not None,  # a share or a merge: tiles wait for close
        )
        self.missing: list[str] = []
        """Chip ids of the index never added (set by :meth:`close`)."""
        self._closed = False
        share = len(index) if part is None else -(-len(index) // part[1])
        self._counter = start_progress(
            progress, share, label="stitching", unit="chip", auto_min=AUTO_MIN_CHIPS
        )

    @property
    def spills(self) -> int:
        """Tiles written to the scratch folder so far.

        Many spills: raise ``cache_mb``, or add chips in a more local order (e.g. that of
        :class:`~geochips.BlockShuffleSampler`).
        """
        return self._canvas.cache.spills

    @property
    def paths(self) -> list[str]:
        """Outputs written, in the order their scenes were completed."""
        return self._canvas.paths

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
        ids = chip_ids(batch)
        values = as_array(predictions)
        valid = batch.get("valid") if isinstance(batch, Mapping) and self.use_valid else None
        valid_arr = None if valid is None else as_array(valid).astype(bool)
        if values.ndim != 4 or values.shape[0] != len(ids) or values.shape[1] != self.bands:
            raise InvalidParameterError(
                f"predictions of shape {tuple(values.shape)} do not match a batch of "
                f"{len(ids)} chips with bands={self.bands}: give (N, bands, H, W)"
            )
        added = 0
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
            added += 1
            mask = None if valid_arr is None else valid_arr[i, 0]
            if self.part is None:
                self._canvas.add_chip(scene_pos, position, window, values[i], mask)
                continue
            # A share holds its latest chip back: DistributedSampler pads shards by giving
            # the first chips again as the last sample of some ranks, and only the merge
            # knows whether another rank had it (parts).
            if self._pending is not None:
                self._canvas.add_chip(*self._pending)
            keep = None if mask is None else mask.copy()
            self._pending = (scene_pos, position, window, values[i].copy(), keep)
        self._counter.add(added)

    # -- writing ------------------------------------------------------------------------

    def close(self) -> list[str]:
        """Write every scene not yet complete and return all outputs' paths.

        Chips of the index never added leave their pixels nodata; their ids are in
        :attr:`missing`, and a :class:`~geochips.errors.GeochipsWarning` says how many.
        """
        if self._closed:
            return self.paths
        self._closed = True
        if self.part is not None:
            close_share(self._canvas, self.part, self._seen, self._pending)
            self._counter.finish()
            return self.paths
        self._canvas.finish_all()
        self._counter.finish()
        self._report_missing()
        return self.paths

    def _report_missing(self) -> None:
        missing = np.flatnonzero(~self._seen)
        if len(missing):
            self.missing = [self.index.chip_id(int(p)) for p in missing]
            warnings.warn(
                f"{len(missing)} of {len(self.index)} chips were never added (e.g. "
                f"{self.missing[0]!r}); their pixels are nodata unless another chip covers "
                "them. Stitcher.missing lists them",
                GeochipsWarning,
                stacklevel=3,
            )

    # -- shares of several ranks ----------------------------------------------------------

    @classmethod
    def merge(
        cls,
        index: ChipIndex,
        path: str | os.PathLike[str] | Callable[[Scene], str],
        *,
        parts: int,
        **kwargs: Any,
    ) -> Stitcher:
        """Combine the shares of ``parts`` ranks into the COGs one process would write.

        Give the index, path and settings (``bands``, ``blend``, ``output``...) the ranks
        used; run it once every rank has closed (e.g. on rank 0 after a barrier). The
        parts' files are removed. Returns the closed stitcher (``paths``, ``missing``).

        Raises:
            InvalidParameterError: a rank's share is missing (it did not close).
        """
        out = cls(index, path, **kwargs)
        try:
            seen = [seen_file(out._canvas, rank, parts) for rank in range(parts)]
            absent = [f for f in seen if not os.path.exists(f)]
            if absent:
                raise InvalidParameterError(
                    f"{len(absent)} of {parts} ranks left no share (e.g. {absent[0]!r}): "
                    "every rank must close its Stitcher(part=(rank, world_size)) before merge"
                )
            out._canvas.hold = True
            add_shares(out._canvas, out._seen, seen)
            for s in sorted(out._paths):
                merge_scene(out._canvas, s, parts)
        except BaseException:
            out.abort()
            raise
        out._closed = True
        out._canvas.cache.close()
        for f in seen:
            os.remove(f)
        out._report_missing()
        return out

    def abort(self) -> None:
        """Stop without writing: partial files and the scratch folder are removed."""
        self._closed = True
        self._canvas.abort()
