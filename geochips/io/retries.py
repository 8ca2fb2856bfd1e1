"""A file's part of a chip read, tried again when a remote read fails, and the error after.

Remote (or signed) reads get :data:`~geochips.io.settings.READ_RETRIES` more attempts with
backoff, within :data:`~geochips.io.settings.READ_BUDGET` seconds. Each retry starts afresh:
the file is reopened with what GDAL's HTTP cache held of it dropped (:func:`forget_downloads`:
the truncated bytes of a failed attempt are not served again), a refused signed href signed
anew, and GDAL's debug lines on, since they name the HTTP status or transport error of a
failure (:mod:`geochips.io.gdallog`). Retrying stops early when GDAL's answer says trying
again cannot help (404, a damaged tile). The :class:`~geochips.errors.SceneReadError` raised
at the end names the chip, its window, the scene, the redacted href, the cause and the fix.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import numpy as np
import rasterio
from rasterio.errors import RasterioError

from geochips import hrefs
from geochips.errors import SceneReadError
from geochips.io import gdallog, settings
from geochips.io.settings import open_env
from geochips.io.signing import HrefSigner
from geochips.scene import Scene
from geochips.windows import ChipWindow


def read_retrying(
    attempt: Callable[[bool], np.ndarray],
    opened_path: Callable[[], str],
    scene: Scene,
    file: int,
    *,
    window: ChipWindow,
    chip_id: str | None,
    retries: int,
    signer: HrefSigner | None,
    gdal_options: dict[str, str | int],
) -> np.ndarray:
    """Return ``attempt(fresh)``, called again after a failure of a remote or signed read.

    Args:
        attempt: reads the bands once; ``fresh=True`` (a retry) reopens the file first.
        opened_path: the (signed) path the file's cached handle was opened with, or ``""``.
        scene: the scene read, named in the error.
        file: the position of the file read in ``scene.hrefs``.
        window: the chip's window, named in the error.
        chip_id: the chip's id, named in the error (``None``: the window alone).
        retries: attempts after the first one, for remote or signed files.
        signer: re-signs an href a server refused.
        gdal_options: the reader's options, which the advice of the error refers to.

    Raises:
        SceneReadError: every attempt failed, or GDAL warned while decoding (damaged data).
    """
    href = scene.hrefs[file]
    remote = hrefs.is_remote(href)
    signed = signer is not None
    attempts = 1 + (retries if remote or signed else 0)
    started = time.monotonic()
    cause: gdallog.Cause | None = None
    made = 0
    for number in range(attempts):
        made = number + 1
        error_text = ""
        try:
            with gdallog.capture(debug=number > 0) as records:
                data = attempt(number > 0)
        except RasterioError as exc:
            # Only text leaves this block: no exception context may hold a signed path.
            error_text = error_chain(exc)
        if error_text:
            cause = gdallog.diagnose(error_text, records, remote)
        else:
            # GDAL may return pixels and only warn: a corrupt JPEG tile decodes wrong.
            cause = gdallog.warned_cause(records)
            if cause is None:
                return data
        if cause.persistent or number + 1 == attempts:
            break
        if cause.kind == "http" and number > 0 and not (cause.status == 403 and signed):
            break  # GDAL retried this status itself (GDAL_HTTP_MAX_RETRY) on each attempt
        if time.monotonic() - started > settings.READ_BUDGET:
            break
        if signer is not None:
            path = opened_path() or signer(href)
            if path != href:
                signer.refresh(href, failed=path)
        time.sleep(settings.RETRY_BACKOFF * 2**number)
    assert cause is not None
    raise SceneReadError(
        f"cannot read {describe(window, chip_id)} of scene {scene.id!r} at "
        f"{hrefs.redact(href)}: "
        f"{cause.text}; {made} attempt{'s' if made > 1 else ''} in "
        f"{time.monotonic() - started:.1f} s. "
        + gdallog.advice(
            cause,
            remote=remote,
            signed=signer is not None and signer(href) != href,
            options=gdal_options,
        )
    )


def forget_downloads(path: str, gdal_options: Mapping[str, str | int]) -> None:
    """Drop what GDAL's HTTP cache holds of ``path`` (a failed read may have left part).

    Opening a file with ``CPL_VSIL_CURL_NON_CACHED`` naming it clears its cached ranges;
    the handle itself is closed at once.
    """
    with open_env(path, gdal_options, {"CPL_VSIL_CURL_NON_CACHED": vsi_path(path)}):
        rasterio.open(path).close()


def describe(window: ChipWindow, chip_id: str | None) -> str:
    """Name a chip and its window in a message."""
    text = (
        f"window (row_off={window.row_off}, col_off={window.col_off}, "
        f"height={window.height}, width={window.width})"
    )
    return text if chip_id is None else f"chip {chip_id!r}, {text}"


def error_chain(exc: BaseException) -> str:
    """GDAL's messages in ``exc`` and its causes, most specific first, redacted.

    rasterio raises "Read failed. See previous exception for details." and chains GDAL's
    own errors as causes ("TIFFFillTile: Read error ... got 0 bytes, expected 119771").
    """
    messages: list[str] = []
    seen: BaseException | None = exc
    while seen is not None and len(messages) < 8:
        text = str(seen)
        if text and "See previous exception" not in text and text not in messages:
            messages.append(text)
        seen = seen.__cause__
    return hrefs.redact_text(" <- ".join(reversed(messages)) or type(exc).__name__)


def vsi_path(path: str) -> str:
    """The GDAL /vsi path of ``path``, as GDAL's HTTP cache names the file."""
    if path.startswith("/vsi"):
        return path
    scheme = path.split("://", 1)[0].lower() if "://" in path else ""
    if scheme in ("http", "https", "ftp"):
        return f"/vsicurl/{path}"
    if scheme in ("s3", "gs", "az", "oss"):
        return f"/vsi{scheme}/{path.split('://', 1)[1]}"
    return path
