"""Remote COGs: http(s), s3://, gs:// and az:// read through GDAL, only the tiles a chip needs.

Every test runs a real HTTP server with Range support on 127.0.0.1
(tests/support/localserver.py) and counts what GDAL asked of it. s3://, gs:// and az://
reach the same server through GDAL's own endpoint settings, passed as ``gdal_options``, as
a user would for MinIO or Azurite.
"""

from __future__ import annotations

import io
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from support.localserver import ServerProcess

import geochips
from geochips.errors import SceneHeaderError
from geochips.progress import StderrProgress
from geochips.testing import write_scene

# Small test scenes have small tiles, so most grids here straddle them on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::geochips.errors.TileAlignmentWarning")


SAMPLE = Path(geochips.__file__).parent / "sample_data"
CHUNK = 16384  # GDAL /vsicurl/ reads whole 16 KB chunks


@pytest.fixture
def served(tmp_path):
    """A folder with a synthetic COG (1024 px, 128 px tiles) and the real S1 GRD COG."""
    write_scene(
        tmp_path / "synthetic.tif",
        height=1024,
        width=1024,
        count=1,
        blocksize=128,
        overviews=(2, 4),
    )
    shutil.copy(SAMPLE / "cog_gcps.tif", tmp_path / "cog_gcps.tif")
    with ServerProcess(tmp_path) as server:
        yield tmp_path, server


def all_pixels(index: geochips.ChipIndex) -> list[np.ndarray]:
    dataset = geochips.ChipDataset(index, threads=1)
    return [dataset[i]["image"].numpy() for i in range(len(dataset))]


@pytest.mark.parametrize(
    ("name", "level", "size", "stride", "edge"),
    [
        ("synthetic.tif", None, 256, 192, "pad"),
        ("synthetic.tif", 0, 128, 100, "shift"),
        ("cog_gcps.tif", 0, 200, 150, "drop"),
        ("cog_gcps.tif", 2, 64, 64, "pad"),
    ],
)
def test_remote_reads_equal_local_reads(served, name, level, size, stride, edge):
    folder, server = served
    kwargs = {"size": size, "stride": stride, "edge": edge, "overview_level": level}
    remote = geochips.ChipIndex.build(f"{server.url}/{name}", **kwargs)
    local = geochips.ChipIndex.build(folder / name, **kwargs)
    assert remote.chip_ids == local.chip_ids and len(remote) > 1
    for got, expected in zip(all_pixels(remote), all_pixels(local), strict=True):
        assert np.array_equal(got, expected)


