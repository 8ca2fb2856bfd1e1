"""What a signed href carries: an Azure SAS token or an S3 presigned query, and its expiry.

Pure URL functions, no network: whether an href is on Azure Blob Storage, the href without
its SAS token (what an index keeps), and when a token expires (what
:class:`~geochips.io.signing.HrefSigner` renews by).
"""

from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

BLOB_DOMAIN = ".blob.core.windows.net"


# Query parameters of an Azure SAS token (service and user delegation SAS).
SAS_PARAMS = frozenset(
    "sv ss srt sp se st spr sig sr si sip sdd skoid sktid skt ske sks skv saoid suoid "
    "scid ses rscc rscd rsce rscl rsct".split()
)


def is_blob_href(href: str) -> bool:
    """Return whether ``href`` is on Azure Blob Storage (``https://<account>.blob...``)."""
    parts = urlsplit(href)
    return parts.scheme in ("http", "https") and (parts.hostname or "").endswith(BLOB_DOMAIN)


def strip_sas(href: str) -> str:
    """Return ``href`` without the parameters of an Azure SAS token in its query.

    Other query parameters are kept, in order.
    """
    parts = urlsplit(href)
    if not parts.query:
        return href
    kept = [
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in SAS_PARAMS
    ]
    return urlunsplit(parts._replace(query=urlencode(kept)))


def expiry(signed: str) -> float | None:
    """Return when the token in ``signed`` expires (POSIX seconds), or ``None`` if unknown.

    Reads an Azure SAS ``se=`` (ISO 8601, UTC) or the ``X-Amz-Date`` and ``X-Amz-Expires``
    of a presigned S3 URL.
    """
    query = dict(parse_qsl(urlsplit(signed).query))
    if "se" in query:
        return parse_time(query["se"])
    if "X-Amz-Date" in query and "X-Amz-Expires" in query:
        start = parse_time(query["X-Amz-Date"])
        if start is not None and query["X-Amz-Expires"].isdigit():
            return start + int(query["X-Amz-Expires"])
    return None


def parse_time(text: str) -> float | None:
    """Return the POSIX time of a token timestamp (ISO 8601 or S3's compact form), or ``None``."""
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%MZ", "%Y-%m-%d", "%Y%m%dT%H%M%SZ"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            continue
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
