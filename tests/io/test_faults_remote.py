"""Remote reads under HTTP faults: the right pixels or a SceneReadError, in bounded time.

Every test indexes a scene from a healthy fault server (tests/support/faultserver.py), then
injects a fault into the pixel reads only (ranged GETs starting beyond GDAL's first 16 KB
chunk, where the header lives) and reads chips. A read passes if its pixels equal a direct
rasterio read of the same window of the local file, or if it raises
:class:`geochips.SceneReadError`, as each test says; a read still running after
:data:`BOUND` seconds fails the test (a hang), and the server process is stopped at
teardown, which releases it.

The scene is 512 x 512 uint16, uncompressed, in 256 px tiles: each 256 px chip is exactly
one 128 KB tile, read in one request.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window
from support.faultserver import Fault, FaultServerProcess
from torch.utils.data import DataLoader

import geochips
from geochips.errors import SceneReadError
from geochips.io.settings import DEFAULT_GDAL_OPTIONS
from geochips.testing import write_scene

BOUND = 60.0
"""Seconds any read may take before the test calls it a hang."""
CHUNK = 16384
"""GDAL's /vsicurl/ chunk: the header read is bytes 0-16383, pixel reads start beyond."""
TILE = 256
CUT = 10_000
"""Body bytes sent before a reset or short close: not a multiple of CHUNK (GDAL mends a
transfer cut on a chunk boundary by itself, asking for the missing chunks)."""
SECRET = "SECRETTOKEN"

# Short waits, so that a failure comes in seconds (the defaults suit real networks).
FAST = {
    "GDAL_HTTP_CONNECTTIMEOUT": 2,
    "GDAL_HTTP_TIMEOUT": 10,
    "GDAL_HTTP_LOW_SPEED_LIMIT": 1000,
    "GDAL_HTTP_LOW_SPEED_TIME": 1,
    "GDAL_HTTP_MAX_RETRY": 2,
    "GDAL_HTTP_RETRY_DELAY": 0.1,
}


def sign_with_token(href: str) -> str:
    """A signer whose token must never be shown (module level: it pickles)."""
    return f"{href}?sig={SECRET}&se=2030-01-01"


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("faults")
    write_scene(
        root / "scene.tif",
        height=2 * TILE,
        width=2 * TILE,
        count=1,
        blocksize=TILE,
        compress="none",
    )
    return root


@pytest.fixture
def server(folder):
    # One server per test: its port makes the href new, so no test reads from the
    # /vsicurl/ cache another test filled.
    with FaultServerProcess(folder) as served:
        yield served


def build(server: FaultServerProcess, size: int = TILE, **kwargs: Any) -> geochips.ChipIndex:
    """Index the scene from the healthy server, then forget the requests that took."""
    kwargs.setdefault("sign", None)
    index = geochips.ChipIndex.build([f"{server.url}/scene.tif"], size=size, **kwargs)
    server.take()
    return index


def pixels(kind: str, **kwargs: Any) -> Fault:
    """A fault on the pixel reads (ranged GETs beyond the header chunk)."""
    kwargs.setdefault("min_offset", CHUNK)
    return Fault(kind, **kwargs)  # type: ignore[arg-type]


def chip_fault(folder: Path, index: geochips.ChipIndex, position: int, kind: str, **kwargs):
    """A fault on the read of one chip's tile only (chips are one tile each)."""
    _, window = index.locate(position)
    with rasterio.open(folder / "scene.tif") as src:
        offset = int(
            src.get_tag_item(
                f"BLOCK_OFFSET_{window.col_off // TILE}_{window.row_off // TILE}", "TIFF", bidx=1
            )
        )
    # GDAL asks from the chunk the tile starts in, or from the next one when the previous
    # tile's read already cached that chunk.
    start = offset // CHUNK * CHUNK
    return Fault(kind, min_offset=max(start, CHUNK), max_offset=start + CHUNK, **kwargs)


def expected(folder: Path, index: geochips.ChipIndex, position: int) -> np.ndarray:
    """The oracle: a direct rasterio read of the chip's window of the local file."""
    _, w = index.locate(position)
    with rasterio.open(folder / "scene.tif") as src:
        return src.read(window=Window(w.col_off, w.row_off, w.width, w.height))


