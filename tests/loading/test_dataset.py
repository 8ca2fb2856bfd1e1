import os
import pickle
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from rasterio.windows import Window

from geochips import ChipDataset, ChipIndex, collate, sample_data
from geochips.errors import (
    ChipNotFoundError,
    DtypeConversionError,
    InvalidParameterError,
    SceneReadError,
)
from geochips.io.reader import default_max_open
from geochips.testing import position_values

# Small test scenes have small tiles, so most grids here straddle them on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::geochips.errors.TileAlignmentWarning")


def direct_read(path, window, level=None, fill=0):
    """The oracle: rasterio's own read of the same window (boundless where padded)."""
    kwargs = {} if level is None else {"overview_level": level}
    with rasterio.open(path, **kwargs) as src:
        r, c, h, w = window
        data = np.full((src.count, h, w), fill, dtype=src.dtypes[0])
        r0, c0 = max(r, 0), max(c, 0)
        r1, c1 = min(r + h, src.height), min(c + w, src.width)
        if r1 > r0 and c1 > c0:
            data[:, r0 - r : r1 - r, c0 - c : c1 - c] = src.read(
                window=Window(col_off=c0, row_off=r0, width=c1 - c0, height=r1 - r0)
            )
        return data


@pytest.mark.parametrize("edge", ["drop", "pad", "shift"])
@pytest.mark.parametrize(("size", "stride"), [(16, 16), (16, 8), ((12, 20), (10, 7)), (40, 40)])
def test_every_chip_equals_a_direct_read(make_scene, edge, size, stride):
    path = make_scene(height=45, width=70, count=3, dtype="uint16", blocksize=16)
    index = ChipIndex.build([path], size=size, stride=stride, edge=edge)
    dataset = ChipDataset(index)
    assert len(dataset) == len(index)
    for position in range(len(dataset)):
        sample = dataset[position]
        expected = direct_read(path, sample["window"])
        assert sample["image"].dtype == torch.int32  # uint16 widens
        np.testing.assert_array_equal(sample["image"].numpy(), expected)
        assert sample["chip_id"] == index.chip_ids[position]


@pytest.mark.parametrize("dtype", ["uint8", "int16", "uint16", "int32", "float32", "float64"])
def test_dtypes_are_kept_exactly(make_scene, dtype):
    path = make_scene(height=33, width=33, count=2, dtype=dtype)
    dataset = ChipDataset(ChipIndex.build([path], size=16))
    expected_torch = {"uint16": torch.int32}.get(dtype, getattr(torch, dtype))
    for sample in (dataset[0], dataset[3]):
        assert sample["image"].dtype == expected_torch
        np.testing.assert_array_equal(sample["image"].numpy(), direct_read(path, sample["window"]))


def test_uint16_values_above_int16_survive(make_scene):
    data = np.full((1, 16, 16), 65535, dtype="uint16")
    data[0, 0, 0] = 40000
    path = make_scene(data=data)
    image = ChipDataset(ChipIndex.build([path], size=16))[0]["image"]
    assert image.dtype == torch.int32 and image.max() == 65535 and image[0, 0, 0] == 40000
    as_float = ChipDataset(ChipIndex.build([path], size=16), dtype="float32")[0]["image"]
    assert as_float.max() == 65535.0


@pytest.mark.parametrize("edge", ["drop", "pad"])
def test_uint16_is_kept_when_asked_and_read_straight_into_the_batch(make_scene, edge):
    data = position_values(2, 40, 56, "uint16")
    data[:, 0, :3] = [65535, 40000, 0]  # values int16 would wrap
    path = make_scene(data=data, blocksize=16, nodata=0)
    index = ChipIndex.build([path], size=16, stride=12, edge=edge)
    dataset = ChipDataset(index, dtype="uint16", threads=2)
    positions = list(range(len(dataset)))[::-1]
    batch = dataset.__getitems__(positions)
    images = collate(batch)["image"]
    assert images.dtype == torch.uint16 and images.shape == (len(positions), 2, 16, 16)
    for k, position in enumerate(positions):
        sample = dataset[position]
        expected = direct_read(path, sample["window"])
        assert sample["image"].dtype == torch.uint16
        np.testing.assert_array_equal(sample["image"].numpy(), expected)
        np.testing.assert_array_equal(images[k].numpy(), expected)
        np.testing.assert_array_equal(batch[k]["valid"].numpy()[0], (expected != 0).any(axis=0))
    assert images[positions.index(0), 0, 0, :3].tolist() == [65535, 40000, 0]


