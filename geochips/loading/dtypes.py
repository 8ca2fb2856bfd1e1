"""Which dtype samples get: every value kept, in a dtype torch can use.

By default every value is kept exactly in a dtype torch fully supports: uint8, int8,
int16, int32, int64 and floats stay; uint16 widens to int32 and uint32 to int64 (torch's
unsigned types lack most operations). A requested ``dtype`` must hold every value of the
source dtype (integers to floats are allowed: they round, they never wrap); a conversion
that could wrap or truncate, like uint16 -> int16, is refused.

``dtype="uint16"`` (or uint32, uint64) is allowed when asked for: torch holds and moves
these tensors (stack, shared memory between DataLoader workers, ``.to(device)``) but has
few operations on them, so convert them where the data goes, e.g.
``batch["image"].to("cuda").float()``. Half the bytes of int32 cross from the workers and
to the GPU, and chips are read straight into the batch tensor, with no conversion pass
(benchmarks/RESULTS.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from geochips.errors import DtypeConversionError, InvalidParameterError

# Source dtypes torch cannot use as they are, and the smallest dtype that holds them.
WIDEN = {"uint16": "int32", "uint32": "int64", "uint64": "float64"}
TORCH_DTYPES = (
    "bool",
    "uint8",
    "int8",
    "int16",
    "int32",
    "int64",
    "float16",
    "float32",
    "float64",
    "complex64",
    "complex128",
)
# Unsigned dtypes torch stores and moves but barely computes on: given only when asked.
TORCH_UNSIGNED = ("uint16", "uint32", "uint64")

TORCH = {
    "uint8": torch.uint8,
    "uint16": torch.uint16,
    "uint32": torch.uint32,
    "uint64": torch.uint64,
    "int8": torch.int8,
    "int16": torch.int16,
    "int32": torch.int32,
    "int64": torch.int64,
    "float16": torch.float16,
    "float32": torch.float32,
    "float64": torch.float64,
    "complex64": torch.complex64,
    "complex128": torch.complex128,
}
"""numpy dtype name -> torch dtype."""


def output_dtype(source: str, requested: str | None, scale: bool) -> np.dtype[Any]:
    """Return the dtype samples of a ``source`` scene get, refusing lossy wrap-arounds.

    Raises:
        DtypeConversionError: if ``requested`` cannot hold every ``source`` value.
    """
    src = np.dtype(source)
    if requested is None:
        if scale:
            return np.dtype("float64" if src.itemsize > 4 else "float32")
        return np.dtype(WIDEN.get(src.name, src.name))
    dst = np.dtype(requested)
    if dst.name not in TORCH_DTYPES + TORCH_UNSIGNED or dst.name == "bool":
        raise DtypeConversionError(
            f"dtype={requested!r} is not a dtype torch supports; choose one of "
            f"{', '.join(t for t in TORCH_DTYPES + TORCH_UNSIGNED if t != 'bool')}"
        )
    if scale and dst.kind != "f":
        raise DtypeConversionError(
            f"scale=True gives fractional values, which dtype={requested!r} cannot hold; "
            "choose float32 or float64"
        )
    lossless = np.can_cast(src, dst, "safe")
    rounds = src.kind in "biuf" and dst.kind in "fc"  # rounding, never wrapping
    if not (lossless or rounds):
        limits = np.iinfo(src) if src.kind in "iu" else np.finfo(src)
        raise DtypeConversionError(
            f"converting {src.name} pixels to {dst.name} could wrap or truncate values "
            f"(source range {limits.min}..{limits.max}); use dtype="
            f"{WIDEN.get(src.name, src.name)!r} (the default) or a float dtype"
        )
    return dst


def dtype_name(dtype: str | np.dtype[Any] | torch.dtype | None) -> str | None:
    """Return the numpy name of a dtype given as a string, numpy or torch dtype."""
    if dtype is None:
        return None
    if isinstance(dtype, torch.dtype):
        return str(dtype).removeprefix("torch.")
    try:
        return np.dtype(dtype).name
    except TypeError:
        raise InvalidParameterError(f"dtype={dtype!r} is not a dtype") from None