def bounded(call: Any, *args: Any, timeout: float = BOUND) -> Any:
    """Return ``call(*args)`` run in a thread; fail the test if it runs ``timeout`` s."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call(*args)
        except BaseException as exc:  # re-raised in the test's thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True, name="bounded-read")
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        pytest.fail(f"{getattr(call, '__name__', call)} still running after {timeout:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def read_image(ds: geochips.ChipDataset, position: int) -> np.ndarray:
    return ds[position]["image"].numpy()


def texts(exc: BaseException) -> list[str]:
    """Every text an error shows: str, repr, args and traceback, over its whole chain."""
    found: list[str] = []
    todo, seen = [exc], set()
    while todo:
        error = todo.pop()
        if id(error) in seen:
            continue
        seen.add(id(error))
        found += [str(error), repr(error), repr(error.args)]
        todo += [e for e in (error.__cause__, error.__context__) if e is not None]
    found += traceback.format_exception(exc)
    return found


def assert_retried(server: FaultServerProcess, kind: str) -> None:
    """The fault struck once and the same range was then read again, successfully."""
    log = server.requests()
    (faulted,) = [r for r in log if r.fault == kind]
    assert any(
        r.fault is None and r.status == 206 and r.range and r.range.split("-")[0] in faulted.range
        for r in log[log.index(faulted) + 1 :]
    ), f"no successful retry of {faulted.range} after the {kind}: {log}"


# -- timeouts -----------------------------------------------------------------------------


def test_default_gdal_options_bound_every_transfer():
    for key in (
        "GDAL_HTTP_CONNECTTIMEOUT",
        "GDAL_HTTP_LOW_SPEED_LIMIT",
        "GDAL_HTTP_LOW_SPEED_TIME",
        "GDAL_HTTP_TIMEOUT",
    ):
        assert key in DEFAULT_GDAL_OPTIONS, f"{key} is not set: a stalled server hangs a read"
        assert int(DEFAULT_GDAL_OPTIONS[key]) > 0


@pytest.mark.slow
@pytest.mark.parametrize("sent", [0, 1000], ids=["after-headers", "mid-body"])
def test_a_stalled_read_raises_in_bounded_time(folder, server, sent):
    index = build(server)
    ds = geochips.ChipDataset(index, gdal_options=FAST, threads=1)
    server.inject(pixels("stall", times=None, body_bytes=sent))
    with pytest.raises(SceneReadError, match=r"row_off=256"):
        bounded(read_image, ds, 3)
    assert server.faulted(), "the read reached the stalled server"


def first_batch(loader: DataLoader) -> Any:
    iterator = iter(loader)
    try:
        return next(iterator)
    finally:
        # Now, not when the garbage collector frees the iterator (the error's traceback
        # holds it): that would wait for the workers in whichever test runs then.
        iterator._shutdown_workers()  # type: ignore[attr-defined]


@pytest.mark.slow
@pytest.mark.parametrize("where", ["pixels", "open"])
def test_a_stalled_read_raises_in_a_dataloader_worker(folder, server, where):
    index = build(server)
    ds = geochips.ChipDataset(index, gdal_options=FAST, threads=1)
    # "open": the worker (a new process, nothing cached) stalls on the header itself.
    fault = (
        pixels("stall", times=None)
        if where == "pixels"
        else Fault("stall", times=None, methods=("HEAD", "GET"))
    )
    server.inject(fault)
    loader = DataLoader(
        ds,
        batch_size=4,  # one batch: no read of a next one is under way at shutdown
        num_workers=1,
        multiprocessing_context="forkserver",
        collate_fn=geochips.collate,
        timeout=BOUND,
    )
    with pytest.raises(SceneReadError):
        bounded(first_batch, loader, timeout=BOUND + 30)
    assert server.faulted()


@pytest.mark.slow
def test_a_slow_but_moving_read_is_not_cut_off(folder, server):
    index = build(server, size=2 * TILE)  # one chip: the 512 KB scene, four tiles
    options = {"GDAL_HTTP_LOW_SPEED_LIMIT": 50_000, "GDAL_HTTP_LOW_SPEED_TIME": 2}
    ds = geochips.ChipDataset(index, gdal_options=options, threads=1)
    server.inject(pixels("slow", times=None, rate=200_000))  # about 2.6 s
    assert np.array_equal(bounded(read_image, ds, 0), expected(folder, index, 0))
    assert server.faulted()


# -- broken transfers ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["reset", "short"])
def test_a_transfer_broken_once_is_retried(folder, server, kind):
    index = build(server)
    ds = geochips.ChipDataset(index, threads=1)
    server.inject(pixels(kind, body_bytes=CUT))
    assert np.array_equal(bounded(read_image, ds, 3), expected(folder, index, 3))
    assert_retried(server, kind)


# -- HTTP statuses -------------------------------------------------------------------------


@pytest.mark.parametrize("code", [503, 429])
@pytest.mark.parametrize("retry_after", [None, 1])
def test_throttling_a_few_times_then_ok_reads_the_chip(folder, server, code, retry_after):
    index = build(server)
    ds = geochips.ChipDataset(index, gdal_options={"GDAL_HTTP_RETRY_DELAY": 0.1}, threads=1)
    server.inject(pixels("status", status=code, times=2, retry_after=retry_after))
    assert np.array_equal(bounded(read_image, ds, 3), expected(folder, index, 3))
    assert [r.status for r in server.requests() if r.fault] == [code, code]


def attempts_in(message: str) -> int:
    found = re.search(r"(\d+) attempts?\b", message)
    assert found, f"the message does not say how many attempts were made: {message}"
    return int(found.group(1))


def test_persistent_503_raises_after_bounded_attempts(folder, server):
    index = build(server)
    ds = geochips.ChipDataset(index, gdal_options=FAST, threads=1)
    server.inject(pixels("status", status=503, times=None))
    with pytest.raises(SceneReadError) as caught:
        bounded(read_image, ds, 3)
    tried = len(server.faulted())
    assert 1 < tried <= 30, f"{tried} requests: retried, but not forever"
    message = str(caught.value)
    assert "503" in message
    assert attempts_in(message) >= 2


@pytest.mark.parametrize("code", [404, 500])
@pytest.mark.parametrize("signed", [False, True], ids=["plain", "signed"])
def test_a_persistent_http_error_is_named_in_the_message(folder, server, code, signed, caplog):
    caplog.set_level(logging.DEBUG)  # GDAL's retry warnings quote the URL it failed on
    index = build(server, sign=sign_with_token if signed else None)
    ds = geochips.ChipDataset(index, gdal_options=FAST, threads=1)
    server.inject(pixels("status", status=code, times=None))
    with pytest.raises(SceneReadError) as caught:
        bounded(read_image, ds, 3)
    message = str(caught.value)
    assert str(code) in message, f"no HTTP status in: {message}"
    assert index.chip_id(3) in message, f"no chip id in: {message}"
    assert "row_off=256" in message
    assert f"{server.url}/scene.tif" in message
    assert not any(SECRET in text or "sig=" in text for text in texts(caught.value))
    assert not [r.getMessage() for r in caplog.records if SECRET in r.getMessage()]
    attempts_in(message)
    if code == 404:
        assert "truncated or corrupt" not in message  # the file is gone, not damaged


@pytest.mark.slow
def test_a_scene_gone_after_indexing_names_the_404_in_a_worker(folder, server):
    index = build(server)
    ds = geochips.ChipDataset(index, gdal_options=FAST, threads=1)
    server.inject(Fault("status", status=404, times=None, methods=("HEAD", "GET")))
    loader = DataLoader(
        ds,
        batch_size=4,  # one batch: no read of a next one is under way at shutdown
        num_workers=1,
        multiprocessing_context="forkserver",
        collate_fn=geochips.collate,
        timeout=BOUND,
    )
    with pytest.raises(SceneReadError, match="404") as caught:
        bounded(first_batch, loader, timeout=BOUND + 30)
    assert f"{server.url}/scene.tif" in str(caught.value)


# -- signed hrefs --------------------------------------------------------------------------


def test_a_403_once_on_a_signed_href_reads_the_chip(folder, server, caplog):
    caplog.set_level(logging.DEBUG)
    index = build(server, sign=sign_with_token)
    ds = geochips.ChipDataset(index, threads=1)
    server.inject(pixels("status", status=403))
    assert np.array_equal(bounded(read_image, ds, 3), expected(folder, index, 3))
    assert [r.status for r in server.requests() if r.fault] == [403]
    assert all(SECRET in r.query for r in server.requests()), "the reads were signed"
    leaked = [r.getMessage() for r in caplog.records if SECRET in r.getMessage()]
    assert not leaked


def test_a_persistent_403_never_shows_the_token(folder, server, caplog):
    caplog.set_level(logging.DEBUG)
    index = build(server, sign=sign_with_token)
    ds = geochips.ChipDataset(index, gdal_options=FAST, threads=1)
    server.inject(pixels("status", status=403, times=None))
    with pytest.raises(SceneReadError) as caught:
        bounded(read_image, ds, 3)
    assert "403" in str(caught.value)
    assert not [t for t in texts(caught.value) if SECRET in t]
    assert not [r.getMessage() for r in caplog.records if SECRET in r.getMessage()]


# -- servers that ignore Range -------------------------------------------------------------


@pytest.mark.parametrize("times", [1, None], ids=["once", "always"])
def test_an_ignored_range_never_gives_wrong_pixels(folder, server, times):
    index = build(server)
    ds = geochips.ChipDataset(index, gdal_options=FAST, threads=1)
    server.inject(pixels("ignore-range", times=times))
    try:
        image = bounded(read_image, ds, 3)
    except SceneReadError as exc:
        assert re.search("range", str(exc), re.IGNORECASE), f"unclear: {exc}"
        assert times is None, "a server that ignored Range once should not fail the read"
    else:
        assert np.array_equal(image, expected(folder, index, 3))


# -- batches and workers -------------------------------------------------------------------


def test_a_failing_chip_of_a_batch_is_named_and_the_others_are_right(folder, server):
    index = build(server)
    ds = geochips.ChipDataset(index, gdal_options=FAST, threads=4)
    server.inject(chip_fault(folder, index, 2, "status", status=404, times=None))
    with pytest.raises(SceneReadError) as caught:
        bounded(ds.__getitems__, [0, 1, 2, 3])
    assert index.chip_id(2) in str(caught.value)
    assert server.faulted(), "the failing chip's tile was asked for"
    samples = bounded(ds.__getitems__, [0, 1, 3])
    for sample, position in zip(samples, [0, 1, 3], strict=True):
        assert sample["chip_id"] == index.chip_id(position)
        assert np.array_equal(sample["image"].numpy(), expected(folder, index, position))


def test_a_transient_fault_in_a_batch_leaves_every_chip_right(folder, server):
    index = build(server)
    ds = geochips.ChipDataset(index, threads=4)
    server.inject(chip_fault(folder, index, 2, "reset", body_bytes=CUT))
    samples = bounded(ds.__getitems__, [0, 1, 2, 3])
    for position, sample in enumerate(samples):
        assert np.array_equal(sample["image"].numpy(), expected(folder, index, position))
    assert [r.fault for r in server.requests() if r.fault] == ["reset"]


def all_batches(loader: DataLoader, epochs: int) -> list[Any]:
    try:
        return [batch for _ in range(epochs) for batch in loader]
    finally:
        # The persistent workers stop here, even when a batch failed (see first_batch).
        if loader._iterator is not None:  # type: ignore[attr-defined]
            loader._iterator._shutdown_workers()  # type: ignore[attr-defined]


@pytest.mark.slow
@pytest.mark.parametrize("context", ["spawn", "forkserver"])
def test_dataloader_workers_survive_a_transient_reset(folder, server, context):
    index = build(server)
    ds = geochips.ChipDataset(index)  # 8 threads per worker, as users run it
    server.inject(pixels("reset", times=1, body_bytes=CUT))
    loader = DataLoader(
        ds,
        batch_size=2,
        num_workers=2,
        persistent_workers=True,
        multiprocessing_context=context,
        collate_fn=geochips.collate,
        timeout=BOUND,
    )
    batches = bounded(all_batches, loader, 2, timeout=2 * BOUND)
    assert len(batches) == 4
    for epoch in range(2):
        for k, batch in enumerate(batches[2 * epoch : 2 * epoch + 2]):
            positions = [2 * k, 2 * k + 1]
            assert batch["chip_id"] == [index.chip_id(p) for p in positions]
            oracle = np.stack([expected(folder, index, p) for p in positions])
            assert np.array_equal(batch["image"].numpy(), oracle)
    assert [r.fault for r in server.requests() if r.fault] == ["reset"]
