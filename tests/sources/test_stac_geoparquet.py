"""STAC-GeoParquet catalogs (written by the stac-geoparquet library) indexed like STAC JSON."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import geochips
from geochips.errors import InvalidParameterError

stac_arrow = pytest.importorskip("stac_geoparquet.arrow")

DATA = Path(__file__).parents[1] / "data" / "stac"
SAMPLE = Path(geochips.__file__).parent / "sample_data"
# pystac migrates the item's storage extension and warns that local hrefs name no bucket.
pytestmark = pytest.mark.filterwarnings("ignore:Could not parse bucket:UserWarning")


def items(folder: Path, count: int = 2) -> list[dict]:
    """The real Earth Search item, ``count`` times under new ids, on local copies of bands."""
    out = []
    for n in range(count):
        data = json.loads((DATA / "earth-search-s2-c1.json").read_text())
        data["id"] = f"{data['id']}-{n}"
        # Its self link names Earth Search, against which a path would resolve as a URL.
        data["links"] = [link for link in data["links"] if link["rel"] != "self"]
        for key, name in (("red", "scene_band1.tif"), ("nir", "scene_band2.tif")):
            path = folder / f"{n}-{key}.tif"
            shutil.copy(SAMPLE / name, path)
            data["assets"][key]["href"] = str(path)
            for field in ("proj:shape", "proj:transform"):
                data["assets"][key].pop(field, None)
        out.append(data)
    return out


def write_catalog(found: list[dict], path: Path) -> Path:
    stac_arrow.to_parquet(stac_arrow.parse_stac_items_to_arrow(found), path)
    return path


def test_a_stac_geoparquet_file_indexes_like_its_items_json(tmp_path):
    found = items(tmp_path)
    catalog = write_catalog(found, tmp_path / "catalog.parquet")
    collection = tmp_path / "items.json"
    collection.write_text(json.dumps({"type": "FeatureCollection", "features": found}))
    kwargs = {"assets": ["red", "nir"], "size": 128, "properties": ["datetime", "platform"]}
    from_parquet = geochips.ChipIndex.build(catalog, **kwargs)
    from_json = geochips.ChipIndex.build(collection, **kwargs)
    assert from_parquet.chip_ids == from_json.chip_ids and len(from_parquet.scenes) == 2
    for a, b in zip(from_parquet.scenes, from_json.scenes, strict=True):
        assert (a.id, a.hrefs, a.scales, a.offsets) == (b.id, b.hrefs, b.scales, b.offsets)
    assert list(from_parquet.column("platform")) == list(from_json.column("platform"))
    last = len(from_json) - 1
    assert torch.equal(
        geochips.ChipDataset(from_parquet)[last]["image"],
        geochips.ChipDataset(from_json)[last]["image"],
    )


def test_an_arrow_table_in_the_stac_geoparquet_layout_is_a_source(tmp_path):
    table = stac_arrow.parse_stac_items_to_arrow(items(tmp_path, 1)).read_all()
    index = geochips.ChipIndex.build(table, assets=["red"], size=256)
    assert [s.id for s in index.scenes] == [f"{items(tmp_path, 1)[0]['id']}/red"]


def test_a_saved_chip_index_is_not_a_catalog(tmp_path):
    saved = tmp_path / "chips.parquet"
    geochips.ChipIndex.build([SAMPLE / "RGB.byte.tif"], size=256).save(saved)
    with pytest.raises(InvalidParameterError, match="not STAC-GeoParquet.*ChipIndex.load"):
        geochips.ChipIndex.build(saved, assets=["red"], size=256)
