"""The dihedral group D4: one element applied exactly to every key of a sample.

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

Random elements and their composition are in :mod:`geochips.loading.transforms`.
"""

from __future__ import annotations

from typing import Any

import torch
from affine import Affine

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
        return apply_elements(sample, self.k)

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


def sample_image(sample: Sample) -> torch.Tensor:
    """The ``image`` of a sample ``(C, H, W)`` or of a collated batch ``(N, C, H, W)``."""
    image = sample.get("image") if isinstance(sample, dict) else None
    if not isinstance(image, torch.Tensor) or image.ndim not in (3, 4):
        got = type(sample).__name__ if image is None else f"image {getattr(image, 'shape', image)}"
        raise InvalidParameterError(
            "geochips.transforms take a sample dict with 'image' (C, H, W) or a batch from "
            f"geochips.collate with 'image' (N, C, H, W); got {got}"
        )
    return image


def apply_elements(sample: Sample, ks: int | list[int]) -> Sample:
    """``sample`` with element ``ks`` (one per sample of a batch when a list) applied.

    Raises:
        InvalidParameterError: naming the chip, for a key that cannot be moved with it.
    """
    image = sample_image(sample)
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