@pytest.mark.parametrize(
    ("source", "requested"), [("uint8", "uint16"), ("uint16", "uint32"), ("uint32", "uint64")]
)
def test_unsigned_dtypes_are_given_when_asked(make_scene, source, requested):
    data = position_values(1, 16, 32, source)
    data[0, 0, 0] = np.iinfo(source).max
    dataset = ChipDataset(ChipIndex.build([make_scene(data=data)], size=16), dtype=requested)
    for sample in (dataset[0], dataset.__getitems__([0, 1])[0]):
        assert sample["image"].dtype == getattr(torch, requested)
        np.testing.assert_array_equal(sample["image"].numpy(), data[:, :, :16])


def test_stacked_files_are_read_whole_into_a_uint16_batch(make_scene):
    a = make_scene(data=position_values(1, 32, 32, "uint16"))
    b = make_scene(data=position_values(2, 32, 32, "uint16") + 7)
    dataset = ChipDataset(ChipIndex.build({"ba": [b, a]}, size=16), dtype="uint16", threads=2)
    images = collate(dataset.__getitems__([3, 0, 2]))["image"]
    for k, position in enumerate([3, 0, 2]):
        window = dataset[position]["window"]
        expected = np.concatenate([direct_read(b, window), direct_read(a, window)])
        np.testing.assert_array_equal(images[k].numpy(), expected)


@pytest.mark.parametrize(
    ("source", "requested"),
    [
        ("uint16", "int16"),
        ("uint16", "uint8"),
        ("int32", "int16"),
        ("float32", "int32"),
        ("int16", "uint8"),
        ("float64", "int64"),
    ],
)
def test_conversions_that_could_wrap_are_refused(make_scene, source, requested):
    path = make_scene(height=16, width=16, count=1, dtype=source)
    with pytest.raises(DtypeConversionError, match=f"converting {source} pixels to {requested}"):
        ChipDataset(ChipIndex.build([path], size=16), dtype=requested)


def test_dtype_accepts_torch_dtypes(make_scene):
    path = make_scene(height=16, width=16, count=1, dtype="uint8")
    sample = ChipDataset(ChipIndex.build([path], size=16), dtype=torch.float16)[0]
    assert sample["image"].dtype == torch.float16


def test_bands_select_and_order(make_scene):
    path = make_scene(height=32, width=32, count=4)
    dataset = ChipDataset(ChipIndex.build([path], size=16), bands=[4, 2])
    sample = dataset[1]
    expected = direct_read(path, sample["window"])[[3, 1]]
    np.testing.assert_array_equal(sample["image"].numpy(), expected)
    with pytest.raises(InvalidParameterError, match=r"bands \[5\] do not exist.*1\.\.4"):
        ChipDataset(ChipIndex.build([path], size=16), bands=[5])


