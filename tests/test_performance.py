"""The settings and fast paths the benchmarks rely on, checked for correctness (never timed)."""

import threading

import numpy as np
import pytest
import rasterio
from rasterio.env import get_gdal_config
from rasterio.windows import Window

from geochips import ChipDataset, ChipIndex, sample_data


def test_the_block_cache_is_sized_in_megabytes(make_scene):
    # rasterio hands an int GDAL_CACHEMAX to GDAL as bytes: 128 would be a 128-byte cache.
    dataset = ChipDataset(ChipIndex.build([make_scene()], size=16))
    dataset[0]
    assert get_gdal_config("GDAL_CACHEMAX") == 128 * 1024 * 1024
    ChipDataset(ChipIndex.build([make_scene()], size=16), gdal_options={"GDAL_CACHEMAX": 64})[0]
    assert get_gdal_config("GDAL_CACHEMAX") == 64 * 1024 * 1024


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


def test_valid_with_a_float_nodata_on_real_uint16_scenes():
    # The Sentinel-2 sample declares nodata 0.0 for uint16 pixels.
    path = sample_data.path("scene_band1.tif")
    dataset = ChipDataset(ChipIndex.build([path], size=128))
    with rasterio.open(path) as src:
        assert src.nodata == 0.0
        for position in range(len(dataset)):
            sample = dataset[position]
            r, c, h, w = sample["window"]
            mask = src.dataset_mask(window=Window(col_off=c, row_off=r, width=w, height=h))
            np.testing.assert_array_equal(sample["valid"].numpy()[0], mask > 0)


def test_every_reading_thread_gets_the_gdal_options(make_scene):
    # rasterio sets options thread-locally outside the main thread: each pool thread of
    # __getitems__ must apply them itself, or its opens probe for side-car files.
    index = ChipIndex.build([make_scene(height=64, width=64)], size=16)
    dataset = ChipDataset(index, threads=2, gdal_options={"GEOCHIPS_TEST_OPTION": "on"})
    pool = dataset._executor(2)
    barrier = threading.Barrier(2)

    def read_in_pool(position: int) -> str | None:
        barrier.wait()  # both threads read, not one of them twice
        dataset[position]
        return get_gdal_config("GEOCHIPS_TEST_OPTION")

    assert list(pool.map(read_in_pool, [0, 1])) == ["on", "on"]
    assert get_gdal_config("GEOCHIPS_TEST_OPTION") is None  # the main thread read nothing
