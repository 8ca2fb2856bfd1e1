"""STAC items as sources: real Planetary Computer item JSON, local and served over HTTP.

The items are verbatim Planetary Computer responses (tests/data/stac/README.md); their
asset hrefs are rewritten to local copies of the sample scenes (cog_gcps.tif, a real
Sentinel-1 GRD swath georeferenced by GCPs only, for vv/vh; scene_band1/2.tif, two
co-registered Sentinel-2 bands, for B02/B03).
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from affine import Affine
from support.localserver import ServerProcess

import geochips
from geochips.errors import IncompatibleScenesError, InvalidParameterError

DATA = Path(__file__).parents[1] / "data" / "stac"
SAMPLE = Path(geochips.__file__).parent / "sample_data"


def s1_item(folder: Path, *, base: str | None = None, relative: bool = False) -> Path:
    """Write the real S1 GRD item with vv/vh pointing at copies of cog_gcps.tif."""
    item = json.loads((DATA / "s1-grd.json").read_text())
    for key in ("vv", "vh"):
        shutil.copy(SAMPLE / "cog_gcps.tif", folder / f"{key}.tiff")
        href = f"{key}.tiff" if relative else f"{base or folder}/{key}.tiff"
        item["assets"][key]["href"] = href
    item["links"] = [link for link in item["links"] if link["rel"] != "self"]
    path = folder / "s1.json"
    path.write_text(json.dumps(item))
    return path


def s2_item(folder: Path, files: dict[str, str], *, keep_proj: bool = True) -> Path:
    """Write the real S2 L2A item with the given assets pointing at local files."""
    item = json.loads((DATA / "s2-l2a.json").read_text())
    for key, name in files.items():
        shutil.copy(SAMPLE / name, folder / f"{key}.tif")
        item["assets"][key]["href"] = str(folder / f"{key}.tif")
        if not keep_proj:
            for field in ("proj:shape", "proj:transform", "proj:bbox"):
                item["assets"][key].pop(field, None)
    path = folder / "s2.json"
    path.write_text(json.dumps(item))
    return path


def read_local(name: str, window, level=None) -> np.ndarray:
    kwargs = {} if level is None else {"overview_level": level}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(SAMPLE / name, **kwargs) as src:
            rows, cols = window.slices()
            return src.read(window=rasterio.windows.Window.from_slices(rows, cols))


def test_every_kind_of_stac_source_gives_the_same_scene(tmp_path):
    path = s1_item(tmp_path)
    item = pystac.Item.from_file(str(path))
    as_dict = json.loads(path.read_text())
    collection = pystac.ItemCollection([item])
    fc = tmp_path / "items.json"
    fc.write_text(json.dumps(collection.to_dict()))
    kinds = {
        "path": path,
        "str": str(path),
        "item": item,
        "list": [item],
        "collection": collection,
        "dict": as_dict,
        "feature collection file": fc,
    }
    built = {
        name: geochips.ChipIndex.build(source, assets=["vv"], overview_level=2, size=64)
        for name, source in kinds.items()
    }
    reference = built["item"]
    for name, index in built.items():
        assert index.scenes == reference.scenes, name
        assert index.chip_ids == reference.chip_ids, name
    assert reference.scenes[0].id == f"{item.id}/vv"
    assert reference.chip_ids[0] == f"{item.id}/vv/ov2/0/0/64x64"


def test_a_pystac_client_search_is_a_source(tmp_path):
    pystac_client = pytest.importorskip("pystac_client")
    item = pystac.Item.from_file(str(s1_item(tmp_path)))
    # A STAC API search endpoint, answered by a static FeatureCollection.
    (tmp_path / "search").write_text(json.dumps(pystac.ItemCollection([item]).to_dict()))
    with ServerProcess(tmp_path) as server:
        search = pystac_client.ItemSearch(f"{server.url}/search", method="GET", max_items=5)
        index = geochips.ChipIndex.build(search, assets=["vv"], overview_level=2, size=64)
    assert [s.id for s in index.scenes] == [f"{item.id}/vv"]


def test_assets_are_stacked_in_the_order_given(tmp_path):
    path = s2_item(tmp_path, {"B02": "scene_band1.tif", "B03": "scene_band2.tif"})
    index = geochips.ChipIndex.build(path, assets=["B03", "B02"], size=128)
    scene = index.scenes[0]
    assert scene.assets == ("B03", "B02") and scene.count == 2
    assert scene.id.endswith("/B03+B02")
    sample = geochips.ChipDataset(index)[5]
    image = sample["image"].numpy()
    assert np.array_equal(image[0], read_local("scene_band2.tif", sample["window"])[0])
    assert np.array_equal(image[1], read_local("scene_band1.tif", sample["window"])[0])


def test_item_properties_become_columns(tmp_path):
    path = s1_item(tmp_path)
    index = geochips.ChipIndex.build(
        path,
        assets=["vv"],
        overview_level=2,
        size=64,
        properties=["datetime", "sat:relative_orbit", "sat:orbit_state", "collection"],
    )
    assert set(index.column("datetime")) == {"2025-03-12T05:22:49.103098Z"}
    assert set(index.column("sat:relative_orbit").tolist()) == {95}
    assert set(index.column("sat:orbit_state")) == {"descending"}
    assert set(index.column("collection")) == {"sentinel-1-grd"}
    with pytest.raises(InvalidParameterError, match=r"'sat:relative_orbt'.*sat:relative_orbit"):
        geochips.ChipIndex.build(path, assets=["vv"], size=64, properties=["sat:relative_orbt"])


def test_a_missing_asset_names_the_item_and_its_assets(tmp_path):
    path = s1_item(tmp_path)
    with pytest.raises(InvalidParameterError) as error:
        geochips.ChipIndex.build(path, assets=["vv", "hh"], size=64)
    message = str(error.value)
    assert "S1A_IW_GRDH_1SDV_20250312T052236" in message and "'hh'" in message
    assert "vh" in message and "vv" in message  # the keys it does have
    with pytest.raises(InvalidParameterError, match="assets="):
        geochips.ChipIndex.build(path, size=64)


def test_assets_on_different_grids_are_refused_before_any_read(tmp_path):
    # The item's own proj:shape says B02 is 10980 px at 10 m and B05 5490 px at 20 m;
    # the hrefs do not even exist, so nothing is opened.
    item = json.loads((DATA / "s2-l2a.json").read_text())
    with pytest.raises(IncompatibleScenesError) as error:
        geochips.ChipIndex.build(item, assets=["B02", "B05"], size=512)
    message = str(error.value)
    assert "'B02' 10980x10980 at 10 m" in message and "'B05' 5490x5490 at 20 m" in message
    assert item["id"] in message


def test_assets_on_different_grids_are_refused_from_their_headers(tmp_path):
    # Without proj: fields the headers decide, and the error names assets and shapes.
    path = s2_item(tmp_path, {"B02": "scene_band1.tif", "B05": "RGB.byte.tif"}, keep_proj=False)
    with pytest.raises(IncompatibleScenesError) as error:
        geochips.ChipIndex.build(path, assets=["B02", "B05"], size=128)
    message = str(error.value)
    assert "'B02'" in message and "'B05'" in message
    assert "(718, 791)" in message and "(549, 549)" in message


def test_relative_asset_hrefs_resolve_against_the_item(tmp_path, monkeypatch):
    folder = tmp_path / "catalog"
    folder.mkdir()
    path = s1_item(folder, relative=True)
    monkeypatch.chdir(tmp_path)  # not the item's folder
    index = geochips.ChipIndex.build(path, assets=["vv"], overview_level=2, size=64)
    assert index.scenes[0].hrefs == (str(folder / "vv.tiff"),)
    # An item without a self link cannot resolve them, and says so.
    item = json.loads(path.read_text())
    with pytest.raises(InvalidParameterError, match="relative href 'vv.tiff'"):
        geochips.ChipIndex.build(item, assets=["vv"], size=64)


def test_relative_hrefs_of_items_in_a_collection_file_resolve_against_that_file(
    tmp_path, monkeypatch
):
    folder = tmp_path / "catalog"
    (folder / "scenes").mkdir(parents=True)
    item = json.loads(s1_item(folder / "scenes", relative=True).read_text())
    for key in ("vv", "vh"):
        item["assets"][key]["href"] = f"./scenes/../scenes/{key}.tiff"
    collection = folder / "collection.json"  # its features carry no self link
    collection.write_text(json.dumps({"type": "FeatureCollection", "features": [item]}))
    monkeypatch.chdir(tmp_path)
    index = geochips.ChipIndex.build(
        str(collection), assets=["vh", "vv"], overview_level=2, size=64
    )
    scenes = folder / "scenes"
    assert index.scenes[0].hrefs == (str(scenes / "vh.tiff"), str(scenes / "vv.tiff"))


def test_gcp_scenes_carry_the_fitted_transform_never_an_identity(tmp_path):
    path = s1_item(tmp_path)
    for level in (None, 0, 2):
        index = geochips.ChipIndex.build(path, assets=["vv"], overview_level=level, size=64)
        scene = index.scenes[0]
        assert scene.georef == "gcps" and scene.crs == "EPSG:4326"
        assert scene.transform is not None and scene.transform != Affine.identity()
        assert len(scene.gcps) == 210
        # Tamil Nadu, where the swath is (lon 75.6-78.2, lat 9.2-11.2).
        bounds = index.bounds()
        left, bottom = bounds[:, :2].min(0)
        right, top = bounds[:, 2:].max(0)
        assert 75.4 < left < right < 78.4 and 9.0 < bottom < top < 11.4
        sample = geochips.ChipDataset(index)[0]
        assert sample["crs"] == "EPSG:4326" and sample["transform"] != Affine.identity()
        # The same ground point at every level: pixel sizes scale with the overview factor.
        factor = 1 if level is None else 2 ** (level + 1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            with rasterio.open(SAMPLE / "cog_gcps.tif") as src:
                full = rasterio.transform.from_gcps(src.gcps[0])
        assert scene.transform.a == pytest.approx(full.a * factor, rel=0.02)


def test_stac_items_and_cogs_served_over_http(tmp_path):
    with ServerProcess(tmp_path) as server:
        s1_item(tmp_path, base=server.url)
        url = f"{server.url}/s1.json"
        index = geochips.ChipIndex.build(url, assets=["vv", "vh"], overview_level=1, size=128)
        (tmp_path / "local").mkdir()
        local_item = s1_item(tmp_path / "local")
        local = geochips.ChipIndex.build(
            local_item, assets=["vv", "vh"], overview_level=1, size=128
        )
        assert index.chip_ids == local.chip_ids
        assert index.scenes[0].hrefs[0] == f"{server.url}/vv.tiff"
        requests = server.take()
        # The item, then for each asset one HEAD and one GET of its header: no listing of
        # the "directory", no probe for .aux.xml/.ovr/.msk side files.
        assert [r.path for r in requests if r.method == "GET" and r.range is None] == ["/s1.json"]
        assert sorted(r.path for r in requests) == sorted(
            ["/s1.json", "/vv.tiff", "/vv.tiff", "/vh.tiff", "/vh.tiff"]
        )
        sample = geochips.ChipDataset(index)[1]
        expected = read_local("cog_gcps.tif", sample["window"], level=1)[0]
        assert np.array_equal(sample["image"][0].numpy(), expected)
        assert np.array_equal(sample["image"][1].numpy(), expected)


def test_a_stac_api_item_url_without_extension_is_read_as_stac(tmp_path):
    with ServerProcess(tmp_path) as server:
        s1_item(tmp_path, base=server.url)
        (tmp_path / "items").mkdir()
        shutil.copy(tmp_path / "s1.json", tmp_path / "items" / "S1A_IW_GRDH")
        index = geochips.ChipIndex.build(
            f"{server.url}/items/S1A_IW_GRDH", assets=["vv"], overview_level=2, size=64
        )
        assert index.scenes[0].assets == ("vv",)


def test_unreadable_stac_json_is_a_clear_error(tmp_path):
    with pytest.raises(InvalidParameterError, match="cannot read STAC JSON"):
        geochips.ChipIndex.build(tmp_path / "missing.json", assets=["vv"], size=64)
    collection = tmp_path / "collection.json"
    collection.write_text(json.dumps({"type": "Collection", "stac_version": "1.0.0"}))
    with pytest.raises(InvalidParameterError, match="not an Item or ItemCollection"):
        geochips.ChipIndex.build(collection, assets=["vv"], size=64)
