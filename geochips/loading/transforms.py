"""Random flips and 90° rotations, applied jointly to every key of a sample or a batch.

Each transform draws an element of the dihedral group D4 and applies it with
:class:`~geochips.loading.dihedral.Dihedral`, which moves ``image``, ``valid``, ``mask`` (every
tensor ending in the chip's ``(H, W)``), ``boxes`` and the chip's ``transform`` together,
pixels moved and never interpolated, and records the element in ``sample["dihedral"]``.
Users import these names from :mod:`geochips.transforms`.

**Usage**::

    train = geochips.ChipDataset(index, transform=geochips.transforms.RandomDihedral())
    tta = geochips.transforms.Dihedral("rot90")                  # test-time augmentation
    pred = tta.inverse().apply(model(tta(batch)["image"]))       # back on the chips' grid
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from torch.utils.data import get_worker_info

from geochips.errors import InvalidParameterError
from geochips.loading.dihedral import ELEMENTS, Dihedral, Sample, apply_elements, sample_image

__all__ = ["Compose", "Dihedral", "ELEMENTS", "RandomDihedral", "RandomFlip", "RandomRotate90"]


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
        self.weights = tuple(float(w) for w in weights) if weights is not None else None
        if self.weights is not None and (
            len(self.weights) != len(self.elements)
            or not all(math.isfinite(w) and w >= 0 for w in self.weights)
            or sum(self.weights) <= 0
        ):
            raise InvalidParameterError(
                f"weights must be {len(self.elements)} finite non-negative numbers, "
                f"not all 0, one per element; got {list(self.weights)}"
            )
        self.per_sample = per_sample
        self.generator = generator
        self._worker: tuple[int, torch.Generator] | None = None

    def __call__(self, sample: Sample) -> Sample:
        """Return ``sample`` (or a batch) with a random element applied to all its keys."""
        image = sample_image(sample)
        draws = len(image) if self.per_sample and image.ndim == 4 else 1
        weights = torch.tensor(self.weights or [1.0] * len(self.elements), dtype=torch.float64)
        picks = torch.multinomial(weights, draws, replacement=True, generator=self._gen())
        ks = [self.elements[i].k for i in picks.tolist()]
        return apply_elements(sample, ks if self.per_sample and image.ndim == 4 else ks[0])

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
        return f"{type(self).__name__}(elements=({names}), weights={self.weights})"


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
