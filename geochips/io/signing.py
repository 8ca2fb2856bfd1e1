"""Href signing: turn an unsigned href into one that can be read, in the reading process.

``sign=`` accepts:

* ``"auto"`` (the default of :meth:`ChipIndex.build`): ``"planetary-computer"`` when an
  href is on Azure Blob Storage (``*.blob.core.windows.net``, where Planetary Computer keeps
  its data), else ``None``;
* ``None``: hrefs are read as they are;
* ``"planetary-computer"``: a SAS token from the Planetary Computer token API (the SDK's
  ``PC_SDK_SAS_URL`` and ``PC_SDK_SUBSCRIPTION_KEY`` settings apply);
* any picklable callable ``href -> href`` (a module-level function, not a lambda, when
  DataLoader workers are spawned).

Indexes keep unsigned hrefs only: hrefs already signed for Planetary Computer (items from a
pystac-client search with ``modifier=planetary_computer.sign_inplace``) have their SAS
query removed and are signed again when read. Signing is lazy and cached per process by
:class:`HrefSigner`: a signed href is reused until its token nears expiry (read from the
SAS ``se=`` field, or ``X-Amz-Date`` + ``X-Amz-Expires`` for presigned S3 URLs), and a
read refused with a signed href is retried once with a fresh signature
(:meth:`HrefSigner.refresh`). Token parsing is :mod:`geochips.io.tokens`, the Planetary
Computer SDK :mod:`geochips.io.planetary`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeAlias
from urllib.parse import parse_qsl, urlsplit

from geochips import hrefs
from geochips.errors import InvalidParameterError
from geochips.io.planetary import (
    PlanetaryComputerSigner,
    planetary_computer_sas,
    planetary_computer_sign,
)
from geochips.io.tokens import BLOB_DOMAIN, SAS_PARAMS, expiry, is_blob_href, parse_time, strip_sas
from geochips.scene import SceneSource

Signer: TypeAlias = Callable[[str], str]


SignSpec: TypeAlias = str | Signer | None

__all__ = [
    "BLOB_DOMAIN",
    "DEFAULT_MARGIN",
    "SAS_PARAMS",
    "HrefSigner",
    "PlanetaryComputerSigner",
    "SignSpec",
    "Signer",
    "expiry",
    "is_blob_href",
    "planetary_computer_sas",
    "planetary_computer_sign",
    "resolve_signer",
    "strip_sas",
    "unsigned",
    "unsigned_all",
]
"""Token and Planetary Computer names stay importable from here, where they lived first."""

DEFAULT_MARGIN = 300.0
"""Seconds before expiry at which a signed href is replaced (at most 1/4 of its life)."""


@dataclass
class _Signed:
    href: str
    renew_at: float
    """POSIX time after which the signed href is replaced."""


class HrefSigner:
    """Sign hrefs lazily, once per token lifetime, in whichever process reads.

    A signed href is cached per unsigned href and reused until ``margin`` seconds before
    its token expires (at most a quarter of the token's lifetime, so short-lived tokens are
    still reused); hrefs whose expiry cannot be read are kept until a read fails and
    :meth:`refresh` is called. It pickles as its signing function only, so each process
    builds its own cache; a forked process keeps its parent's still-valid signatures.

    Args:
        sign: the function ``href -> href`` that signs; it may define
            ``invalidate(signed_href)`` to drop a token it caches itself.
        margin: seconds before expiry at which a signed href is replaced.
    """

    def __init__(self, sign: Signer, margin: float = DEFAULT_MARGIN) -> None:
        self.sign = sign
        self.margin = margin
        hrefs.redact_logs()  # rasterio logs the names of the datasets it opens
        self.calls = 0
        """Calls to ``sign`` made by this process (signatures are cached in between)."""
        self._cache: dict[str, _Signed] = {}
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def __getstate__(self) -> dict[str, Any]:
        return {"sign": self.sign, "margin": self.margin}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, HrefSigner)
            and other.sign == self.sign
            and other.margin == self.margin
        )

    def __hash__(self) -> int:
        return hash((HrefSigner, self.margin))

    def __repr__(self) -> str:
        name = getattr(self.sign, "__qualname__", None) or repr(self.sign)
        return f"HrefSigner({name})"

    def _locked(self) -> threading.Lock:
        if self._pid != os.getpid():  # a fork may have copied the lock while held
            self._lock = threading.Lock()
            self._pid = os.getpid()
        return self._lock

    def __call__(self, href: str) -> str:
        """Return a signed ``href``, signing it only when no fresh signature is cached."""
        with self._locked():
            entry = self._cache.get(href)
            if entry is not None and time.time() < entry.renew_at:
                return entry.href
            return self._sign(href, stale=entry.href if entry is not None else None)

    def refresh(self, href: str, failed: str) -> str:
        """Return a new signature for ``href`` after a read with ``failed`` was refused.

        When another thread already replaced ``failed``, its signature is returned and
        nothing is signed again, so a burst of failures costs one signing call.
        """
        with self._locked():
            entry = self._cache.get(href)
            if entry is not None and entry.href != failed:
                return entry.href
            return self._sign(href, stale=failed)

    def _sign(self, href: str, stale: str | None) -> str:
        invalidate = getattr(self.sign, "invalidate", None)
        if stale is not None and stale != href and invalidate is not None:
            invalidate(stale)
        signed = self._call(href)
        now = time.time()
        renew_at = self._renew_at(signed, now)
        if renew_at <= now and invalidate is not None and signed != href:
            # The signer handed back a cached token that is about to expire: drop it.
            invalidate(signed)
            signed = self._call(href)
            renew_at = self._renew_at(signed, now)
        self._cache[href] = _Signed(signed, renew_at)
        return signed

    def _call(self, href: str) -> str:
        self.calls += 1
        signed = self.sign(href)
        if not isinstance(signed, str):
            raise InvalidParameterError(
                f"the signer {self!r} returned {type(signed).__name__} for "
                f"{hrefs.redact(href)}; a signer must return the signed href as a str"
            )
        return signed

    def _renew_at(self, signed: str, now: float) -> float:
        ends = expiry(signed)
        if ends is None:
            return float("inf")
        starts = parse_time(dict(parse_qsl(urlsplit(signed).query)).get("st", "")) or now
        lifetime = max(ends - min(starts, now), 0.0)
        return ends - min(self.margin, lifetime / 4)


def resolve_signer(sign: SignSpec, hrefs_: Iterable[str] = ()) -> HrefSigner | None:
    """Return the signer named by ``sign`` (``"auto"`` looks at ``hrefs_``).

    Raises:
        InvalidParameterError: if ``sign`` is an unknown name or not callable.
    """
    if sign is None:
        return None
    if isinstance(sign, HrefSigner):
        return sign
    if callable(sign):
        return HrefSigner(sign)
    if sign == "auto":
        return HrefSigner(PlanetaryComputerSigner()) if any(map(is_blob_href, hrefs_)) else None
    if sign == "planetary-computer":
        return HrefSigner(PlanetaryComputerSigner())
    raise InvalidParameterError(
        "sign must be 'auto', None, 'planetary-computer' or a callable href -> href, "
        f"got sign={sign!r}"
    )


def unsigned(signer: HrefSigner | None, href: str) -> str:
    """Return ``href`` as an index keeps it: without a token that ``signer`` will renew."""
    if (
        signer is not None
        and isinstance(signer.sign, PlanetaryComputerSigner)
        and is_blob_href(href)
    ):
        return strip_sas(href)
    return href


def unsigned_all(signer: HrefSigner | None, sources: Sequence[SceneSource]) -> list[SceneSource]:
    """Return scene sources whose hrefs carry no token that ``signer`` renews."""
    out = []
    for source in sources:
        clean = tuple(unsigned(signer, h) for h in source.hrefs)
        out.append(source if clean == source.hrefs else replace(source, hrefs=clean))
    return out


@dataclass(frozen=True)
class _RemoteOnly:
    """A signing function applied to remote hrefs only; local paths pass unchanged."""

    sign: Callable[[str], str]

    def __call__(self, href: str) -> str:
        return self.sign(href) if hrefs.is_remote(href) else href


def remote_only(signer: Signer | None) -> HrefSigner | None:
    """``signer`` for an index whose scenes are local but whose other reads may not be.

    Local copies of remote scenes (:func:`geochips.localize`) must not go through a signer
    written for the remote hrefs, while their label rasters, still remote, must.
    """
    if signer is None:
        return None
    if not isinstance(signer, HrefSigner):
        signer = HrefSigner(signer)
    if isinstance(signer.sign, _RemoteOnly):
        return signer
    return HrefSigner(_RemoteOnly(signer.sign), margin=signer.margin)
