"""Raster labels: on the scene's grid a window read, on another grid a nearest warp.

Label rasters are made from the real SpaceNet buildings: burnt on the image's own grid,
then warped to longitude/latitude at another resolution. Oracles are direct rasterio reads
and a whole-scene ``rasterio.warp.reproject`` (nearest) cut to each window.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.features
import rasterio.warp
import torch
from affine import Affine
from rasterio.warp import Resampling
from support.buildings import burn_buildings
from support.oracles import cut
from torch.utils.data import DataLoader

import geochips
from geochips import sample_data
from geochips.errors import InvalidParameterError

IMAGE = sample_data.path("spacenet_atlanta.tif")
BUILDINGS = sample_data.path("spacenet_atlanta_buildings.geojson")
IGNORE = 255
STAC = Path(__file__).parents[1] / "data" / "stac"

pytestmark = pytest.mark.filterwarnings("ignore::geochips.TileAlignmentWarning")


@pytest.fixture(scope="module")
def on_grid(tmp_path_factory):
    """Class ids 1..3 by building, 0 elsewhere, and a nodata (9) square, on the image grid."""
    with rasterio.open(IMAGE) as src:
        profile = src.profile
    classes = burn_buildings()
    classes[100:180, 600:700] = 9
    path = tmp_path_factory.mktemp("labels") / "classes.tif"
    profile.update(dtype="uint8", nodata=9, count=1, compress="deflate", tiled=True,
                   blockxsize=256, blockysize=256, driver="GTiff")  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(classes, 1)
    return path


@pytest.fixture(scope="module")
def lonlat(on_grid, tmp_path_factory):
    """The same classes warped (nearest) to EPSG:4326 at about 1.3 m, a smaller extent."""
    with rasterio.open(on_grid) as src:
        west, south, east, north = rasterio.warp.transform_bounds(src.crs, "EPSG:4326", *src.bounds)
        step = 1.2e-5
        transform = Affine(step, 0, west, 0, -step, north)
        # Keep the north-west three quarters: part of the image has no label at all.
        width, height = int((east - west) / step * 0.75), int((north - south) / step * 0.75)
        profile = {**src.profile, "crs": "EPSG:4326", "transform": transform,
                   "width": width, "height": height}  # fmt: skip
        path = tmp_path_factory.mktemp("labels") / "lonlat.tif"
        with rasterio.open(path, "w", **profile) as dst:
            rasterio.warp.reproject(
                rasterio.band(src, 1), rasterio.band(dst, 1), resampling=Resampling.nearest
            )
    return path


def index(**kwargs):
    return geochips.ChipIndex.build([IMAGE], **{"size": 256, "edge": "pad", **kwargs})


def test_a_label_raster_on_the_scene_grid_is_read_window_by_window(on_grid):
    ds = geochips.ChipDataset(index(), labels=geochips.RasterLabels(str(on_grid)))
    with rasterio.open(on_grid) as src:
        full = src.read(1).astype(np.int64)
    full[full == 9] = IGNORE  # label nodata
    assert set(np.unique(full)) == {0, 1, 2, 3, IGNORE}
    for i in range(len(ds)):
        sample = ds[i]
        assert sample["mask"].dtype == torch.int64
        np.testing.assert_array_equal(sample["mask"][0].numpy(), cut(full, sample["window"]))


def test_a_label_raster_on_another_crs_and_resolution_is_warped_per_chip(lonlat):
    labels = geochips.RasterLabels({"spacenet_atlanta": str(lonlat)}, dtype="uint8")
    ds = geochips.ChipDataset(index(stride=200), labels=labels)
    with rasterio.open(IMAGE) as image, rasterio.open(lonlat) as src:
        full = np.full(image.shape, IGNORE, dtype=np.uint8)  # what no label covers
        rasterio.warp.reproject(
            src.read(1),
            full,
            src_transform=src.transform,
            src_crs=src.crs,
            src_nodata=9,
            dst_transform=image.transform,
            dst_crs=image.crs,
            dst_nodata=IGNORE,
            resampling=Resampling.nearest,
        )
    assert (full == IGNORE).mean() > 0.2 and (full == 1).sum() > 1000
    agree = total = 0
    for i in range(len(ds)):
        sample = ds[i]
        assert sample["mask"].dtype == torch.uint8
        expected = cut(full, sample["window"])
        agree += int((sample["mask"][0].numpy() == expected).sum())
        total += expected.size
    # GDAL's warper approximates the transform to 1/8 pixel by chunks: the whole scene and
    # a chip may round a few pixels on class edges differently.
    assert agree / total > 0.999


def test_a_callable_names_each_scene_label_raster(on_grid):
    seen = []

    def href(scene):
        seen.append(scene.id)
        return str(on_grid)

    ds = geochips.ChipDataset(index(), labels=geochips.RasterLabels(href))
    reference = geochips.ChipDataset(index(), labels=geochips.RasterLabels(str(on_grid)))
    for i in range(len(ds)):
        assert torch.equal(ds[i]["mask"], reference[i]["mask"])
    assert seen == ["spacenet_atlanta"]  # the header is read once


@pytest.mark.slow
@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_raster_labels_through_workers(lonlat, context):
    labels = geochips.RasterLabels(str(lonlat))
    ds = geochips.ChipDataset(index(), labels=labels)
    loader = DataLoader(ds, batch_size=3, num_workers=2, collate_fn=geochips.collate,
                        multiprocessing_context=context)  # fmt: skip
    seen = 0
    for batch in loader:
        for chip_id, mask in zip(batch["chip_id"], batch["mask"], strict=True):
            assert torch.equal(mask, ds[chip_id]["mask"])
            seen += 1
    assert seen == len(ds)


def test_a_scene_missing_from_the_mapping_is_named(on_grid):
    ds = geochips.ChipDataset(index(), labels=geochips.RasterLabels({"other": str(on_grid)}))
    with pytest.raises(InvalidParameterError, match="no label raster for scene 'spacenet_atlanta'"):
        ds[0]


def test_float_label_rasters_are_refused(tmp_path):
    path = geochips.testing.write_scene(tmp_path / "float.tif", count=1, dtype="float32")
    ds = geochips.ChipDataset(
        geochips.ChipIndex.build([path], size=8), labels=geochips.RasterLabels(path)
    )
    with pytest.raises(InvalidParameterError, match="not class ids"):
        ds[0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dtype": "float32"}, "dtype must be one of"),
        ({"resampling": "bicubic"}, "resampling must be one of"),
        ({"band": 0}, "band must be an int >= 1"),
        ({"ignore_index": 300, "dtype": "uint8"}, "does not fit"),
    ],
)
def test_bad_raster_label_settings(kwargs, message):
    with pytest.raises(InvalidParameterError, match=message):
        geochips.RasterLabels("labels.tif", **kwargs)


@pytest.fixture
def s2_item_with_scl(tmp_path):
    """The real Planetary Computer S2 item: B04 (10 m, real pixels) and a 20 m SCL asset.

    The SCL classes are made from the real B04 pixels (averaged to 20 m, cut into classes
    1..11), with 0 (nodata) in one corner, on exactly twice the 10 m grid.
    """
    b04 = tmp_path / "B04.tif"
    shutil.copy(sample_data.path("scene_band1.tif"), b04)
    with rasterio.open(b04) as src:
        height, width = -(-src.height // 2), -(-src.width // 2)
        coarse = src.read(1, out_shape=(height, width), resampling=Resampling.average)
        edges = np.quantile(coarse[coarse > 0], np.linspace(0, 1, 12)[1:-1])
        scl = (np.digitize(coarse, edges) + 1).astype("uint8")
        scl[:20, :30] = 0
        profile = {"driver": "GTiff", "height": height, "width": width, "count": 1,
                   "dtype": "uint8", "nodata": 0, "crs": src.crs,
                   "transform": src.transform @ Affine.scale(2), "tiled": True,
                   "blockxsize": 128, "blockysize": 128}  # fmt: skip
    with rasterio.open(tmp_path / "SCL.tif", "w", **profile) as dst:
        dst.write(scl, 1)
    item = json.loads((STAC / "s2-l2a.json").read_text())
    item["assets"]["B04"]["href"] = str(b04)
    item["assets"]["SCL"]["href"] = str(tmp_path / "SCL.tif")
    path = tmp_path / "s2.json"
    path.write_text(json.dumps(item))
    return path, scl


def test_labels_from_a_classification_asset_of_the_stac_item(s2_item_with_scl, tmp_path):
    path, scl = s2_item_with_scl
    index = geochips.ChipIndex.build(path, assets=["B04"], size=128, edge="pad")
    labels = geochips.RasterLabels.from_stac(path, "SCL", dtype="uint8")
    assert labels.source == {index.scenes[0].id.removesuffix("/B04"): str(tmp_path / "SCL.tif")}
    # Nearest from 20 m onto 10 m: each class pixel is a 2 x 2 block; nodata is ignored.
    expected = np.repeat(np.repeat(scl, 2, axis=0), 2, axis=1)[: index.scenes[0].height]
    expected = expected[:, : index.scenes[0].width]
    expected[expected == 0] = IGNORE
    assert len(np.unique(expected)) == 12
    index.with_labels(labels).save(tmp_path / "chips.parquet")
    loaded = geochips.ChipIndex.load(tmp_path / "chips.parquet")  # the labels saved with it
    for ds in (geochips.ChipDataset(index, labels=labels), geochips.ChipDataset(loaded)):
        for i in range(len(ds)):
            sample = ds[i]  # padding past the scene is ignored too
            want = cut(expected, sample["window"], fill=IGNORE)
            np.testing.assert_array_equal(sample["mask"][0].numpy(), want, sample["chip_id"])


def test_an_item_without_the_label_asset_is_named(s2_item_with_scl):
    path, _ = s2_item_with_scl
    with pytest.raises(InvalidParameterError, match=r"STAC item 'S2B_MSIL2A.*' has no asset 'lc'"):
        geochips.RasterLabels.from_stac(path, "lc")
