"""Values of the command line's flags: each parses one argument's text or says why not.

Nothing here imports more than :mod:`argparse`, so ``geochips --help`` stays instant.
"""

from __future__ import annotations

import argparse


def pair(text: str) -> int | tuple[int, int]:
    """``512`` or ``512,256`` (height, width), in pixels."""
    try:
        values = [int(v) for v in text.replace("x", ",").split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected pixels as 512 or 512,256, got {text!r}"
        ) from None
    if len(values) == 1:
        return values[0]
    if len(values) == 2:
        return values[0], values[1]
    raise argparse.ArgumentTypeError(f"expected one or two numbers of pixels, got {text!r}")


def level(text: str) -> int | None:
    """An overview level: ``full`` (or ``none``) for full resolution, 0 for the first."""
    if text.lower() in ("full", "none"):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected full or an overview number (0 = first), got {text!r}"
        ) from None


def names(text: str) -> list[str]:
    """A comma-separated list: ``vv,vh``."""
    return [v.strip() for v in text.split(",") if v.strip()]


def bands(text: str) -> list[int]:
    """1-based band positions: ``1,2``."""
    try:
        return [int(v) for v in names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected 1-based band numbers as 1,2, got {text!r}"
        ) from None


def fractions(text: str) -> dict[str, float]:
    """``train=0.7,val=0.15,test=0.15``."""
    out = {}
    for part in names(text):
        name, _, value = part.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected name=fraction pairs as train=0.8,val=0.2, got {part!r}"
            ) from None
    return out


def option(text: str) -> tuple[str, str]:
    """A GDAL option ``KEY=VALUE``."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()
