"""What GDAL said during one read: decode warnings that mean damaged pixels, and the cause.

GDAL reports much of what matters only as log messages, which rasterio passes to the
``rasterio._err`` logger: a JPEG tile with corrupt bytes decodes to wrong pixels while
GDAL only *warns* ("Corrupt JPEG data"), and a failed remote read raises "Read failed"
while the HTTP status or the transport error ("Operation timed out", "Connection reset
by peer") is only in GDAL's debug lines (``CPL_DEBUG=ON``). :func:`capture` collects the
messages of the calling thread during a read, so the reader can refuse a chip decoded
with warnings and name the cause of a failure.

The reader turns debug lines on (thread-locally) only for a retry, so a healthy read pays
nothing for them. To see them, the logger must let them through: while a capture asks
for debug lines, the logger's level is lowered, and the filter installed here drops every
record below the level it had before, so the user's own logging is unchanged.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass

from geochips import hrefs

LOGGER = "rasterio._err"

# GDAL warnings that say nothing about the pixels returned: a transient HTTP error GDAL
# retries itself, and the debug-only lines of a diagnostic attempt.
_BENIGN = re.compile(r"HTTP error code|Retrying|VSICURL|HTTP response code", re.IGNORECASE)
_STATUS = re.compile(r"response_code=(\d{3})|HTTP (?:error|response) code:? ?(\d{3})")
_TRANSPORT = re.compile(r"response_code=\d+, msg=(.+)$")
_SHORT = re.compile(r"got (\d+) bytes, expected (\d+)")
_MISSING = re.compile(r"No such file or directory|does not exist in the file system")
_NO_RANGE = re.compile(r"Range downloading not supported", re.IGNORECASE)
# A query string in GDAL's text (it names files by their signed URL): dropped whole.
_QUERY = re.compile(r"\?[^\s'\"]*")


class _Messages(logging.Filter):
    """Hands rasterio's GDAL records to the capture of the thread that made them."""

    def __init__(self) -> None:
        super().__init__()
        self.local = threading.local()
        self.lock = threading.Lock()
        self.user_level = logging.NOTSET
        """The logger's effective level before a capture lowered it (NOTSET: not lowered)."""
        self.saved_level = logging.NOTSET
        """The logger's own level before a capture lowered it, restored after."""
        self.lowered = 0

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep ``record`` for the capturing thread; pass on what the user would see."""
        sink: list[tuple[int, str]] | None = getattr(self.local, "sink", None)
        if sink is not None:
            sink.append((record.levelno, record.getMessage()))
        return self.user_level == logging.NOTSET or record.levelno >= self.user_level


_messages = _Messages()
_installed = False
_install_lock = threading.Lock()


def _logger() -> logging.Logger:
    global _installed
    logger = logging.getLogger(LOGGER)
    if not _installed:
        with _install_lock:
            if not _installed:
                logger.addFilter(_messages)
                _installed = True
    return logger


def _lower(logger: logging.Logger, level: int) -> None:
    with _messages.lock:
        if _messages.lowered == 0:
            _messages.user_level = logger.getEffectiveLevel()
            _messages.saved_level = logger.level
        _messages.lowered += 1
        if logger.getEffectiveLevel() > level:
            logger.setLevel(level)


def _restore(logger: logging.Logger) -> None:
    with _messages.lock:
        _messages.lowered -= 1
        if _messages.lowered == 0:
            logger.setLevel(_messages.saved_level)
            _messages.user_level = logging.NOTSET


class capture:
    """Collect ``(level, message)`` of the GDAL records this thread makes meanwhile.

    Used as ``with capture() as records:``. ``debug`` also collects debug lines; the
    caller turns on ``CPL_DEBUG`` for them. A class, not a generator: it wraps every chip
    read.
    """

    __slots__ = ("debug", "lowered", "logger", "sink")

    def __init__(self, debug: bool = False) -> None:
        self.debug = debug

    def __enter__(self) -> list[tuple[int, str]]:
        self.logger = _logger()
        self.lowered = not self.logger.isEnabledFor(
            logging.DEBUG if self.debug else logging.WARNING
        )
        if self.lowered:
            _lower(self.logger, logging.DEBUG if self.debug else logging.WARNING)
        self.sink: list[tuple[int, str]] = []
        _messages.local.sink = self.sink
        return self.sink

    def __exit__(self, *exc: object) -> None:
        _messages.local.sink = None
        if self.lowered:
            _restore(self.logger)


def clean(text: str) -> str:
    """GDAL's ``text`` without query strings, where signed URLs carry their token."""
    return _QUERY.sub("", hrefs.redact_text(text))


