"""Joint augmentation of samples and batches: see :mod:`geochips.loading.transforms`.

``import geochips.transforms`` (or ``geochips.transforms`` after ``import geochips``) imports
torch; the index layer does not.
"""

from geochips.loading.transforms import (
    ELEMENTS,
    Compose,
    Dihedral,
    RandomDihedral,
    RandomFlip,
    RandomRotate90,
)

__all__ = ["Compose", "Dihedral", "ELEMENTS", "RandomDihedral", "RandomFlip", "RandomRotate90"]