def tile_bytes(path: Path, window: geochips.ChipWindow, tile: int) -> int:
    with rasterio.open(path) as src:
        rows = range(window.row_off // tile, math.ceil((window.row_off + window.height) / tile))
        cols = range(window.col_off // tile, math.ceil((window.col_off + window.width) / tile))
        return sum(src.block_size(1, r, c) for r in rows for c in cols)


def test_a_chip_read_fetches_only_the_tiles_it_covers(served):
    folder, server = served
    href = f"{server.url}/synthetic.tif"
    index = geochips.ChipIndex.build(href, size=256, stride=256)
    opened = server.take()
    # Header: one HEAD (the size) and a few ranged GETs of 16 KB; no listing of the
    # "directory", no probe for side-car files (.aux.xml, .ovr, .msk, .tfw...).
    assert {r.path for r in opened} == {"/synthetic.tif"}
    assert [r.method for r in opened].count("HEAD") == 1
    assert all(r.range for r in opened if r.method == "GET") and len(opened) <= 3
    assert sum(r.sent for r in opened) <= 2 * CHUNK
    dataset = geochips.ChipDataset(index, threads=1)
    dataset[0]
    server.take()  # the reader's own open (a new process would do the same)
    total = 0
    for position in (5, 10, 15, 6):
        window = dataset[position]["window"]
        requests = server.take()
        assert requests, "the chip was read from the server"
        # 256 px over 128 px tiles: 2 rows of 2 adjacent tiles, adjacent ranges merged.
        assert 1 <= len(requests) <= 2
        assert all(r.method == "GET" and r.range and r.status == 206 for r in requests)
        sent = sum(r.sent for r in requests)
        total += sent
        needed = tile_bytes(folder / "synthetic.tif", window, 128)
        assert needed <= sent <= needed + 2 * CHUNK * len(requests)
    # Four of the 16 chips cost about a quarter of the ~1 MB file, not the whole of it.
    assert total < 0.3 * (folder / "synthetic.tif").stat().st_size


def test_overview_chips_read_from_the_overview(served):
    folder, server = served
    index = geochips.ChipIndex.build(f"{server.url}/cog_gcps.tif", overview_level=2, size=64)
    server.take()
    dataset = geochips.ChipDataset(index, threads=1)
    dataset[0]
    requests = server.take()
    # The 1/8 overview (105 x 160 px) is one 512 px tile: a few KB, not the 1.6 MB file.
    assert sum(r.sent for r in requests) < 64_000
    assert all(r.range for r in requests if r.method == "GET")


@pytest.mark.parametrize("scheme", ["s3", "gs", "az"])
def test_object_store_uris_are_read_through_gdal(tmp_path, scheme):
    (tmp_path / "devstoreaccount1" / "bucket").mkdir(parents=True)
    (tmp_path / "bucket").mkdir()
    for folder in (tmp_path / "bucket", tmp_path / "devstoreaccount1" / "bucket"):
        shutil.copy(SAMPLE / "scene_band1.tif", folder / "b1.tif")
    with ServerProcess(tmp_path) as server:
        endpoint = f"127.0.0.1:{server.port}"
        options = {
            "s3": {
                "AWS_S3_ENDPOINT": endpoint,
                "AWS_HTTPS": "NO",
                "AWS_VIRTUAL_HOSTING": "FALSE",
                "AWS_NO_SIGN_REQUEST": "YES",
            },
            "gs": {"CPL_GS_ENDPOINT": f"http://{endpoint}/", "GS_NO_SIGN_REQUEST": "YES"},
            "az": {
                "AZURE_STORAGE_CONNECTION_STRING": (
                    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
                    f"AccountKey=Zm9v;BlobEndpoint=http://{endpoint}/devstoreaccount1;"
                )
            },
        }[scheme]
        href = f"{scheme}://bucket/b1.tif"
        index = geochips.ChipIndex.build(href, size=128, sign=None, gdal_options=options)
        local = geochips.ChipIndex.build(SAMPLE / "scene_band1.tif", size=128)
        assert index.scenes[0].hrefs == (href,) and index.scenes[0].id == "b1"
        dataset = geochips.ChipDataset(index, gdal_options=options, threads=1)
        expected = geochips.ChipDataset(local, threads=1)
        for position in (0, len(index) - 1):
            assert np.array_equal(dataset[position]["image"], expected[position]["image"])
        assert all(r.range for r in server.take() if r.method == "GET")


def test_header_failures_are_collected_and_named_without_tokens(served):
    _, server = served
    progress: list[tuple[int, int]] = []

    def signer(href: str) -> str:  # a custom signer: its token must never be shown
        return f"{href}?sv=2024&sig=SECRETtoken"

    hrefs = [f"{server.url}/synthetic.tif", f"{server.url}/gone1.tif", f"{server.url}/gone2.tif"]
    with pytest.raises(SceneHeaderError) as error:
        geochips.ChipIndex.build(
            hrefs, size=64, sign=signer, progress=lambda done, total: progress.append((done, total))
        )
    message = str(error.value)
    assert "2 of 3 scenes failed" in message
    assert f"{server.url}/gone1.tif" in message and f"{server.url}/gone2.tif" in message
    assert "SECRET" not in message and "synthetic" not in message
    assert progress[-1] == (3, 3) and len(progress) == 3


def test_many_remote_headers_are_read_concurrently_with_a_progress_counter(served):
    folder, server = served
    for i in range(24):
        shutil.copy(folder / "synthetic.tif", folder / f"s{i:02d}.tif")
    server.take()
    stream = io.StringIO()
    hrefs = [f"{server.url}/s{i:02d}.tif" for i in range(24)]
    index = geochips.ChipIndex.build(
        hrefs, size=256, workers=8, progress=StderrProgress(stream=stream, every=0)
    )
    assert [s.id for s in index.scenes] == [f"s{i:02d}" for i in range(24)]  # in order
    assert re.search(r"scene headers: 24/24 scenes, [\d.]+/s, 0:\d\d\n$", stream.getvalue())
    assert len([r for r in server.take() if r.method == "HEAD"]) == 24


def test_overlapping_chips_fetch_only_the_tiles_they_add(served):
    folder, server = served
    index = geochips.ChipIndex.build(f"{server.url}/synthetic.tif", size=256, overlap=128)
    dataset = geochips.ChipDataset(index, threads=1)
    dataset[0]
    server.take()
    for position in (1, 2, 3):  # each moves 128 px right: one new column of 2 tiles
        window = dataset[position]["window"]
        added = geochips.ChipWindow(window.row_off, window.col_off + 128, 256, 128)
        sent = sum(r.sent for r in server.take())
        needed = tile_bytes(folder / "synthetic.tif", added, 128)
        assert needed <= sent <= needed + CHUNK  # (exactly the tiles with GDAL 3.10)
