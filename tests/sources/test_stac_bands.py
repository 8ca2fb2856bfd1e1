"""STAC ``raster:bands`` scale, offset and nodata, from a real Earth Search item."""

from __future__ import annotations

import dataclasses
import datetime
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

import geochips

DATA = Path(__file__).parents[1] / "data" / "stac"
SAMPLE = Path(geochips.__file__).parent / "sample_data"
# pystac migrates the item's storage extension and warns that local hrefs name no bucket.
pytestmark = pytest.mark.filterwarnings("ignore:Could not parse bucket:UserWarning")


def item(folder: Path, edit=None) -> Path:
    """The real item, ``red``/``nir`` pointing at the two sample Sentinel-2 bands."""
    data = json.loads((DATA / "earth-search-s2-c1.json").read_text())
    for key, name in (("red", "scene_band1.tif"), ("nir", "scene_band2.tif")):
        shutil.copy(SAMPLE / name, folder / f"{key}.tif")
        if edit is not None:
            edit(folder / f"{key}.tif")
        data["assets"][key]["href"] = str(folder / f"{key}.tif")
        for field in ("proj:shape", "proj:transform"):
            data["assets"][key].pop(field, None)
    path = folder / "item.json"
    path.write_text(json.dumps(data))
    return path


def test_the_catalog_scale_and_offset_give_reflectance(tmp_path):
    index = geochips.ChipIndex.build(item(tmp_path), assets=["red", "nir"], size=128)
    scene = index.scenes[0]
    assert scene.scales == (0.0001, 0.0001) and scene.offsets == (-0.1, -0.1)
    ds = geochips.ChipDataset(index, scale=True, dtype="float32")
    with rasterio.open(tmp_path / "red.tif") as red, rasterio.open(tmp_path / "nir.tif") as nir:
        for i in (0, len(ds) - 1):
            sample = ds[i]
            w = sample["window"]
            window = rasterio.windows.Window(w.col_off, w.row_off, w.width, w.height)
            raw = np.stack([red.read(1, window=window), nir.read(1, window=window)])
            expected = raw.astype(np.float32) * np.float32(0.0001) + np.float32(-0.1)
            np.testing.assert_allclose(sample["image"].numpy(), expected, rtol=1e-6)
    unscaled = geochips.ChipDataset(index)[len(ds) - 1]["image"]  # scale=False: raw counts
    assert torch.equal(unscaled, torch.from_numpy(raw.astype(np.int32)))


def drop_nodata(path: Path) -> None:
    with rasterio.open(path, "r+") as f:
        f.nodata = None


def test_the_catalog_nodata_applies_where_the_file_has_none(tmp_path):
    index = geochips.ChipIndex.build(item(tmp_path, drop_nodata), assets=["red", "nir"], size=128)
    assert index.scenes[0].nodata == 0
    assert "valid" in geochips.ChipDataset(index)[0]


def own_scale(path: Path) -> None:
    with rasterio.open(path, "r+") as f:
        f.scales = (0.5,)
        f.offsets = (1.0,)


def test_a_file_with_its_own_scale_keeps_it_and_the_disagreement_is_said(tmp_path):
    with pytest.warns(
        geochips.GeochipsWarning,
        match=r"disagree: band 1 scale/offset is \(0.5, 1.0\) in the file, "
        r"\(0.0001, -0.1\) in the item; band 2",
    ):
        index = geochips.ChipIndex.build(item(tmp_path, own_scale), assets=["red", "nir"], size=128)
    assert index.scenes[0].scales == (0.5, 0.5) and index.scenes[0].offsets == (1.0, 1.0)


def test_the_catalog_bands_survive_save_and_load(tmp_path):
    index = geochips.ChipIndex.build(item(tmp_path), assets=["red", "nir"], size=128)
    index.save(tmp_path / "index.parquet")
    loaded = geochips.ChipIndex.load(tmp_path / "index.parquet")
    assert loaded.scenes[0].scales == (0.0001, 0.0001) and loaded.scenes[0].offsets == (-0.1, -0.1)


def test_item_properties_join_every_sample_with_times_as_iso_and_posix(tmp_path):
    index = geochips.ChipIndex.build(
        item(tmp_path),
        assets=["red", "nir"],
        size=128,
        properties=["datetime", "platform", "eo:cloud_cover"],
    )
    sample = geochips.ChipDataset(index)[0]
    raw = json.loads((DATA / "earth-search-s2-c1.json").read_text())["properties"]
    assert raw["datetime"] == "2025-07-31T13:19:22.930000Z"
    assert sample["datetime"] == "2025-07-31T13:19:22.930000+00:00"
    expected = (
        datetime.datetime(2025, 7, 31, 13, 19, 22, 930000, tzinfo=datetime.timezone.utc)
        - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    ).total_seconds()
    assert sample["datetime_posix"] == pytest.approx(expected, abs=1e-6)
    assert sample["platform"] == raw["platform"] == "sentinel-2b"
    assert sample["eo:cloud_cover"] == raw["eo:cloud_cover"]
    batch = geochips.collate([geochips.ChipDataset(index)[i] for i in range(3)])
    assert batch["datetime_posix"] == [sample["datetime_posix"]] * 3


def test_a_property_that_would_replace_a_sample_key_is_refused(tmp_path):
    index = geochips.ChipIndex.build(item(tmp_path), assets=["red", "nir"], size=128)
    odd = dataclasses.replace(index.scenes[0], properties={"crs": "from the item"})
    clashing = geochips.ChipIndex([odd], {n: index.column(n) for n in index.column_names})
    with pytest.raises(geochips.InvalidParameterError, match="property 'crs'"):
        geochips.ChipDataset(clashing)
