"""The map-style dataset: ``len(ds) == len(index)``, and ``ds[i]`` reads one window.

A sample is a dict in the convention torchgeo users know (:class:`Sample`, in
:mod:`geochips.loading.samples` with the geometry, valid mask and labels of a chip).

Dtypes are chosen by :func:`geochips.loading.dtypes.output_dtype` (see its module). The
constructor's arguments are checked in :mod:`geochips.loading.arguments`, and batches
(``__getitems__``) are read in :mod:`geochips.loading.batches`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import Dataset

from geochips import hrefs
from geochips.errors import SceneReadError, TransformError
from geochips.index import ChipIndex
from geochips.io.reader import Reader
from geochips.io.settings import READ_RETRIES
from geochips.io.signing import SignSpec
from geochips.labels import as_labels
from geochips.loading import arguments, shared
from geochips.loading.batches import Batches
from geochips.loading.normalize import Normalize
from geochips.loading.samples import (
    Sample,
    add_labels,
    chip_bounds,
    chip_transform,
    scene_values,
    typed_nodata,
    valid_mask,
)
from geochips.plot.samples import plot_sample
from geochips.scene import Scene, check_bands
from geochips.select import checksums
from geochips.windows import ChipWindow

shared.install()  # spawned DataLoader workers map the index's columns, not copy them

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class ChipDataset(Dataset[Sample]):
    """A map-style dataset over a :class:`ChipIndex`; each item reads one window lazily.

    **Usage**::

        ds = ChipDataset(index, bands=[1, 2, 3], dtype="float32")
        ds[0]["image"].shape            # torch.Size([3, 512, 512])
        ds["scene/full/0/512/512x512"]  # the same chip, looked up by id
        loader = DataLoader(ds, batch_size=16, shuffle=True, num_workers=2,
                            collate_fn=geochips.collate)

    The STAC item properties named in ``ChipIndex.build(properties=[...])`` join every
    sample, date-times as ISO strings and POSIX seconds
    (:func:`~geochips.loading.samples.scene_values`).

    Args:
        index: the chips to serve, in order.
        bands: 1-based band positions of the stacked scene (default: the index's
            :attr:`~geochips.ChipIndex.bands`, else all).
        dtype: output dtype (default: the smallest torch-friendly dtype holding every
            value, see the module docstring); ``"uint16"`` keeps uint16 pixels as they are
            (fastest, half the bytes of int32; convert them on the GPU).
        scale: apply each band's scale and offset from the scene header (float output).
        transform: a callable applied to each sample dict before it is returned.
        fill_value: value of padded pixels (default: the scene's nodata, else 0).
        max_open: open files kept per thread of each process (default: sized from the
            file-descriptor limit, 8 to 256; :func:`geochips.io.reader.default_max_open`).
        gdal_options: GDAL configuration options for every reading process, over the
            index's own (:attr:`ChipIndex.gdal_options`, given to ``build``).
        threads: threads reading the chips of one batch in ``__getitems__``; ``None``
            picks 8 for remote scenes, and for local ones 1 inside DataLoader workers (the
            workers already use the cores) and in the main process one thread or the CPU
            count, whichever has read the batches faster
            (:mod:`geochips.loading.threadrule`).
        reuse_batch_memory: in DataLoader workers, read batches into shared memory the
            worker reuses (:mod:`geochips.loading.slots`); ``False`` gives plain memory, which torch
            copies into fresh shared memory for every batch, as does the environment
            variable ``GEOCHIPS_REUSE_BATCH_MEMORY=0`` for every dataset.
        sign: replaces the index's signer (kept when not given): ``None`` reads hrefs
            as they are; ``"auto"``, ``"planetary-computer"`` or a callable as in
            :meth:`ChipIndex.build`.
        retries: attempts after the first for a failed remote read (see
            :data:`geochips.io.settings.READ_RETRIES`); ``0`` fails on the first error.
        verify: check every chip against the ``checksum`` column of the index (see
            :func:`geochips.record_checksums`); ``None`` checks when the index has one.
            Checksums cover every band, so a dataset reading some ``bands`` reads them
            all to check them.
        labels: what each sample's ``mask`` (and, for detection, ``boxes``/``labels``)
            holds: a :class:`~geochips.VectorLabels`, a :class:`~geochips.RasterLabels`, or
            vector data (a path, a GeoDataFrame), which burns 1 into every geometry
            (:mod:`geochips.labels`); by default the index's :attr:`ChipIndex.labels`.
        normalize: ``None``, ``"stats"`` (the index's :attr:`~ChipIndex.band_stats`), a
            :class:`~geochips.BandStats` or ``(mean, std)``: float32 samples
            ``(x - mean) / std`` per band, invalid pixels at 0.0 and ``False`` in
            ``valid`` (see :mod:`geochips.loading.normalize`).

    Raises:
        IncompatibleScenesError: the scenes' samples could not be batched together (they
            differ in band count or output dtype); choose ``bands=`` or ``dtype=``.
    """

    def __init__(
        self,
        index: ChipIndex,
        *,
        bands: Sequence[int] | None = None,
        dtype: str | np.dtype[Any] | torch.dtype | None = None,
        scale: bool = False,
        transform: Callable[[Sample], Any] | None = None,
        fill_value: float | None = None,
        max_open: int | None = None,
        gdal_options: Mapping[str, Any] | None = None,
        threads: int | None = None,
        reuse_batch_memory: bool = True,
        sign: SignSpec = arguments.UNSET,
        retries: int = READ_RETRIES,
        verify: bool | None = None,
        labels: Any = None,
        normalize: Normalize = None,
    ) -> None:
        self.index = arguments.check_index(index)
        self.bands = check_bands(bands if bands is not None else index.bands, index.scenes)
        self.scale = scale
        self._normalize, self._out_dtypes = arguments.output_dtypes(
            index, self.bands, dtype, scale, normalize
        )
        self._fill = [arguments.fill_for(s, fill_value) for s in index.scenes]
        self._properties = [scene_values(s) for s in index.scenes]
        self._nodata = [typed_nodata(s) for s in index.scenes]
        self.transform = transform
        self.threads = arguments.check_threads(threads)
        self.reuse_batch_memory = reuse_batch_memory
        self.reader = Reader(
            max_open=max_open,
            gdal_options={**index.gdal_options, **(gdal_options or {})},
            signer=arguments.signer(index, sign),
            retries=retries,
        )
        self.with_valid = index.edge == "pad" or any(s.nodata is not None for s in index.scenes)
        self._checksums = arguments.checksums_to_verify(index, verify)
        self.labels = as_labels(labels if labels is not None else index.labels)
        self._labeller = arguments.labeller(self.labels, self.reader)
        self._batches = Batches(
            index,
            self.reader,
            self.bands,
            self._out_dtypes,
            valid=self.with_valid,
            mask=None if self.labels is None else self.labels.dtype,
        )

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key: int | str) -> Any:
        """Return the sample at position ``key`` (negative counts from the end) or chip id."""
        if isinstance(key, str):
            position = self.index.position(key)
        elif isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            position = int(key)
            n = len(self.index)
            if not -n <= position < n:
                raise IndexError(f"chip position {key} is out of range for {n} chips")
            position %= n
        else:
            raise TypeError(
                f"ChipDataset indices are ints (positions) or str (chip ids), "
                f"got {type(key).__name__}"
            )
        with self.reader.scope(self._batches.network):
            sample = self._read(position)
        return sample if self.transform is None else self._transformed(sample)

    def _transformed(self, sample: Sample) -> Any:
        assert self.transform is not None
        try:
            return self.transform(sample)
        except Exception as exc:
            name = getattr(self.transform, "__qualname__", None) or type(self.transform).__name__
            raise TransformError(
                f"transform {name} raised {type(exc).__name__} on chip {sample['chip_id']!r} "
                f"of scene {sample['scene_id']!r}: {exc}"
            ) from exc

    def __getitems__(self, keys: Sequence[int | str]) -> list[Any]:
        """Return the samples of a batch, read by several threads (GDAL releases the GIL).

        A batch of positions is read into one tensor per key, which
        :func:`~geochips.collate` returns without stacking (:mod:`geochips.loading.batches`).
        """
        into = self._read if self.transform is None else None
        return self._batches.read(
            keys, self.__getitem__, into, self.threads, reuse=self.reuse_batch_memory
        )

    def _read(self, position: int, rows: dict[str, torch.Tensor] | None = None) -> Sample:
        """Read one sample (into ``rows``, its rows of the batch tensors, when given)."""
        rows = rows or {}
        image, valid = rows.get("image"), rows.get("valid")
        index = self.index
        scene_pos, window = index.locate(position)
        scene = index.scenes[scene_pos]
        fill = self._fill[scene_pos]
        slot = None if image is None else image.numpy()
        direct = slot if slot is not None and not self.scale and slot.dtype == scene.dtype else None
        chip_id = index.chip_id(position)
        if self._checksums is None:
            data = self.reader.read(
                scene, window, self.bands, fill_value=fill, out=direct, chip_id=chip_id
            )
        else:
            data = self._verified(position, scene, window, fill, chip_id)
        mask = None
        if self.with_valid:
            out = None if valid is None else valid.numpy()
            mask = valid_mask(data, scene, window, self._nodata[scene_pos], out)
        if self._normalize is not None:
            pixels = self._normalize.apply(self._convert(data, scene, scene_pos), mask, slot)
            image = torch.from_numpy(pixels) if image is None else image
        elif image is None:
            image = torch.from_numpy(self._convert(data, scene, scene_pos))
        elif data is not slot:  # (else GDAL wrote the pixels straight into the batch tensor)
            converted = self._convert(data, scene, scene_pos) if self.scale else data
            # "unsafe" only names the cast: output_dtype refused every one that could wrap.
            np.copyto(image.numpy(), converted, casting="unsafe")
        sample: Sample = {
            "image": image,
            "chip_id": chip_id,
            "scene_id": scene.id,
            "window": window,
            "bounds": chip_bounds(scene.transform, window),
            "crs": scene.crs,
            "transform": chip_transform(scene.transform, window),
        }
        sample.update(self._properties[scene_pos])  # type: ignore[typeddict-item]
        if mask is not None:
            sample["valid"] = torch.from_numpy(mask) if valid is None else valid
        if self._labeller is not None:
            add_labels(sample, self._labeller, scene, window, chip_id, rows.get("mask"))
        return sample

    def _verified(
        self, position: int, scene: Scene, window: ChipWindow, fill: float, chip_id: str
    ) -> np.ndarray:
        """Read every band of a chip, check its checksum, return the bands asked for."""
        assert self._checksums is not None
        data = self.reader.read(scene, window, fill_value=fill, chip_id=chip_id)
        if checksums.chip_checksum(data, scene, window) != int(self._checksums[position]):
            raise SceneReadError(
                f"chip {chip_id!r}, window (row_off={window.row_off}, col_off="
                f"{window.col_off}, height={window.height}, width={window.width}) of scene "
                f"{scene.id!r} at {hrefs.redact(scene.hrefs[0])} decoded without error, but "
                "its pixels differ from the checksum recorded by geochips.record_checksums: "
                "the file is damaged or was rewritten. Re-download it, or rebuild the index "
                "(and its checksums)"
            )
        return data if self.bands is None else data[[b - 1 for b in self.bands]]

    def _convert(self, data: np.ndarray, scene: Scene, scene_pos: int) -> np.ndarray:
        dst = self._out_dtypes[scene_pos]
        if not self.scale:
            return data.astype(dst, copy=False)
        bands = self.bands or range(1, scene.count + 1)
        scales = np.array([scene.scales[b - 1] for b in bands], dtype=dst)[:, None, None]
        offsets = np.array([scene.offsets[b - 1] for b in bands], dtype=dst)[:, None, None]
        scaled: np.ndarray = data.astype(dst) * scales + offsets
        return scaled

    def __repr__(self) -> str:
        return f"ChipDataset({len(self)} chips, {self.index!r})"

    def plot(self, key: int | str, **kwargs: Any) -> Figure:
        """Draw ``self[key]`` with :func:`geochips.plot.plot_sample` (``geochips[plot]``)."""
        return plot_sample(self[key], **kwargs)
