"""Label-aware selection and labels saved with the index, on the real SpaceNet pair."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import rasterio
import shapely
import torch

import geochips
from geochips import sample_data
from geochips.errors import IndexFileError, InvalidParameterError

IMAGE = sample_data.path("spacenet_atlanta.tif")
BUILDINGS = sample_data.path("spacenet_atlanta_buildings.geojson")


def index(**kwargs):
    return geochips.ChipIndex.build([IMAGE], **{"size": 128, "edge": "pad", **kwargs})


def oracle(index_):
    """Per chip, in the scene's CRS: labelled area fraction and objects with area in it."""
    polygons = [
        shapely.geometry.shape(f["geometry"]) for f in json.loads(BUILDINGS.read_text())["features"]
    ]
    union = shapely.union_all(polygons)
    with rasterio.open(IMAGE) as src:
        scene = shapely.box(*src.bounds)
    fractions, objects = [], []
    for footprint in index_.footprints():
        box = footprint.intersection(scene)
        fractions.append(union.intersection(box).area / footprint.area)
        objects.append(sum(p.intersection(box).area > 0 for p in polygons))
    return np.array(fractions), np.array(objects)


def test_label_fraction_and_objects_equal_the_geometry_of_each_chip():
    everything = index()
    measured = geochips.filter_labels(everything, BUILDINGS, min_fraction=0.0)
    assert len(measured) == len(everything)  # min_fraction=0 keeps every chip
    fractions, objects = oracle(everything)
    np.testing.assert_allclose(measured.column("label_fraction"), fractions, atol=1e-6)
    np.testing.assert_array_equal(measured.column("label_objects"), objects)
    assert 0 < fractions.max() <= 1 and (fractions == 0).any()


def test_filters_keep_what_they_say():
    everything = geochips.filter_labels(index(), BUILDINGS, min_fraction=0.0)
    fraction = everything.column("label_fraction")
    objects = everything.column("label_objects")
    assert len(geochips.filter_labels(index(), BUILDINGS)) == int((fraction > 0).sum())
    some = geochips.filter_labels(index(), BUILDINGS, min_fraction=0.05)
    assert len(some) == int((fraction >= 0.05).sum()) > 0
    assert (some.column("label_fraction") >= 0.05).all()
    many = geochips.filter_labels(index(), BUILDINGS, min_objects=3, min_fraction=0.01)
    assert len(many) == int(((objects >= 3) & (fraction >= 0.01)).sum()) > 0


def test_a_filtered_index_keeps_its_masks_labelled():
    kept = geochips.filter_labels(index(), BUILDINGS, min_fraction=0.05)
    ds = geochips.ChipDataset(kept)  # the index carries its labels
    for i in range(len(ds)):
        sample = ds[i]
        valid = sample["mask"] != 255
        burnt = (sample["mask"] == 1).sum().item() / valid.sum().item()
        assert burnt > 0.03  # pixel centres roughly follow the area


def test_labels_are_saved_and_loaded_with_the_index(tmp_path):
    kept = geochips.filter_labels(
        index(), geochips.VectorLabels(BUILDINGS, value=2, boxes=True), min_objects=1
    )
    path = tmp_path / "index.parquet"
    kept.save(path)
    loaded = geochips.ChipIndex.load(path)
    assert loaded.labels == dataclasses.replace(kept.labels, source=str(BUILDINGS.resolve()))
    a, b = geochips.ChipDataset(kept), geochips.ChipDataset(loaded)
    for i in range(len(a)):
        assert torch.equal(a[i]["mask"], b[i]["mask"]) and torch.equal(a[i]["boxes"], b[i]["boxes"])
    np.testing.assert_array_equal(loaded.column("label_fraction"), kept.column("label_fraction"))


def test_raster_labels_with_a_mapping_are_saved_without_tokens(tmp_path):
    signed = "https://acct.blob.core.windows.net/c/labels.tif?st=2026&se=2027&sig=SECRET&sp=r"
    labelled = index().with_labels(geochips.RasterLabels({"spacenet_atlanta": signed}))
    path = tmp_path / "index.parquet"
    labelled.save(path)
    assert b"SECRET" not in path.read_bytes()
    loaded = geochips.ChipIndex.load(path)
    assert loaded.labels.source == {
        "spacenet_atlanta": "https://acct.blob.core.windows.net/c/labels.tif"
    }


def test_labels_in_memory_are_not_saved_and_the_warning_says_why(tmp_path):
    labelled = index().with_labels(
        geochips.VectorLabels([shapely.box(0, 0, 1, 1)], crs="EPSG:32616")
    )
    path = tmp_path / "index.parquet"
    with pytest.warns(geochips.GeochipsWarning, match="without labels.*in memory"):
        labelled.save(path)
    assert geochips.ChipIndex.load(path).labels is None


def test_a_mangled_labels_entry_names_the_file(tmp_path):
    import pyarrow.parquet as pq

    path = tmp_path / "index.parquet"
    index().with_labels(BUILDINGS).save(path)
    table = pq.read_table(path)
    meta = json.loads(table.schema.metadata[b"geochips"])
    meta["labels"]["dtype"] = "float32"
    pq.write_table(
        table.replace_schema_metadata(
            {**table.schema.metadata, b"geochips": json.dumps(meta).encode()}
        ),
        path,
    )
    with pytest.raises(IndexFileError, match="index.parquet.*labels"):
        geochips.ChipIndex.load(path)


def test_an_index_without_labels_asks_for_them():
    with pytest.raises(InvalidParameterError, match="the index has none: give labels="):
        geochips.filter_labels(index())