def decode_warnings(records: list[tuple[int, str]]) -> list[str]:
    """Return the warnings of ``records`` that say the pixels may be wrong (cleaned)."""
    return [
        clean(text)
        for level, text in records
        if level == logging.WARNING and not _BENIGN.search(text)
    ]


def warned_cause(records: list[tuple[int, str]]) -> Cause | None:
    """The cause to refuse a read that returned but warned, or ``None`` when it is good.

    A server that ignores HTTP Range is worth a retry (GDAL warns, then makes do); any
    other warning means the decoded pixels may be wrong (corrupt JPEG data).
    """
    warned = decode_warnings(records)
    if not warned:
        return None
    if any(_NO_RANGE.search(text) for text in warned):
        return Cause("range", "; ".join(warned))
    return Cause("decode", "GDAL warned while decoding: " + "; ".join(warned))


@dataclass(frozen=True)
class Cause:
    """Why a read failed, as far as GDAL said."""

    kind: str
    """``"http"``, ``"timeout"``, ``"transport"``, ``"short"``, ``"range"``, ``"missing"``,
    ``"decode"`` or ``"unknown"``."""
    text: str
    """GDAL's own words (redacted), shortest first."""
    status: int | None = None
    """The HTTP status GDAL got, when it got one."""

    @property
    def persistent(self) -> bool:
        """Whether trying again cannot help (a missing file, a refused request, damage)."""
        if self.kind in ("decode", "missing"):
            return True
        return self.kind == "http" and self.status is not None and self.status in _FINAL_STATUS


# 403 is not final: a signed href is re-signed before the next attempt.
_FINAL_STATUS = frozenset({400, 401, 404, 405, 410, 416})


def diagnose(error_text: str, records: list[tuple[int, str]], remote: bool) -> Cause:
    """Return the cause of a failed read from GDAL's error chain and the records around it."""
    lines = [clean(text) for _, text in records]
    status = None
    transport = None
    text = clean(error_text)
    for line in [*lines, text]:
        match = _STATUS.search(line)
        if match and int(match.group(1) or match.group(2)) >= 400:
            status = int(match.group(1) or match.group(2))
        found = _TRANSPORT.search(line)
        if found:
            transport = found.group(1).strip()
    if _MISSING.search(text) and status is None:
        return Cause("missing", text)
    if status is not None:
        return Cause("http", f"HTTP {status} ({text})", status)
    if transport is not None:
        slow = "timed out" in transport.lower() or "too slow" in transport.lower()
        kind = "timeout" if slow else "transport"
        return Cause(kind, f"{transport} ({text})")
    short = _SHORT.search(text)
    if short and remote:
        return Cause("short", text)
    warned = warned_cause(records)
    if warned is not None:
        return Cause(warned.kind, f"{warned.text} ({text})")
    return Cause("unknown" if remote else "decode", text)


def advice(cause: Cause, *, remote: bool, signed: bool, options: dict[str, str | int]) -> str:
    """Return what to do about ``cause``, in words that fit it."""
    if cause.kind == "missing":
        return (
            "The index was built from this file: check that it still exists, or rebuild "
            "the index without this scene"
        )
    if cause.kind == "http" and cause.status in (404, 410):
        return (
            "The file is not on the server any more: check the href, or rebuild the index "
            "without this scene"
        )
    if cause.kind == "http" and cause.status in (401, 403):
        return (
            "Access was refused even after signing again: check the signer (sign=) and "
            "its credentials"
            if signed
            else "Access was refused: give a signer (sign=) or credentials GDAL can use"
        )
    if cause.kind == "http" and cause.status is not None and cause.status >= 500:
        return "The server kept failing: try again later, or raise GDAL_HTTP_MAX_RETRY"
    if cause.kind == "http" and cause.status == 429:
        return "The server throttled the reads: use fewer workers or threads, or try later"
    if cause.kind == "timeout":
        return (
            "The server stalled: GDAL gave up after GDAL_HTTP_LOW_SPEED_TIME="
            f"{options.get('GDAL_HTTP_LOW_SPEED_TIME')} s below GDAL_HTTP_LOW_SPEED_LIMIT="
            f"{options.get('GDAL_HTTP_LOW_SPEED_LIMIT')} B/s (or GDAL_HTTP_TIMEOUT="
            f"{options.get('GDAL_HTTP_TIMEOUT')} s); raise them in gdal_options= on a slow "
            "network"
        )
    if cause.kind == "range":
        return (
            "The server ignored HTTP Range requests (it sent whole files): serve the files "
            "from one that honours them, as COG readers need"
        )
    if cause.kind in ("transport", "short"):
        return "The connection kept breaking: check the network or the server, then retry"
    if cause.kind == "decode" or not remote:
        return "The file may be truncated or corrupt: re-download it or drop the scene"
    return "Check that the server is reachable and serves HTTP range requests"
