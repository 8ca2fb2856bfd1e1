"""Where a stitcher's outputs go, which output tiles each chip touches, what a batch holds."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from geochips.errors import InvalidParameterError
from geochips.index import ChipIndex
from geochips.io.writer import BLOCK
from geochips.scene import Scene


def safe_name(scene_id: str) -> str:
    """A scene id as a file name: characters other than letters, digits, ``.-_+`` become ``_``."""
    return re.sub(r"[^A-Za-z0-9._+-]", "_", scene_id)


def path_for(path: Any, scene: Scene, scenes: int) -> str:
    """The output path of ``scene``: a ``{scene}`` pattern, a plain path or a callable."""
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


def output_paths(path: Any, index: ChipIndex, overwrite: bool) -> dict[int, str]:
    """The output path of each scene position with chips, in order (:func:`path_for`).

    Raises:
        InvalidParameterError: an output exists and ``overwrite`` is False.
    """
    used = np.unique(index.column("scene")).tolist() if len(index) else []
    paths = {s: path_for(path, index.scenes[s], len(used)) for s in used}
    clash = [p for p in paths.values() if os.path.exists(p)]
    if clash and not overwrite:
        raise InvalidParameterError(
            f"{clash[0]!r} exists ({len(clash)} output(s) do); remove them, choose "
            "another path, or pass overwrite=True"
        )
    return paths


def tile_counts(
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


def chip_ids(batch: Mapping[str, Any] | list[str]) -> list[str]:
    """The chip ids of a batch (``batch["chip_id"]``), or the list given."""
    ids = batch.get("chip_id") if isinstance(batch, Mapping) else batch
    if not isinstance(ids, (list, tuple)) or not all(isinstance(i, str) for i in ids):
        raise InvalidParameterError(
            "Stitcher.add needs the batch's chip ids: a batch from geochips.collate (with "
            "its 'chip_id' list) or the list of chip ids"
        )
    return list(ids)


def as_array(values: Any) -> np.ndarray:
    """A tensor (any device) or array as a NumPy array (float32 for floats)."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    return array.astype(np.float32, copy=False) if array.dtype.kind == "f" else array
