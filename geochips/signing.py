"""Href signing: turn an unsigned href into one that can be read, in the reading process.

``sign=`` accepts ``None`` (read hrefs as they are), ``"planetary-computer"`` or any
picklable callable ``href -> href``. Indexes store unsigned hrefs only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

from geochips.errors import InvalidParameterError

Signer: TypeAlias = Callable[[str], str]
SignSpec: TypeAlias = str | Signer | None


def planetary_computer_sign(href: str) -> str:
    """Sign ``href`` with the Planetary Computer SDK (a no-op for hrefs off its storage)."""
    import planetary_computer  # imports requests; only needed when signing

    signed: str = planetary_computer.sign(href)
    return signed


def resolve_signer(sign: SignSpec) -> Signer | None:
    """Return the signer named by ``sign``.

    Raises:
        InvalidParameterError: if ``sign`` is an unknown name or not callable.
    """
    if sign is None or callable(sign):
        return sign
    if sign == "planetary-computer":
        return planetary_computer_sign
    raise InvalidParameterError(
        f"sign must be None, 'planetary-computer' or a callable href -> href, got sign={sign!r}"
    )
