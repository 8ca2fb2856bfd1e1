"""ChipDataset's arguments, checked and resolved before any pixel is read.

Each function takes one argument (or a few that only make sense together) of
:class:`~geochips.ChipDataset` and returns what the dataset keeps, or raises the error
that names the scene and the fix: so that ``ds[i]`` itself only raises ``IndexError`` for
its position and :class:`~geochips.SceneReadError` for the files.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from geochips.errors import IncompatibleScenesError, InvalidParameterError
from geochips.index import ChipIndex
from geochips.io.reader import Reader
from geochips.io.signing import Signer, SignSpec, resolve_signer
from geochips.labels import Labeller, Labels, RasterLabels
from geochips.labels.raster import RasterLabeller
from geochips.labels.vector import VectorLabeller
from geochips.loading.dtypes import dtype_name, output_dtype
from geochips.loading.normalize import Normalize, Normalizer, resolve_normalize
from geochips.scene import Scene
from geochips.select import checksums

UNSET: Any = object()
"""``sign=`` not given: the dataset keeps the index's signer."""


def check_index(index: Any) -> ChipIndex:
    """Refuse anything but a :class:`ChipIndex`, saying how to build one."""
    if not isinstance(index, ChipIndex):
        raise InvalidParameterError(
            f"ChipDataset takes a ChipIndex, got {type(index).__name__}; build one with "
            "geochips.ChipIndex.build(sources, size=...)"
        )
    return index


def output_dtypes(
    index: ChipIndex,
    bands: list[int] | None,
    dtype: str | np.dtype[Any] | torch.dtype | None,
    scale: bool,
    normalize: Normalize,
) -> tuple[Normalizer | None, list[np.dtype[Any]]]:
    """The normaliser and each scene's output dtype, for scenes that batch together."""
    requested = dtype_name(dtype)
    normalizer = resolve_normalize(normalize, index, bands, requested, scale)
    out_dtypes = (
        [normalizer.dtype] * len(index.scenes)
        if normalizer is not None
        else [output_dtype(s.dtype, requested, scale) for s in index.scenes]
    )
    _check_stackable(index, bands, out_dtypes)
    return normalizer, out_dtypes


def _check_stackable(
    index: ChipIndex, bands: list[int] | None, out_dtypes: Sequence[np.dtype[Any]]
) -> None:
    """Refuse scenes whose samples could not be stacked into one batch tensor."""
    used = np.unique(index.column("scene")).tolist() if len(index) else []
    kinds: dict[tuple[int, str], list[int]] = {}
    for s in used:
        count = len(bands) if bands is not None else index.scenes[s].count
        kinds.setdefault((count, out_dtypes[s].name), []).append(s)
    if len(kinds) <= 1:
        return
    described = "; ".join(
        f"{count} band(s) of {dtype} in {len(scenes)} scene(s) such as "
        f"{index.scenes[scenes[0]].name}"
        for (count, dtype), scenes in sorted(kinds.items())
    )
    counts = {count for count, _ in kinds}
    fix = (
        f"choose bands present in every scene, e.g. bands={list(range(1, min(counts) + 1))}"
        if len(counts) > 1
        else "choose one output dtype, e.g. dtype='float32'"
    )
    raise IncompatibleScenesError(
        f"the samples of these scenes cannot be batched together: {described}. "
        f"Split the index by scene kind, or {fix}"
    )


def fill_for(scene: Scene, fill_value: float | None) -> float:
    """The value of ``scene``'s padded pixels: ``fill_value``, else its nodata, else 0."""
    value = (
        fill_value if fill_value is not None else (scene.nodata if scene.nodata is not None else 0)
    )
    dtype = np.dtype(scene.dtype)
    if dtype.kind in "iu" and not (
        float(value).is_integer() and np.iinfo(dtype).min <= value <= np.iinfo(dtype).max
    ):
        raise InvalidParameterError(
            f"fill_value={value!r} does not fit the {dtype.name} pixels of scene {scene.name}; "
            f"choose a value in {np.iinfo(dtype).min}..{np.iinfo(dtype).max}"
        )
    return value


def check_threads(threads: Any) -> int | None:
    """``threads`` itself, once it is ``None`` or an int >= 1."""
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise InvalidParameterError(f"threads must be None or an int >= 1, got {threads!r}")
    return threads


def signer(index: ChipIndex, sign: SignSpec) -> Signer | None:
    """The signer ``sign`` names, or the index's own when ``sign`` is not given."""
    if sign is UNSET:
        return index.signer
    return resolve_signer(sign, (h for s in index.scenes for h in s.hrefs))


def checksums_to_verify(index: ChipIndex, verify: bool | None) -> np.ndarray | None:
    """The index's checksum column when chips are to be checked, else None."""
    has_sums = checksums.COLUMN in index.column_names
    if verify and not has_sums:
        raise InvalidParameterError(
            "verify=True needs an index with checksums: add them with "
            "geochips.record_checksums(index) while the files are known to be good"
        )
    return index.column(checksums.COLUMN) if has_sums and verify is not False else None


def labeller(labels: Labels | None, reader: Reader) -> Labeller | None:
    """What makes each sample's ``mask`` (raster labels read through ``reader``)."""
    if isinstance(labels, RasterLabels):
        return RasterLabeller(labels, reader)
    if labels is not None:
        return VectorLabeller(labels)
    return None
