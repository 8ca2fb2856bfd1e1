"""Selecting chips by valid (not nodata) pixels, estimated from a coarse read of each scene.

**Usage**::

    index = geochips.estimate_valid(index, min_valid=0.5)  # adds a "valid_fraction" column

Valid fractions are estimated from a coarse version of each scene, never from its full
resolution (:func:`geochips.io.masks.read_coarse_valid`): see :func:`estimate_valid`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from geochips.errors import InvalidParameterError
from geochips.io.masks import read_coarse_valid
from geochips.progress import ProgressSpec, run_counted, start_progress
from geochips.scene import Scene
from geochips.windows import rows_by_scene

if TYPE_CHECKING:
    from geochips.index import ChipIndex

VALID_COLUMN = "valid_fraction"
AUTO_MIN_SCENES = 20
"""``progress=None`` shows progress on a terminal from this many scenes (a coarse read each)."""


def _fractions(
    scene: Scene, valid: np.ndarray | None, columns: dict[str, np.ndarray]
) -> np.ndarray:
    """Valid fraction of each window from a coarse mask (``None``: all pixels valid)."""
    h_, w_ = scene.height, scene.width
    r0 = columns["row_off"].astype(np.float64)
    c0 = columns["col_off"].astype(np.float64)
    r1 = r0 + columns["height"]
    c1 = c0 + columns["width"]
    # The part of each window inside the scene (edge="pad" windows reach outside).
    ir0, ir1 = np.clip(r0, 0, h_), np.clip(r1, 0, h_)
    ic0, ic1 = np.clip(c0, 0, w_), np.clip(c1, 0, w_)
    inside = (ir1 - ir0) * (ic1 - ic0) / ((r1 - r0) * (c1 - c0))
    if valid is None:
        return np.asarray(inside)
    ch, cw = valid.shape
    sr, sc = ch / h_, cw / w_
    R0 = np.clip(np.round(ir0 * sr), 0, ch - 1).astype(np.int64)
    C0 = np.clip(np.round(ic0 * sc), 0, cw - 1).astype(np.int64)
    R1 = np.clip(np.maximum(np.round(ir1 * sr), R0 + 1), 1, ch).astype(np.int64)
    C1 = np.clip(np.maximum(np.round(ic1 * sc), C0 + 1), 1, cw).astype(np.int64)
    table = np.zeros((ch + 1, cw + 1), dtype=np.int64)
    table[1:, 1:] = valid.cumsum(0).cumsum(1)
    count = table[R1, C1] - table[R0, C1] - table[R1, C0] + table[R0, C0]
    frac = count / ((R1 - R0) * (C1 - C0))
    return np.where(inside > 0, frac * inside, 0.0)


def estimate_valid(
    index: ChipIndex,
    *,
    min_valid: float | None = None,
    samples: int = 16,
    workers: int = 4,
    progress: ProgressSpec = None,
) -> ChipIndex:
    """Add a ``valid_fraction`` column (and keep chips with at least ``min_valid``).

    A pixel is valid as :class:`~geochips.ChipDataset` defines it: inside the scene and,
    where the scene has a nodata value, not nodata in at least one band. Scenes without a
    nodata value need no read at all (only ``edge="pad"`` windows lose their outside part).
    Otherwise each scene is read once, coarse: from its coarsest overview on which a chip
    still spans ``samples`` pixels (or the finest overview if none does), so 512-pixel
    chips are judged on a 16 x 16 grid and a 10980 x 10980 scene costs a ~700 x 700
    read. A file without overviews is read once decimated (GDAL nearest) to that density.
    Window edges are rounded to the coarse grid, so expect an error of about
    ``2 / samples`` (the estimate compared to full-resolution counts in the tests).

    Args:
        index: the chips.
        min_valid: if given, keep only chips whose valid fraction is at least this.
        samples: coarse pixels per chip side to aim for.
        workers: scenes read concurrently.
        progress: ``"valid fractions"`` counted in scenes as they complete; ``None``
            shows it when stderr is a terminal and there are at least
            :data:`AUTO_MIN_SCENES` scenes, ``True``/``False`` always/never, or a callable
            ``(done, total)`` (see :mod:`geochips.progress`).

    Raises:
        SceneReadError: naming the scene, if its coarse version cannot be read.
    """
    if min_valid is not None and (
        isinstance(min_valid, bool)
        or not isinstance(min_valid, (int, float, np.floating))
        or not 0 <= min_valid <= 1
    ):
        raise InvalidParameterError(f"min_valid must be in [0, 1], got min_valid={min_valid!r}")
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
        raise InvalidParameterError(f"samples must be an int >= 1, got samples={samples!r}")
    scene_col = np.asarray(index.column("scene"))
    out = np.zeros(len(index), dtype=np.float32)
    windows = {k: np.asarray(index.column(k)) for k in ("row_off", "col_off", "height", "width")}
    jobs = []
    for s, rows in rows_by_scene(scene_col):
        jobs.append((index.scenes[s], rows, {k: v[rows] for k, v in windows.items()}))

    def run(job: tuple[Scene, np.ndarray, dict[str, np.ndarray]]) -> None:
        scene, rows, cols = job
        mask = None
        if scene.nodata is not None:
            side = int(min(cols["height"].min(), cols["width"].min()))
            mask, _ = read_coarse_valid(scene, index.signer, samples, side, index.gdal_options)
        out[rows] = _fractions(scene, mask, cols)

    counter = start_progress(
        progress, len(jobs), label="valid fractions", unit="scene", auto_min=AUTO_MIN_SCENES
    )
    run_counted(run, jobs, workers, counter)
    result = index.with_columns(**{VALID_COLUMN: out})
    if min_valid is not None:
        result = result.select(out >= min_valid)
    return result
