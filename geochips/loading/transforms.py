"""Joint augmentation: the dihedral group applied exactly to every key of a sample.

The eight elements of D4 (flips, 90° rotations, transposes) move pixels without
interpolating them, so one element applied to ``image``, ``valid`` and ``mask`` keeps them
aligned pixel for pixel. An element moves together, in one call:

* the **raster keys**: every tensor (other than ``boxes`` and ``labels``) whose last two
  dims are the chip's ``(H, W)``, the last two of ``image`` (``image``, ``valid``,
  ``mask``, instance masks, ...). Any other tensor of two or more dims is refused rather
  than left behind unaligned;
* ``boxes``: ``(K, 4)`` pixel ``xyxy`` in the chip (a list of them in a batch);
* ``transform``: the chip's affine, changed so that it maps the new pixel grid to the same
  ground: ``bounds``, ``window``, ``crs`` and the rest do not change;
* ``dihedral``: the element applied since the chip was read (an int; a list of ints in a
  batch), so that ``Dihedral(sample["dihedral"]).inverse()`` maps predictions back.

Rotations of a non-square chip swap ``H`` and ``W``. A sample (``image`` ``(C, H, W)``) gets
one element; a batch from :func:`geochips.collate` (``image`` ``(N, C, H, W)``) gets one
element for the whole batch, or one per sample with ``per_sample=True`` (square chips, or
elements that keep the shape). Transposes are views of the input and flips are copies;
the input dict and its tensors are never modified.

Element ``k`` is ``rot90(k % 4)`` after a left-right flip when ``k >= 4`` (``rot90`` is
:func:`numpy.rot90`, counter-clockwise): see :data:`ELEMENTS`.

**Usage**::

    train = geochips.ChipDataset(index, transform=geochips.transforms.RandomDihedral())
    tta = geochips.transforms.Dihedral("rot90")                  # test-time augmentation
    pred = tta.inverse().apply(model(tta(batch)["image"]))       # back on the chips' grid
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from affine import Affine
from torch.utils.data import get_worker_info

from geochips.errors import InvalidParameterError

ELEMENTS = (
    "identity",
    "rot90",
    "rot180",
    "rot270",
    "hflip",
    "transpose",
    "vflip",
    "antitranspose",
)
"""The names of the elements ``0`` to ``7``."""

# Element k as tensor ops: flip these dims, then swap the last two (a view) or not.
_FLIPS: tuple[tuple[int, ...], ...] = ((), (-1,), (-2, -1), (-2,), (-1,), (), (-2,), (-2, -1))
_SWAPS = (False, True, False, True, False, True, False, True)
# torch flips no unsigned type wider than uint8: flip their bits as the signed type.
_SIGNED = {torch.uint16: torch.int16, torch.uint32: torch.int32, torch.uint64: torch.int64}

Sample = dict[str, Any]


class Dihedral:
    """One element of D4, by number (``0``-``7``) or name (:data:`ELEMENTS`).

    **Usage**::

        flipped = Dihedral("hflip")(sample)
        assert Dihedral("rot90").inverse() == Dihedral("rot270")
    """

    def __init__(self, element: int | str) -> None:
        if isinstance(element, str) and element in ELEMENTS:
            element = ELEMENTS.index(element)
        if isinstance(element, bool) or not isinstance(element, int) or not 0 <= element < 8:
            raise InvalidParameterError(
                f"a dihedral element is 0-7 or one of {', '.join(ELEMENTS)}; got {element!r}"
            )
        self.k = element
        """The element's number (``sample["dihedral"]`` records it)."""

    @property
    def name(self) -> str:
        """The element's name, e.g. ``"rot90"``."""
        return ELEMENTS[self.k]

    def inverse(self) -> Dihedral:
        """The element that undoes this one (flips and transposes undo themselves)."""
        return self if self.k >= 4 else Dihedral(-self.k % 4)

    def then(self, other: Dihedral) -> Dihedral:
        """The element that applies this one, then ``other``."""
        flip, rot = divmod(self.k, 4)
        other_flip, other_rot = divmod(other.k, 4)
        # A flip turns the rotations before it back: flip rot^b = rot^-b flip.
        return Dihedral(4 * (flip ^ other_flip) + (other_rot + (-rot if other_flip else rot)) % 4)

    def __call__(self, sample: Sample) -> Sample:
        """Return ``sample`` (or a batch) with this element applied to all its keys."""
        return _apply(sample, self.k)

    def apply(self, tensor: torch.Tensor) -> torch.Tensor:
        """Apply this element to the last two dims of ``tensor`` (e.g. a prediction)."""
        if self.k == 0:
            return tensor
        signed = _SIGNED.get(tensor.dtype)
        out = tensor if signed is None else tensor.view(signed)
        if _FLIPS[self.k]:
            out = out.flip(_FLIPS[self.k])
        if _SWAPS[self.k]:
            out = out.transpose(-2, -1)
        return out if signed is None else out.view(tensor.dtype)

    def apply_boxes(self, boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Pixel ``xyxy`` boxes of a ``height`` x ``width`` chip, on the new grid."""
        x0, y0, x1, y1 = boxes.unbind(-1)
        flip, rot = divmod(self.k, 4)
        if flip:
            x0, x1 = width - x1, width - x0
        for _ in range(rot):  # counter-clockwise: (x, y) -> (y, W - x), then W, H swap
            x0, y0, x1, y1 = y0, width - x1, y1, width - x0
            height, width = width, height
        return torch.stack((x0, y0, x1, y1), dim=-1)

    def apply_transform(self, transform: Affine, height: int, width: int) -> Affine:
        """The affine of the new grid: each new pixel maps to the ground it showed before."""
        flip, rot = divmod(self.k, 4)
        if flip:  # new (x, y) came from (W - x, y)
            transform = _then(transform, (-1, 0, width, 0, 1, 0))
        for _ in range(rot):  # new (x, y) came from (W - y, x)
            transform = _then(transform, (0, -1, width, 1, 0, 0))
            height, width = width, height
        return transform

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Dihedral) and other.k == self.k

    def __hash__(self) -> int:
        return hash(("Dihedral", self.k))

    def __repr__(self) -> str:
        return f"Dihedral({self.name!r})"


class RandomDihedral:
    """Draw one of ``elements`` (all eight by default) for each sample, or each batch.

    Draws use torch's random generator, which DataLoader seeds in each worker from its own
    ``generator``: the same ``DataLoader(generator=torch.Generator().manual_seed(s))`` and
    workers give the same augmentations. Give ``generator=`` to draw from your own; in a
    DataLoader worker it is re-seeded from its seed and the worker's, so that workers (and
    epochs) differ.

    Args:
        elements: the elements to draw from (numbers or names).
        weights: their relative probabilities (uniform by default).
        per_sample: on a batch, draw an element for each sample instead of one for all.
        generator: a ``torch.Generator`` to draw from instead of torch's default one.
    """

    def __init__(
        self,
        elements: Sequence[int | str] = ELEMENTS,
        *,
        weights: Sequence[float] | None = None,
        per_sample: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        self.elements = tuple(Dihedral(e) for e in elements)
        if not self.elements:
            raise InvalidParameterError("RandomDihedral needs at least one element")
        self.weights = torch.ones(len(self.elements), dtype=torch.float64)
        if weights is not None:
            self.weights = torch.tensor(list(weights), dtype=torch.float64)
            if (
                len(self.weights) != len(self.elements)
                or not torch.isfinite(self.weights).all()
                or (self.weights < 0).any()
                or self.weights.sum() <= 0
            ):
                raise InvalidParameterError(
                    f"weights must be {len(self.elements)} finite non-negative numbers, "
                    f"not all 0, one per element; got {list(weights)}"
                )
        self.per_sample = per_sample
        self.generator = generator
        self._worker: tuple[int, torch.Generator] | None = None

    def __call__(self, sample: Sample) -> Sample:
        """Return ``sample`` (or a batch) with a random element applied to all its keys."""
        image = _image(sample)
        draws = len(image) if self.per_sample and image.ndim == 4 else 1
        picks = torch.multinomial(self.weights, draws, replacement=True, generator=self._gen())
        ks = [self.elements[i].k for i in picks.tolist()]
        return _apply(sample, ks if self.per_sample and image.ndim == 4 else ks[0])

    def __getstate__(self) -> dict[str, Any]:
        # torch pickles a Generator's state as a tensor, which spawned DataLoader workers
        # receive through shared memory and fail to map: send its bytes instead.
        state = self.__dict__.copy()
        state["_worker"] = None
        if self.generator is not None:
            state["generator"] = (
                self.generator.initial_seed(),
                self.generator.get_state().numpy().tobytes(),
            )
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if state["generator"] is not None:
            seed, rng = state["generator"]
            generator = torch.Generator().manual_seed(seed)
            generator.set_state(torch.frombuffer(bytearray(rng), dtype=torch.uint8))
            state["generator"] = generator
        self.__dict__.update(state)

    def _gen(self) -> torch.Generator | None:
        info = get_worker_info()
        if self.generator is None or info is None:
            return self.generator
        if self._worker is None or self._worker[0] != info.seed:
            seed = hash((self.generator.initial_seed(), info.seed)) % 2**63
            self._worker = (info.seed, torch.Generator().manual_seed(seed))
        return self._worker[1]

    def __repr__(self) -> str:
        names = ", ".join(repr(e.name) for e in self.elements)
        return f"{type(self).__name__}(elements=({names}), weights={self.weights.tolist()})"


class RandomFlip(RandomDihedral):
    """Flip with probability ``p``: left-right (``"horizontal"``) or up-down (``"vertical"``)."""

    def __init__(
        self,
        p: float = 0.5,
        direction: Literal["horizontal", "vertical"] = "horizontal",
        *,
        per_sample: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        if direction not in ("horizontal", "vertical"):
            raise InvalidParameterError(
                f"direction must be 'horizontal' or 'vertical', got {direction!r}"
            )
        if not 0.0 <= p <= 1.0:
            raise InvalidParameterError(f"p must be a probability in [0, 1], got p={p}")
        flip = "hflip" if direction == "horizontal" else "vflip"
        super().__init__(
            ("identity", flip), weights=(1 - p, p), per_sample=per_sample, generator=generator
        )


class RandomRotate90(RandomDihedral):
    """Rotate by 0, 90, 180 or 270 degrees, each with probability 1/4."""

    def __init__(
        self, *, per_sample: bool = False, generator: torch.Generator | None = None
    ) -> None:
        super().__init__(ELEMENTS[:4], per_sample=per_sample, generator=generator)


class Compose:
    """Apply ``transforms`` (any ``sample -> sample`` callables) in turn.

    **Usage**::

        transform = Compose([RandomFlip(), RandomRotate90()])
    """

    def __init__(self, transforms: Sequence[Callable[[Sample], Sample]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, sample: Sample) -> Sample:
        """Return ``sample`` after every transform."""
        for transform in self.transforms:
            sample = transform(sample)
        return sample

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


def _image(sample: Sample) -> torch.Tensor:
    image = sample.get("image") if isinstance(sample, dict) else None
    if not isinstance(image, torch.Tensor) or image.ndim not in (3, 4):
        got = type(sample).__name__ if image is None else f"image {getattr(image, 'shape', image)}"
        raise InvalidParameterError(
            "geochips.transforms take a sample dict with 'image' (C, H, W) or a batch from "
            f"geochips.collate with 'image' (N, C, H, W); got {got}"
        )
    return image


def _apply(sample: Sample, ks: int | list[int]) -> Sample:
    """``sample`` with element ``ks`` (one per sample of a batch when a list) applied."""
    image = _image(sample)
    batch = image.ndim == 4
    shape = tuple(image.shape[-2:])
    each = ks if isinstance(ks, list) else [ks] * (len(image) if batch else 1)
    out = dict(sample)
    for key, value in sample.items():
        if key in ("labels", "dihedral"):
            continue
        if key in ("boxes", "transform") or (batch and _per_sample_rasters(value, len(each))):
            if value is None:
                continue
            if batch and (not isinstance(value, list) or len(value) != len(each)):
                raise InvalidParameterError(
                    f"{key!r} of a batch must be a list of one per sample, as geochips.collate "
                    f"gives; got {type(value).__name__} for chips {_chip(sample)}"
                )
            values = value if batch else [value]
            moved = [_move(key, v, k, shape, sample) for v, k in zip(values, each, strict=True)]
            out[key] = moved if batch else moved[0]
        elif isinstance(value, torch.Tensor) and value.ndim >= 2:
            _check_raster(key, value, shape, sample)
            out[key] = _raster(value, each) if isinstance(ks, list) else Dihedral(ks).apply(value)
    before = sample.get("dihedral", [0] * len(each) if batch else 0)
    after = [Dihedral(b).then(Dihedral(k)).k for b, k in zip(_list(before), each, strict=True)]
    out["dihedral"] = after if batch else after[0]
    return out


def _per_sample_rasters(value: Any, n: int) -> bool:
    """A batch key that collate kept as a list of tensors of two or more dims."""
    return (
        isinstance(value, list)
        and len(value) == n
        and any(isinstance(v, torch.Tensor) and v.ndim >= 2 for v in value)
    )


def _move(key: str, value: Any, k: int, shape: tuple[int, ...], sample: Sample) -> Any:
    """One sample's value of a per-sample key under element ``k``."""
    if value is None:
        return None
    if key == "boxes":
        return Dihedral(k).apply_boxes(value, shape[0], shape[1])
    if key == "transform":
        return Dihedral(k).apply_transform(value, shape[0], shape[1])
    _check_raster(key, value, shape, sample)
    return Dihedral(k).apply(value)


