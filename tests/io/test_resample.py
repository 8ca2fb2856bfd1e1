"""Assets on different grids resampled onto one asset's grid, lazily, through a warped VRT."""

from __future__ import annotations

import json
import multiprocessing
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.warp import reproject
from torch.utils.data import DataLoader

import geochips
from geochips import ChipDataset, ChipIndex, collate
from geochips.errors import IncompatibleScenesError, InvalidParameterError

# Small test scenes have small tiles, so most grids here straddle them on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::geochips.errors.TileAlignmentWarning")


DATA = Path(__file__).parents[1] / "data" / "stac"
SAMPLE = Path(geochips.__file__).parent / "sample_data"
FINE = Affine(10.0, 0.0, 500_000.0, 0.0, -10.0, 4_000_000.0)
COARSE = Affine(20.0, 0.0, 500_000.0, 0.0, -20.0, 4_000_000.0)


@pytest.fixture
def fine_and_coarse(make_scene):
    """A 10 m file (64 x 64) and a 20 m file (32 x 32) over the same ground."""
    fine = make_scene("fine.tif", height=64, width=64, count=1, transform=FINE, overviews=(2, 4))
    coarse = make_scene(
        "coarse.tif", height=32, width=32, count=2, transform=COARSE, overviews=(2,)
    )
    return fine, coarse


def test_different_grids_are_refused_unless_a_grid_is_named(fine_and_coarse):
    with pytest.raises(IncompatibleScenesError, match="grid=<asset>, resampling="):
        ChipIndex.build({"s": list(fine_and_coarse)}, size=16)


def test_nearest_resampling_repeats_each_coarse_pixel(fine_and_coarse):
    fine, coarse = fine_and_coarse
    index = ChipIndex.build({"s": [fine, coarse]}, size=16, grid=0)
    scene = index.scenes[0]
    assert (scene.height, scene.width, scene.count) == (64, 64, 3)
    assert scene.warped == (False, True) and scene.resampling == "nearest"
    with rasterio.open(fine) as f, rasterio.open(coarse) as c:
        fine_px, coarse_px = f.read(), c.read()
    upsampled = coarse_px.repeat(2, axis=1).repeat(2, axis=2)
    dataset = ChipDataset(index)
    for position in range(len(dataset)):
        sample = dataset[position]
        rows, cols = sample["window"].slices()
        expected = np.concatenate([fine_px[:, rows, cols], upsampled[:, rows, cols]])
        np.testing.assert_array_equal(sample["image"].numpy(), expected)


@pytest.mark.parametrize("method", ["bilinear", "cubic", "average"])
def test_chips_equal_a_whole_scene_reprojection(fine_and_coarse, method):
    fine, coarse = fine_and_coarse
    index = ChipIndex.build(
        {"s": [fine, coarse]}, size=(16, 24), stride=12, grid=0, resampling=method
    )
    with rasterio.open(coarse) as src:
        whole = np.zeros((2, 64, 64), dtype="uint16")
        reproject(
            src.read(),
            whole,
            src_transform=COARSE,
            src_crs=src.crs,
            dst_transform=FINE,
            dst_crs=src.crs,
            resampling=Resampling[method],
        )
    dataset = ChipDataset(index, bands=[2, 3])
    for position in range(len(dataset)):
        sample = dataset[position]
        rows, cols = sample["window"].slices()
        # Warping chip by chip gives the same pixels as warping the whole scene.
        np.testing.assert_array_equal(sample["image"].numpy(), whole[:, rows, cols])


def test_a_coarse_grid_reads_the_resampled_file_from_its_overview(fine_and_coarse):
    fine, coarse = fine_and_coarse
    index = ChipIndex.build({"s": [fine, coarse]}, size=8, overview_level=1, grid=0)
    scene = index.scenes[0]
    # Level 1 of the fine file is 40 m; the 20 m file's first overview (40 m) serves it.
    assert (scene.height, scene.width) == (16, 16)
    assert scene.file_levels == (1, 0)
    with rasterio.open(coarse, overview_level=0) as src:
        coarse_40m = src.read()
    sample = ChipDataset(index)[3]
    rows, cols = sample["window"].slices()
    np.testing.assert_array_equal(sample["image"].numpy()[1:], coarse_40m[:, rows, cols])


