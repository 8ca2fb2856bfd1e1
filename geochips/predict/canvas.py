"""Each scene's output tiles: chips blended into them, a tile written once its chips are in.

A :class:`Canvas` knows how many chips touch each output tile
(:func:`~geochips.predict.plan.tile_counts`) and counts them as they are blended in
(:func:`~geochips.predict.blend.blend_into`). A tile whose last chip arrived is written to
its scene's COG (:class:`~geochips.io.writer.SceneWriter`) and freed; a scene whose last
tile is written is finished. Tiles still waiting live in a
:class:`~geochips.predict.tiles.TileCache` (memory up to a budget, the rest on disk). A
canvas that holds its tiles (a rank's share, or a merge) writes nothing as chips arrive:
only the merge knows when a tile is complete.
"""

from __future__ import annotations

import os

import numpy as np

from geochips.index import ChipIndex
from geochips.io.writer import BLOCK, SceneWriter
from geochips.predict.blend import blend_into, final, window_weights
from geochips.predict.plan import tile_counts
from geochips.predict.tiles import TileCache, TileKey
from geochips.windows import ChipWindow


class Canvas:
    """Every output tile of the scenes in ``outputs``, blended and written as chips arrive.

    Args:
        index: the chips (their windows and scenes).
        outputs: the output path of each scene position stitched.
        bands: bands of each prediction.
        blend: how overlapping chips combine (:data:`~geochips.predict.blend.BLENDS`).
        output: the output kind (:data:`~geochips.predict.blend.OUTPUTS`).
        dtype: the outputs' dtype.
        nodata: the outputs' nodata value.
        overwrite: replace outputs that exist.
        compress: the COGs' compression.
        cache_bytes: memory for tiles still waiting for chips; the rest spills to disk.
        hold: keep every tile until the end (a share or a merge).
    """

    def __init__(
        self,
        index: ChipIndex,
        outputs: dict[int, str],
        *,
        bands: int,
        blend: str,
        output: str,
        dtype: str,
        nodata: float,
        overwrite: bool,
        compress: str,
        cache_bytes: int,
        hold: bool,
    ) -> None:
        self.index, self.outputs, self.bands = index, outputs, bands
        self.blend, self.output, self.dtype, self.nodata = blend, output, dtype, nodata
        self.overwrite, self.compress, self.hold = overwrite, compress, hold
        used = sorted(outputs)
        self.expected, self._received = tile_counts(index, used)
        folder = os.path.dirname(os.path.abspath(next(iter(outputs.values()), ".")))
        os.makedirs(folder, exist_ok=True)
        self.cache = TileCache(cache_bytes, folder)
        self.writers: dict[int, SceneWriter] = {}
        self._tiles_left = {s: int((self.expected[s] > 0).sum()) for s in used}
        self._weights: dict[tuple[int, int], np.ndarray] = {}
        self.paths: list[str] = []
        """Outputs written, in the order their scenes were completed."""

    def add_chip(
        self,
        s: int,
        position: int,
        w: ChipWindow,
        values: np.ndarray,
        valid: np.ndarray | None,
    ) -> None:
        """Blend the prediction ``values`` of chip ``position`` (window ``w`` of scene ``s``)."""
        scene = self.index.scenes[s]
        weight = self._weights.get((w.height, w.width))
        if weight is None:
            weight = self._weights[(w.height, w.width)] = window_weights(
                self.blend, w.height, w.width
            )
        if valid is not None:
            weight = np.where(valid, weight, np.float32(np.nan if self.blend == "center" else 0))
        r0, c0 = max(w.row_off, 0), max(w.col_off, 0)
        r1, c1 = min(w.row_off + w.height, scene.height), min(w.col_off + w.width, scene.width)
        for ty in range(r0 // BLOCK, (r1 - 1) // BLOCK + 1):
            for tx in range(c0 // BLOCK, (c1 - 1) // BLOCK + 1):
                key = (s, ty, tx)
                tr0, tc0 = ty * BLOCK, tx * BLOCK
                shape = (min(BLOCK, scene.height - tr0), min(BLOCK, scene.width - tc0))
                tile = self.cache.get(key, (self.bands, shape, self.blend))
                ar0, ar1 = max(r0, tr0), min(r1, tr0 + shape[0])
                ac0, ac1 = max(c0, tc0), min(c1, tc0 + shape[1])
                into = (slice(ar0 - tr0, ar1 - tr0), slice(ac0 - tc0, ac1 - tc0))
                take = (
                    slice(ar0 - w.row_off, ar1 - w.row_off),
                    slice(ac0 - w.col_off, ac1 - w.col_off),
                )
                chip = values[(slice(None), *take)]
                blend_into(self.blend, tile, into, chip, weight[take], position)
                self._received[s][ty, tx] += 1
                done = self._received[s][ty, tx] == self.expected[s][ty, tx]
                if done and not self.hold:  # a share never knows a tile is complete
                    self.finish_tile(key)

    def finish_tile(self, key: TileKey) -> None:
        """Write tile ``key`` (if a chip reached it), and its scene once its last tile is."""
        tile = self.cache.pop(key)
        s, ty, tx = key
        if tile is not None:
            self.writer(s).write(
                final(tile, self.blend, self.output, self.dtype, self.nodata),
                ty * BLOCK,
                tx * BLOCK,
            )
        self._tiles_left[s] -= 1
        if self._tiles_left[s] == 0:
            self.finish_scene(s)

    def finish_all(self) -> None:
        """Write every tile and scene not yet complete, then remove the scratch folder."""
        try:
            for key in sorted(self.cache.keys()):
                self.finish_tile(key)
            for s in sorted(s for s, left in self._tiles_left.items() if left):
                if s in self.writers:
                    self.finish_scene(s)
        finally:
            self.cache.close()

    def writer(self, s: int) -> SceneWriter:
        """Return the writer of scene ``s``'s output, made when its first tile is written."""
        writer = self.writers.get(s)
        if writer is None:
            writer = self.writers[s] = SceneWriter(
                self.outputs[s],
                self.index.scenes[s],
                bands=1 if self.output == "argmax" else self.bands,
                dtype=self.dtype,
                nodata=self.nodata,
                overwrite=self.overwrite,
                scales=(1 / 254,) * self.bands if self.output == "quantized" else None,
            )
        return writer

    def finish_scene(self, s: int) -> None:
        """Finish scene ``s``'s COG (its overviews and layout) and record its path."""
        resampling = "mode" if self.output == "argmax" else "average"
        self.paths.append(self.writers.pop(s).finish(resampling, self.compress))

    def abort(self) -> None:
        """Stop without writing: partial files and the scratch folder are removed."""
        for writer in self.writers.values():
            writer.abort()
        self.writers.clear()
        self.cache.close()