def _check_raster(key: str, value: torch.Tensor, shape: tuple[int, ...], sample: Sample) -> None:
    if tuple(value.shape[-2:]) != shape:
        raise InvalidParameterError(
            f"cannot tell how {key!r} {tuple(value.shape)} moves with the chip "
            f"{_chip(sample)}: raster keys end in the chip's (H, W) = {shape}. "
            "Reshape it, or move it out of the sample before transforming"
        )


def _raster(value: torch.Tensor, each: list[int]) -> torch.Tensor:
    """A batch raster with its own element per sample (written sample by sample)."""
    swaps = {_SWAPS[k] for k in each}
    height, width = value.shape[-2:]
    if len(swaps) > 1 and height != width:
        raise InvalidParameterError(
            f"per_sample elements that rotate some {height}x{width} chips and not others "
            "cannot be stacked; use square chips, elements that keep the shape (flips, "
            "rot180) or per_sample=False"
        )
    if len(set(each)) == 1:
        return Dihedral(each[0]).apply(value)
    shape = (*value.shape[:-2], width, height) if swaps == {True} else value.shape
    out = torch.empty(shape, dtype=value.dtype, device=value.device)
    signed = _SIGNED.get(value.dtype)
    target = out if signed is None else out.view(signed)
    for row, k, dest in zip(value, each, target, strict=True):
        dest.copy_(Dihedral(k).apply(row if signed is None else row.view(signed)))
    return out


def _then(t: Affine, m: tuple[float, float, float, float, float, float]) -> Affine:
    """``t`` after the pixel map ``m`` (``t @ Affine(*m)``, which affine < 2.4 lacks)."""
    a, b, c, d, e, f = m
    return Affine(
        t.a * a + t.b * d,
        t.a * b + t.b * e,
        t.a * c + t.b * f + t.c,
        t.d * a + t.e * d,
        t.d * b + t.e * e,
        t.d * c + t.e * f + t.f,
    )


def _list(value: Any) -> list[int]:
    return [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)]


def _chip(sample: Sample) -> str:
    chip = sample.get("chip_id")
    return repr(chip if not isinstance(chip, list) or len(chip) <= 3 else [*chip[:3], "..."])