def test_bad_grid_and_resampling_are_clear(fine_and_coarse):
    with pytest.raises(InvalidParameterError, match="file position 0..1"):
        ChipIndex.build({"s": list(fine_and_coarse)}, size=16, grid=5)
    with pytest.raises(InvalidParameterError, match="resampling must be one of"):
        ChipIndex.build({"s": list(fine_and_coarse)}, size=16, grid=0, resampling="smooth")


def test_a_gcp_only_file_cannot_be_resampled(fine_and_coarse, tmp_path):
    gcps = shutil.copy(SAMPLE / "cog_gcps.tif", tmp_path / "gcps.tif")
    with pytest.raises(IncompatibleScenesError, match="cannot be resampled"):
        ChipIndex.build({"s": [fine_and_coarse[0], gcps]}, size=16, grid=0)


@pytest.fixture
def s2_item(tmp_path):
    """The real Planetary Computer S2 item, B04 (10 m) and B05 (20 m) on real S2 pixels."""
    b04 = shutil.copy(SAMPLE / "scene_band1.tif", tmp_path / "B04.tif")
    b05 = tmp_path / "B05.tif"
    with rasterio.open(SAMPLE / "scene_band2.tif") as src:
        profile = src.profile | {
            "height": src.height // 2,
            "width": src.width // 2,
            "transform": src.transform
            @ Affine.scale(src.width / (src.width // 2), src.height / (src.height // 2)),
        }
        with rasterio.open(b05, "w", **profile) as dst:
            dst.write(
                src.read(
                    out_shape=(1, src.height // 2, src.width // 2), resampling=Resampling.average
                )
            )
    item = json.loads((DATA / "s2-l2a.json").read_text())
    item["assets"]["B04"]["href"] = str(b04)
    item["assets"]["B05"]["href"] = str(b05)
    path = tmp_path / "s2.json"
    path.write_text(json.dumps(item))
    return path, b04, b05


def test_stac_assets_of_two_resolutions_on_the_10m_grid(s2_item, tmp_path):
    path, b04, b05 = s2_item
    with pytest.raises(IncompatibleScenesError, match="grid='B04'"):
        ChipIndex.build(path, assets=["B04", "B05"], size=128)
    index = ChipIndex.build(
        path, assets=["B04", "B05"], size=128, grid="B04", resampling="bilinear"
    )
    scene = index.scenes[0]
    assert scene.warped == (False, True) and (scene.height, scene.width) == (549, 549)
    with rasterio.open(b04) as fine, rasterio.open(b05) as coarse:
        whole = np.zeros((1, 549, 549), dtype="uint16")
        reproject(
            coarse.read(),
            whole,
            src_transform=coarse.transform,
            src_crs=coarse.crs,
            dst_transform=fine.transform,
            dst_crs=fine.crs,
            src_nodata=0,
            dst_nodata=0,
            resampling=Resampling.bilinear,
        )
        fine_px = fine.read()
    loader = DataLoader(
        ChipDataset(index),
        batch_size=4,
        num_workers=2,
        collate_fn=collate,
        multiprocessing_context=multiprocessing.get_context("spawn"),
    )
    for batch in loader:
        for image, window in zip(batch["image"], batch["window"], strict=True):
            rows, cols = window.slices()
            np.testing.assert_array_equal(image[0].numpy(), fine_px[0, rows, cols])
            np.testing.assert_array_equal(image[1].numpy(), whole[0, rows, cols])
    saved = tmp_path / "index.parquet"
    index.save(saved)
    again = ChipIndex.load(saved)
    assert again.scenes[0] == scene
    assert again.chip_ids == index.chip_ids
