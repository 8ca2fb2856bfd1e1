"""Scene hrefs: where a scene lives, and how to name it without leaking a secret.

Signed URLs (Planetary Computer SAS tokens, presigned S3 URLs) carry their secret in the
query string, so :func:`redact` drops the query and fragment before an href is shown in a
message, a log line, a repr or a saved index. Everything user-facing goes through it.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import PurePosixPath
from urllib.parse import urlsplit, urlunsplit

REMOTE_SCHEMES = ("http", "https", "s3", "gs", "az", "azure", "oss", "ftp")
_QUERY_SECRET = re.compile(
    r"([?&](?:sig|se|st|sp|sv|skoid|sktid|skt|ske|sks|skv|"
    r"X-Amz-[A-Za-z-]+|token|access_token)=)[^&\s'\"]+",
    re.IGNORECASE,
)


def redact(href: str) -> str:
    """Return ``href`` without its query string or fragment, where tokens live."""
    if "?" not in href and "#" not in href:
        return href
    parts = urlsplit(href)
    if parts.scheme and parts.scheme != "file" and len(parts.scheme) > 1:
        return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    return href.split("?", 1)[0].split("#", 1)[0]


def redact_text(text: str) -> str:
    """Replace the values of token-like query parameters anywhere in ``text``.

    A last line of defence for messages that embed text we do not control, such as GDAL
    error messages that quote the URL they failed on.
    """
    return _QUERY_SECRET.sub(r"\1REDACTED", text)


class RedactFilter(logging.Filter):
    """A logging filter that removes token values from every record it sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite ``record``'s message with :func:`redact_text`; never drop a record."""
        message = record.getMessage()
        clean = redact_text(message)
        if clean != message:
            record.msg, record.args = clean, ()
        return True


# rasterio logs dataset names (signed URLs) at DEBUG level, e.g. "Dataset <open
# DatasetReader name='/vsicurl/https://...?...&sig=...'> is started." (rasterio._base).
# Logger filters apply only to records created on that logger, so each module's is named.
_RASTERIO_LOGGERS = (
    "rasterio",
    *(
        f"rasterio.{m}"
        for m in "_base _env _err _filepath _io _path _vsiopener _warp env io session vrt "
        "warp shutil".split()
    ),
)
_redacting = False


def redact_logs() -> None:
    """Make rasterio's log records token-free (installed once, when hrefs are signed)."""
    global _redacting
    if not _redacting:
        _redacting = True
        for name in _RASTERIO_LOGGERS:
            logging.getLogger(name).addFilter(RedactFilter())


def is_remote(href: str) -> bool:
    """Return whether ``href`` is read over the network (or a GDAL network /vsi path)."""
    scheme = urlsplit(href).scheme.lower()
    if scheme in REMOTE_SCHEMES:
        return True
    return href.startswith(("/vsicurl", "/vsis3", "/vsigs", "/vsiaz", "/vsiadls", "/vsioss"))


def normalize(href: str | os.PathLike[str]) -> str:
    """Return ``href`` as a string; local paths become absolute so ids and reads agree."""
    text = os.fspath(href)
    if is_remote(text) or text.startswith("/vsi") or "://" in text:
        return text
    return os.path.abspath(text)


def stem(href: str) -> str:
    """Return the file name of ``href`` without its extension (``"B04"`` for ``.../B04.tif``)."""
    path = urlsplit(href).path if "://" in href else href
    return PurePosixPath(path.replace("\\", "/")).stem
