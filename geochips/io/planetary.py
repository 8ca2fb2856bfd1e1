"""Planetary Computer SAS tokens for hrefs on Azure Blob Storage, from the SDK.

The SDK (``planetary_computer.sas``) fetches one token per storage account and container
and caches it; :class:`PlanetaryComputerSigner` appends it to hrefs, gives up sooner than
the SDK's own ``sign()`` when the token API cannot be reached, and can drop a token from the
SDK's cache (:meth:`PlanetaryComputerSigner.invalidate`) after a refused read.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any
from urllib.parse import urlsplit

from geochips import hrefs
from geochips.errors import SceneReadError
from geochips.io.tokens import is_blob_href

# Planetary Computer's public thumbnails; its SDK never signs them.
_PC_PUBLIC_ACCOUNTS = ("ai4edatasetspublicassets",)


_IMPORT_LOCK = threading.Lock()


def planetary_computer_sas() -> Any:
    """Import ``planetary_computer.sas`` (it imports requests and pydantic: only when used).

    planetary-computer 1.0.0 declares a pydantic v1-style config, which pydantic 2 reports
    with a deprecation warning on import; that warning is about the SDK, not about the
    user's code, so it is silenced here.
    """
    with _IMPORT_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from planetary_computer import sas
    return sas


class PlanetaryComputerSigner:
    """Sign Azure Blob Storage hrefs with a Planetary Computer SAS token.

    Tokens come from ``planetary_computer.sas.get_token`` (one per storage account and
    container, cached by the SDK); other hrefs are returned unchanged, without a network
    call. Unlike the SDK's ``sign()``, this gives up after ``retries`` attempts instead of
    about seven minutes of retrying when the token API cannot be reached.

    Args:
        retries: attempts the SDK makes on 429/5xx answers and connection errors.
    """

    def __init__(self, retries: int = 4) -> None:
        self.retries = retries

    def __call__(self, href: str) -> str:
        """Return ``href`` with a SAS token appended, or unchanged off blob storage."""
        parts = urlsplit(href)
        account = (parts.hostname or "").split(".", 1)[0]
        if not is_blob_href(href) or account in _PC_PUBLIC_ACCOUNTS:
            return href
        container = parts.path.lstrip("/").split("/", 1)[0]
        try:
            token = planetary_computer_sas().get_token(account, container, retry_total=self.retries)
        except Exception as exc:  # requests' errors, not worth importing requests for
            raise SceneReadError(
                f"cannot sign {hrefs.redact(href)} with a Planetary Computer token "
                f"(account {account!r}, container {container!r}): "
                f"{hrefs.redact_text(type(exc).__name__ + ': ' + str(exc))}. Check the "
                "network and PC_SDK_SAS_URL / PC_SDK_SUBSCRIPTION_KEY, or pass sign=None "
                "(or your own signer) for storage outside Planetary Computer"
            ) from None
        separator = "&" if parts.query else "?"
        return f"{href}{separator}{token.token}"

    def invalidate(self, signed: str) -> None:
        """Forget the SDK's cached token if ``signed`` carries it, so the next call fetches."""
        sas = planetary_computer_sas()
        query = urlsplit(signed).query
        for key, token in list(sas.TOKEN_CACHE.items()):
            if token.token and token.token in query:
                sas.TOKEN_CACHE.pop(key, None)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlanetaryComputerSigner) and other.retries == self.retries

    def __hash__(self) -> int:
        return hash((PlanetaryComputerSigner, self.retries))

    def __repr__(self) -> str:
        return "PlanetaryComputerSigner()"


def planetary_computer_sign(href: str) -> str:
    """Sign ``href`` for Planetary Computer (unchanged when it is not on blob storage)."""
    return PlanetaryComputerSigner()(href)
