"""The settings and fast paths the benchmarks rely on, checked for correctness (never timed)."""

import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from rasterio._env import del_gdal_config
from rasterio.env import get_gdal_config
from torch.utils.data import DataLoader

from geochips import (
    ChipDataset,
    ChipIndex,
    ChipWindow,
    collate,
)
from geochips.io.headers import read_headers
from geochips.loading.leases import SlotBatch
from geochips.loading.samples import chip_bounds, chip_transform
from geochips.sources import find_sources

# Small test scenes have small tiles, so most grids here straddle them on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::geochips.errors.TileAlignmentWarning")


@pytest.fixture
def range_server(tmp_path: Path):
    """Serve tmp_path over HTTP on 127.0.0.1 with Range support; record (path, status)."""
    log: list[tuple[str, int]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_HEAD(self):
            self.serve(body=False)

        def do_GET(self):
            self.serve(body=True)

        def serve(self, body):
            file = tmp_path / self.path.lstrip("/")
            if not file.is_file():
                log.append((self.path, 404))
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = file.read_bytes()
            match = re.match(r"bytes=(\d+)-(\d+)", self.headers.get("Range", ""))
            start, end = (int(match[1]), int(match[2])) if match else (0, len(data) - 1)
            end = min(end, len(data) - 1)
            log.append((self.path, 206 if match else 200))
            self.send_response(206 if match else 200)
            if match:
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            self.send_header("Content-Length", str(end - start + 1))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            if body:
                self.wfile.write(data[start : end + 1])

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", log
    server.shutdown()
    server.server_close()


def cache_during_read(index, **kwargs):
    """GDAL_CACHEMAX while a chip of ``index`` is read (noted by a signer, called then)."""
    seen = []

    def probe(href):
        seen.append(get_gdal_config("GDAL_CACHEMAX"))
        return href

    ChipDataset(index, sign=probe, **kwargs)[0]
    return seen[0]


def test_the_block_cache_is_sized_in_megabytes(make_scene):
    # rasterio hands an int GDAL_CACHEMAX to GDAL as bytes: 128 would be a 128-byte cache.
    index = ChipIndex.build([make_scene()], size=16)
    before = get_gdal_config("GDAL_CACHEMAX")
    assert cache_during_read(index) == 128 * 1024 * 1024
    assert cache_during_read(index, gdal_options={"GDAL_CACHEMAX": 64}) == 64 * 1024 * 1024
    assert get_gdal_config("GDAL_CACHEMAX") == before  # the caller's own cache size is back


def test_reads_in_the_main_thread_leave_the_gdal_configuration_as_it_was(make_scene):
    index = ChipIndex.build([make_scene(height=64, width=64)], size=16)
    dataset = ChipDataset(index, gdal_options={"GEOCHIPS_TEST_OPTION": "on"})
    with rasterio.Env(GDAL_HTTP_MAX_RETRY="7"):  # the user's own setting
        dataset[0]
        dataset.__getitems__([1, 2, 3])
        assert get_gdal_config("GDAL_HTTP_MAX_RETRY") == 7
    for key in ("GEOCHIPS_TEST_OPTION", "GDAL_HTTP_MULTIPLEX", "GDAL_HTTP_MAX_RETRY"):
        assert get_gdal_config(key) is None, key


@pytest.mark.parametrize("count", [1, 3])
@pytest.mark.parametrize("edge", ["drop", "pad"])
def test_valid_marks_nodata_pixels_of_integer_scenes(make_scene, count, edge):
    # Position-encoded pixels: pick a nodata value that occurs, and compare with rasterio.
    nodata = 7919 + 3 * 50 + 4  # band 1, row 3, col 4
    path = make_scene(height=40, width=50, count=count, nodata=nodata, blocksize=16)
    dataset = ChipDataset(ChipIndex.build([path], size=16, stride=12, edge=edge))
    with rasterio.open(path) as src:
        # Outside the scene counts as nodata (padded chips are filled with it).
        full = np.pad(src.read(), ((0, 0), (0, 16), (0, 16)), constant_values=nodata)
    seen_invalid = 0
    for position in range(len(dataset)):
        sample = dataset[position]
        r, c, h, w = sample["window"]
        expected = (full[:, r : r + h, c : c + w] != nodata).any(axis=0)
        np.testing.assert_array_equal(sample["valid"].numpy()[0], expected)
        seen_invalid += int((~sample["valid"].numpy()).sum())
    # One band: the nodata pixel itself; three bands: only padding (no pixel is nodata in all).
    assert seen_invalid > 0 if count == 1 or edge == "pad" else seen_invalid == 0


def test_every_reading_thread_gets_the_gdal_options(make_scene):
    # rasterio sets options thread-locally outside the main thread: each pool thread of
    # __getitems__ must apply them itself, or its opens probe for side-car files.
    index = ChipIndex.build([make_scene(height=64, width=64)], size=16)
    dataset = ChipDataset(index, threads=2, gdal_options={"GEOCHIPS_TEST_OPTION": "on"})
    pool = dataset._batches.executor(2)
    barrier = threading.Barrier(2)

    def read_in_pool(position: int) -> str | None:
        barrier.wait()  # both threads read, not one of them twice
        dataset[position]
        return get_gdal_config("GEOCHIPS_TEST_OPTION")

    assert list(pool.map(read_in_pool, [0, 1])) == ["on", "on"]
    assert get_gdal_config("GEOCHIPS_TEST_OPTION") is None  # the main thread read nothing


def test_remote_headers_and_threaded_reads_make_no_failed_probes(make_scene, range_server):
    # Without GDAL_DISABLE_READDIR_ON_OPEN in every opening thread, each open listed the
    # "directory" and probed for .aux.xml/.aux/.xml side-cars: 8 failed requests per file.
    url, log = range_server
    del_gdal_config("GDAL_DISABLE_READDIR_ON_OPEN")  # as in a fresh process
    path = make_scene("remote.tif", height=64, width=64, count=1, blocksize=16)
    with rasterio.Env(GDAL_HTTP_TIMEOUT=10):  # a probe this server mishandles fails, not hangs
        (scene,) = read_headers(find_sources({"remote": f"{url}/remote.tif"}), workers=2)
    assert [status for _, status in log if status == 404] == []
    assert len(log) <= 3  # a HEAD and one or two ranged GETs of the header
    dataset = ChipDataset(ChipIndex.from_scenes([scene], size=16), threads=4)
    samples = dataset.__getitems__(list(range(len(dataset))))
    with rasterio.open(path) as src:
        full = src.read()
    for sample in samples:
        rows, cols = sample["window"].slices()
        np.testing.assert_array_equal(sample["image"].numpy(), full[:, rows, cols])
    assert [entry for entry in log if entry[1] == 404] == []


def _collate_in_worker(samples):
    batch = collate(samples)
    batch["in_slot"] = isinstance(batch, SlotBatch) and batch.slot.place(batch["image"])
    return batch


def test_workers_stack_batches_in_shared_memory(make_scene):
    # Stacking into shared memory in the worker spares the copy that sending it would make.
    path = make_scene(height=32, width=64, count=2)
    dataset = ChipDataset(ChipIndex.build([path], size=16))
    loader = DataLoader(dataset, batch_size=4, num_workers=1, collate_fn=_collate_in_worker)
    with rasterio.open(path) as src:
        full = src.read()
    seen = 0
    for batch in loader:
        assert batch["in_slot"]  # sent as a lease: the main process maps the slot itself
        for image in batch["image"]:
            r, c = divmod(seen, 4)
            np.testing.assert_array_equal(
                image.numpy(), full[:, 16 * r : 16 * r + 16, 16 * c : 16 * c + 16]
            )
            seen += 1
    assert seen == len(dataset) == 8
    assert not collate([dataset[0]])["image"].is_shared()  # outside workers: plain memory


@pytest.mark.slow
def test_workers_can_be_told_not_to_reuse_batch_memory(make_scene):
    path = make_scene(height=32, width=64, count=2)
    dataset = ChipDataset(ChipIndex.build([path], size=16), reuse_batch_memory=False)
    loader = DataLoader(dataset, batch_size=4, num_workers=1, collate_fn=_collate_in_worker)
    with rasterio.open(path) as src:
        full = src.read()
    batches = list(loader)
    assert not any(b["in_slot"] for b in batches)
    assert np.array_equal(batches[0]["image"][1].numpy(), full[:, :16, 16:32])


def test_chip_geometry_in_plain_floats_equals_affine_products():
    # ds[i] computes bounds and transform without Affine products; bit for bit the same.
    rng = np.random.default_rng(0)
    for _ in range(500):
        transform = Affine(*rng.uniform(-100, 100, 6))
        r, c = (int(v) for v in rng.integers(-50, 5000, 2))
        h, w = (int(v) for v in rng.integers(1, 600, 2))
        window = ChipWindow(r, c, h, w)
        expected = transform @ Affine.translation(c, r)
        assert chip_transform(transform, window) == expected
        corners = [transform @ p for p in ((c, r), (c + w, r), (c, r + h), (c + w, r + h))]
        xs, ys = [x for x, _ in corners], [y for _, y in corners]
        assert chip_bounds(transform, window) == (min(xs), min(ys), max(xs), max(ys))


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("options", [{}, {"dtype": "float32"}, {"scale": True}])
def test_batches_are_read_into_one_tensor_that_collate_keeps(make_scene, threads, options):
    path = make_scene(height=48, width=64, count=2, nodata=7919 * 2 + 5, blocksize=16)
    dataset = ChipDataset(ChipIndex.build([path], size=16, edge="pad"), threads=threads, **options)
    positions = [5, 0, -1, 7, 3]
    samples = dataset.__getitems__(positions)
    batch = collate(samples)
    assert batch["image"].data_ptr() == samples[0]["image"].data_ptr()  # not stacked again
    for k, position in enumerate(positions):
        single = dataset[position]
        assert batch["chip_id"][k] == single["chip_id"]
        assert torch.equal(batch["image"][k], single["image"])
        assert torch.equal(batch["valid"][k], single["valid"])
    reordered = collate(samples[::-1])  # other orders are stacked, correctly
    assert torch.equal(reordered["image"], batch["image"].flip(0))


def test_batches_that_cannot_share_a_tensor_are_read_sample_by_sample(make_scene):
    index = ChipIndex.build([make_scene(count=3), make_scene(count=3)], size=16)
    dataset = ChipDataset(index, threads=2)
    last = len(index) - 1
    both = dataset.__getitems__([0, last])
    assert [s["scene_id"] for s in both] == ["scene0", "scene1"]
    with pytest.raises(IndexError, match=f"chip position {last + 1} is out of range"):
        dataset.__getitems__([0, last + 1])
    by_id = dataset.__getitems__([index.chip_id(1), 1])
    assert torch.equal(by_id[0]["image"], by_id[1]["image"])
    doubled = ChipDataset(index, transform=lambda s: {**s, "image": s["image"] * 2})
    assert torch.equal(doubled.__getitems__([0])[0]["image"], dataset[0]["image"] * 2)


def test_header_threads_have_exited_when_build_returns(make_scene):
    # Threads that were only joined may still run GDAL's thread-local destructors, holding
    # mutexes a DataLoader worker forked at that instant would inherit locked (a deadlock).
    path = make_scene()
    before = set(os.listdir("/proc/self/task"))
    ChipIndex.build({f"s{i}": path for i in range(12)}, size=16, workers=6)
    assert set(os.listdir("/proc/self/task")) <= before


def test_a_sample_given_another_image_is_stacked_not_taken_from_the_batch(make_scene):
    dataset = ChipDataset(ChipIndex.build([make_scene(height=32, width=32, count=1)], size=16))
    samples = dataset.__getitems__([0, 1, 2])
    replaced = dataset[3]["image"]
    samples[1]["image"] = replaced  # a wrapper changed one sample after the read
    batch = collate(samples)
    assert torch.equal(batch["image"][1], replaced)
    assert torch.equal(batch["image"][0], dataset[0]["image"])