def test_overview_levels_read_the_overview(make_scene):
    path = make_scene(height=200, width=160, count=2, blocksize=32, overviews=(2, 4))
    for level in (0, 1):
        dataset = ChipDataset(ChipIndex.build([path], size=24, stride=20, overview_level=level))
        assert len(dataset) > 0
        for position in (0, len(dataset) // 2, len(dataset) - 1):
            sample = dataset[position]
            np.testing.assert_array_equal(
                sample["image"].numpy(), direct_read(path, sample["window"], level=level)
            )


def test_stacked_files_read_as_bands_in_order(make_scene):
    a = make_scene(height=32, width=32, count=1, dtype="uint8")
    b = make_scene(
        height=32, width=32, count=2, dtype="uint8", data=np.full((2, 32, 32), 9, "uint8")
    )
    dataset = ChipDataset(ChipIndex.build({"ab": [b, a]}, size=16))
    sample = dataset[3]
    expected = np.concatenate([direct_read(b, sample["window"]), direct_read(a, sample["window"])])
    np.testing.assert_array_equal(sample["image"].numpy(), expected)
    only_a = ChipDataset(ChipIndex.build({"ab": [b, a]}, size=16), bands=[3])[3]
    np.testing.assert_array_equal(only_a["image"].numpy(), direct_read(a, sample["window"]))


def test_padded_chips_are_filled_and_marked_invalid(make_scene):
    path = make_scene(height=20, width=30, count=1, dtype="int16", nodata=-1)
    index = ChipIndex.build([path], size=16, edge="pad")
    dataset = ChipDataset(index)
    last = dataset[len(dataset) - 1]
    assert last["window"] == (16, 16, 16, 16)
    image, valid = last["image"].numpy(), last["valid"].numpy()
    assert valid.shape == (1, 16, 16) and valid.dtype == bool
    assert valid[0, :4, :14].all() and not valid[0, 4:, :].any() and not valid[0, :, 14:].any()
    assert (image[0, 4:, :] == -1).all()  # the scene's nodata fills what lies outside
    np.testing.assert_array_equal(image, direct_read(path, last["window"], fill=-1))
    custom = ChipDataset(index, fill_value=7)[len(index) - 1]["image"].numpy()
    assert (custom[0, 4:, :] == 7).all()
    with pytest.raises(InvalidParameterError, match="fill_value=70000 does not fit the int16"):
        ChipDataset(index, fill_value=70000)


@pytest.mark.parametrize(
    ("name", "size"),
    # RGB.byte: nodata 0 in three uint8 bands; scene_band1: a float nodata (0.0) declared
    # for uint16 pixels, compared in the pixel dtype.
    [("RGB.byte.tif", 256), ("scene_band1.tif", 128)],
)
def test_nodata_pixels_are_invalid_as_gdal_masks_them(name, size):
    path = sample_data.path(name)
    dataset = ChipDataset(ChipIndex.build([path], size=size))
    with rasterio.open(path) as src:
        for position in range(len(dataset)):
            sample = dataset[position]
            r, c, h, w = sample["window"]
            mask = src.dataset_mask(window=Window(col_off=c, row_off=r, width=w, height=h))
            np.testing.assert_array_equal(sample["valid"].numpy()[0], mask > 0)


def test_nan_nodata_marks_pixels_nan_in_every_band(make_scene):
    data = position_values(2, 16, 32, "float32")
    data[:, 3, 4] = np.nan  # every band: invalid
    data[0, 5, 6] = np.nan  # one band only: valid, as in GDAL's dataset mask
    dataset = ChipDataset(ChipIndex.build([make_scene(data=data, nodata=np.nan)], size=16))
    expected = np.ones((1, 16, 16), bool)
    expected[0, 3, 4] = False
    for sample in (dataset[0], dataset.__getitems__([0, 1])[0]):
        np.testing.assert_array_equal(sample["valid"].numpy(), expected)
        assert torch.isnan(sample["image"][1, 3, 4]) and torch.isnan(sample["image"][0, 5, 6])


def test_samples_carry_their_geometry(make_scene):
    transform = Affine(30.0, 0.0, 600_000.0, 0.0, -30.0, 4_100_000.0)
    path = make_scene(height=40, width=40, count=1, crs="EPSG:32633", transform=transform)
    sample = ChipDataset(ChipIndex.build([path], size=20))[1]  # row 0, col 20
    assert sample["crs"] == "EPSG:32633"
    assert sample["transform"] == Affine(30.0, 0.0, 600_600.0, 0.0, -30.0, 4_100_000.0)
    assert sample["bounds"] == (600_600.0, 4_099_400.0, 601_200.0, 4_100_000.0)
    assert sample["scene_id"] == "scene0"


def test_gcp_scene_samples_use_the_fitted_transform():
    path = sample_data.path("cog_gcps.tif")
    sample = ChipDataset(ChipIndex.build([path], size=256))[0]
    assert sample["crs"] == "EPSG:4326"
    assert not sample["transform"].is_identity
    left, bottom, right, top = sample["bounds"]
    assert 75 < left < right < 79 and 9 < bottom < top < 12  # Tamil Nadu


def test_scale_and_offset_are_applied_on_request(make_scene):
    path = make_scene(height=16, width=16, count=2, dtype="int16")
    with rasterio.open(path, "r+") as dst:
        dst.scales = (0.5, 2.0)
        dst.offsets = (10.0, -1.0)
    raw = ChipDataset(ChipIndex.build([path], size=16))[0]["image"].numpy()
    scaled = ChipDataset(ChipIndex.build([path], size=16), scale=True)[0]["image"]
    assert scaled.dtype == torch.float32
    np.testing.assert_allclose(scaled[0].numpy(), raw[0] * 0.5 + 10.0)
    np.testing.assert_allclose(scaled[1].numpy(), raw[1] * 2.0 - 1.0)
    with pytest.raises(DtypeConversionError, match="scale=True gives fractional values"):
        ChipDataset(ChipIndex.build([path], size=16), scale=True, dtype="int32")


def test_lookup_by_position_and_chip_id(make_scene):
    path = make_scene(height=32, width=32, count=1)
    dataset = ChipDataset(ChipIndex.build([path], size=16))
    last = dataset[-1]
    assert torch.equal(dataset[last["chip_id"]]["image"], last["image"])
    assert dataset[np.int64(2)]["chip_id"] == dataset[2]["chip_id"]
    with pytest.raises(IndexError, match="chip position 4 is out of range for 4 chips"):
        dataset[4]
    with pytest.raises(IndexError, match="-5 is out of range"):
        dataset[-5]
    with pytest.raises(ChipNotFoundError, match="no chip with id 'x/full/0/0/16x16'"):
        dataset["x/full/0/0/16x16"]
    with pytest.raises(TypeError, match="ints .* or str"):
        dataset[1.5]


def test_transform_is_applied_to_each_sample(make_scene):
    path = make_scene(height=16, width=16, count=1, dtype="float32")

    def double(sample):
        sample["image"] = sample["image"] * 2
        return sample

    plain = ChipDataset(ChipIndex.build([path], size=16))[0]["image"]
    doubled = ChipDataset(ChipIndex.build([path], size=16), transform=double)[0]["image"]
    assert torch.equal(doubled, plain * 2)


def test_getitems_reads_a_batch_with_threads(make_scene):
    paths = [make_scene(height=64, width=64, count=2) for _ in range(2)]
    dataset = ChipDataset(ChipIndex.build(paths, size=16), threads=4)
    keys = [5, 0, 31, 17, dataset.index.chip_ids[9]]
    batch = dataset.__getitems__(keys)
    for key, sample in zip(keys, batch, strict=True):
        assert torch.equal(sample["image"], dataset[key]["image"])


def test_by_default_batches_are_read_with_the_threads_the_rule_picks(make_scene, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    path = make_scene(height=64, width=64, count=2)
    dataset = ChipDataset(ChipIndex.build([path], size=16))
    for start in range(0, 16, 4):
        batch = dataset.__getitems__(list(range(start, start + 4)))
        for k, sample in enumerate(batch):
            assert torch.equal(sample["image"], dataset[start + k]["image"])
    # Two batches with one thread, two with three (the first of each not counted), so
    # both choices have a cost a chip and the next batch reads with the cheaper one.
    rule = dataset._batches.rule
    assert rule is not None and rule.many == 3
    assert rule.cost[1] is not None and rule.cost[3] is not None
    assert rule.pick() == min(rule.cost, key=rule.cost.get)


def test_dataset_opens_nothing_until_read_and_pickles_without_handles(make_scene):
    path = make_scene(height=32, width=32, count=1)
    dataset = ChipDataset(ChipIndex.build([path], size=16), threads=2)
    assert dataset.reader.open_count() == 0
    dataset.__getitems__([0, 1, 2])
    assert dataset.reader.open_count() >= 1
    payload = pickle.dumps(dataset)
    assert len(payload) < 20_000
    clone = pickle.loads(payload)
    assert clone.reader.open_count() == 0
    assert torch.equal(clone[3]["image"], dataset[3]["image"])


def test_handle_cache_is_bounded(make_scene):
    paths = [make_scene(height=16, width=16, count=1) for _ in range(5)]
    dataset = ChipDataset(ChipIndex.build(paths, size=16), max_open=2, threads=1)
    for position in range(len(dataset)):
        dataset[position]
        assert dataset.reader.open_count() <= 2
    with pytest.raises(InvalidParameterError, match="max_open must be an int >= 1"):
        ChipDataset(dataset.index, max_open=0)


def test_shuffled_reads_over_many_scenes_keep_them_open_by_default(make_scene):
    # 8 handles a thread reopened a file for almost every chip over 100 scenes (issue 14).
    paths = [make_scene(height=32, width=32, count=1) for _ in range(40)]
    dataset = ChipDataset(ChipIndex.build(paths, size=16), threads=1)
    order = np.random.default_rng(0).permutation(len(dataset)).tolist()
    for position in order + order:
        dataset[position]
    assert dataset.reader.open_count() == min(40, default_max_open())


@pytest.mark.parametrize(("soft", "expected"), [(64, 8), (1024, 32), (20_000, 256)])
def test_the_default_handle_count_follows_the_descriptor_limit(soft, expected):
    # A real lowered limit, in a fresh interpreter (the hard limit allows lowering).
    code = (
        "import resource\n"
        "hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]\n"
        f"resource.setrlimit(resource.RLIMIT_NOFILE, ({soft}, hard))\n"
        "from geochips.io.reader import default_max_open\n"
        "print(default_max_open())\n"
    )
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < soft:
        pytest.skip(f"the hard descriptor limit ({hard}) is below {soft}")
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert int(result.stdout) == expected


def test_a_scene_gone_after_indexing_is_a_clear_error(make_scene, tmp_path):
    path = make_scene("vanishing.tif", height=16, width=16, count=1)
    dataset = ChipDataset(ChipIndex.build([path], size=16))
    (tmp_path / "vanishing.tif").unlink()
    with pytest.raises(
        SceneReadError,
        match=r"cannot read chip 'vanishing/full/0/0/16x16', window \(row_off=0, .*\) of scene "
        r"'vanishing' at .*vanishing.tif: .*check that it still exists",
    ):
        dataset[0]


def test_a_truncated_file_names_scene_and_window(make_scene, tmp_path):
    path = make_scene("broken.tif", height=256, width=256, count=1, blocksize=128, layout="cog")
    dataset = ChipDataset(ChipIndex.build([path], size=128))
    data = (tmp_path / "broken.tif").read_bytes()
    (tmp_path / "broken.tif").write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(SceneReadError, match=r"chip '.*', window \(row_off=128, col_off=128"):
        dataset[3]


REAL_SCENES = {
    "cog_gcps": [sample_data.path("cog_gcps.tif")],
    "s2_two_bands": [sample_data.path("scene_band1.tif"), sample_data.path("scene_band2.tif")],
    "rgb_byte": [sample_data.path("RGB.byte.tif")],
    "cog_nodata": [Path(__file__).parents[1] / "data" / "cog_nodata.tif"],
    "cog_dateline": [Path(__file__).parents[1] / "data" / "cog_dateline.tif"],
}


@pytest.mark.parametrize("name", sorted(REAL_SCENES))
@pytest.mark.parametrize(
    ("size", "stride", "edge", "level"),
    [(256, 256, "drop", None), (200, 150, "pad", None), (128, 100, "shift", 0)],
)
def test_real_scenes_read_exactly_as_rasterio(name, size, stride, edge, level):
    files = REAL_SCENES[name]
    if name == "rgb_byte" and level is not None:
        pytest.skip("RGB.byte.tif has no overviews")
    index = ChipIndex.build(
        {name: files}, size=size, stride=stride, edge=edge, overview_level=level
    )
    dataset = ChipDataset(index)
    assert len(dataset) > 0
    for position in np.linspace(0, len(dataset) - 1, num=min(len(dataset), 6)).astype(int):
        sample = dataset[int(position)]
        fill = index.scenes[0].nodata or 0
        expected = np.concatenate(
            [direct_read(f, sample["window"], level=level, fill=fill) for f in files]
        )
        np.testing.assert_array_equal(sample["image"].numpy(), expected)
