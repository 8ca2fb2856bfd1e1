"""Vector labels: every chip's mask is the whole-image rasterisation cut to its window.

The oracle burns the real SpaceNet polygons (43 buildings, Atlanta) into the whole image
with ``rasterio.features.rasterize`` and the image's own transform, once; each chip must
equal its window of that, padding set to ignore_index.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import rasterio.features
import rasterio.warp
import shapely
import torch
from rasterio.transform import GCPTransformer
from support.oracles import cut
from torch.utils.data import DataLoader

import geochips
from geochips import sample_data
from geochips.errors import InvalidParameterError

IMAGE = sample_data.path("spacenet_atlanta.tif")
BUILDINGS = sample_data.path("spacenet_atlanta_buildings.geojson")
IGNORE = 255
# Overlapping and overview grids straddle the 256x256 tiles on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::geochips.TileAlignmentWarning")


def features():
    return json.loads(BUILDINGS.read_text())["features"]


def whole_image(values=None, all_touched=False, path=IMAGE, level=None):
    """The oracle: every building burnt into the whole grid read, with the file's transform."""
    kwargs = {} if level is None else {"overview_level": level}
    with rasterio.open(path, **kwargs) as src:
        transform, shape = src.transform, src.shape
    values = values or [1] * len(features())
    shapes = [(f["geometry"], v) for f, v in zip(features(), values, strict=True)]
    return rasterio.features.rasterize(
        shapes, out_shape=shape, transform=transform, all_touched=all_touched, dtype="int32"
    )


def index(**kwargs):
    kwargs = {"size": 256, "stride": 256, "edge": "pad", **kwargs}
    return geochips.ChipIndex.build([IMAGE], **kwargs)


@pytest.mark.parametrize("all_touched", [False, True])
def test_every_chip_is_the_whole_image_rasterisation_cut_to_its_window(all_touched):
    ds = geochips.ChipDataset(
        index(), labels=geochips.VectorLabels(BUILDINGS, all_touched=all_touched)
    )
    full = whole_image(all_touched=all_touched)
    assert full.sum() > 1000  # the buildings are there
    for i in range(len(ds)):
        sample = ds[i]
        assert sample["mask"].shape == (1, 256, 256) and sample["mask"].dtype == torch.int64
        np.testing.assert_array_equal(sample["mask"][0].numpy(), cut(full, sample["window"]))


def test_a_bare_path_burns_one_and_overlapping_chips_agree():
    ds = geochips.ChipDataset(
        geochips.ChipIndex.build([IMAGE], size=192, stride=100), labels=BUILDINGS
    )
    full = whole_image()
    for i in range(len(ds)):
        sample = ds[i]
        np.testing.assert_array_equal(sample["mask"][0].numpy(), cut(full, sample["window"]))


def test_an_overview_level_is_labelled_on_its_own_grid():
    ds = geochips.ChipDataset(index(size=128, stride=128, overview_level=0), labels=BUILDINGS)
    full = whole_image(level=0)
    for i in range(len(ds)):
        sample = ds[i]
        np.testing.assert_array_equal(sample["mask"][0].numpy(), cut(full, sample["window"]))


def test_class_ids_from_an_attribute_named_by_classes(tmp_path):
    collection = json.loads(BUILDINGS.read_text())
    kinds = ["house", "shed", "garage"]
    for number, feature in enumerate(collection["features"]):
        feature["properties"]["kind"] = kinds[number % 3]
    path = tmp_path / "kinds.geojson"
    path.write_text(json.dumps(collection))
    labels = geochips.VectorLabels(path, value="kind", classes=kinds, dtype="uint8")
    ds = geochips.ChipDataset(index(), labels=labels)
    full = whole_image(values=[n % 3 + 1 for n in range(len(collection["features"]))])
    assert set(np.unique(full)) == {0, 1, 2, 3}
    for i in range(len(ds)):
        sample = ds[i]
        assert sample["mask"].dtype == torch.uint8
        np.testing.assert_array_equal(sample["mask"][0].numpy(), cut(full, sample["window"]))


@pytest.mark.parametrize("classes", [False, True], ids=["one-class", "overlapping-classes"])
def test_buildings_grown_to_cover_most_chips_burn_as_the_whole_image(tmp_path, classes):
    # Buffered by 12 m, the buildings overlap and cover up to half of a chip, which is then
    # burnt as runs (of the union, or of the last class over each pixel), not pixel by pixel.
    collection = json.loads(BUILDINGS.read_text())
    for number, feature in enumerate(collection["features"]):
        grown = shapely.geometry.shape(feature["geometry"]).buffer(12)
        feature["geometry"] = shapely.geometry.mapping(grown)
        feature["properties"]["kind"] = number % 4 + 1
    path = tmp_path / "grown.geojson"
    path.write_text(json.dumps(collection))
    values = [f["properties"]["kind"] if classes else 1 for f in collection["features"]]
    with rasterio.open(IMAGE) as src:
        full = rasterio.features.rasterize(
            [(f["geometry"], v) for f, v in zip(collection["features"], values, strict=True)],
            out_shape=src.shape,
            transform=src.transform,
            dtype="int32",
        )
    labels = geochips.VectorLabels(path, value="kind" if classes else 1)
    ds = geochips.ChipDataset(index(size=200, stride=150), labels=labels)
    dense = 0
    for i in range(len(ds)):
        sample = ds[i]
        expected = cut(full, sample["window"])
        np.testing.assert_array_equal(sample["mask"][0].numpy(), expected)
        dense += int((expected[expected != IGNORE] > 0).mean() > 0.25)
    assert dense >= 4


@pytest.mark.parametrize(("value", "dtype"), [(1000, "int16"), (-3, "int32"), (200, "uint8")])
def test_a_class_beyond_uint8_or_a_small_dtype_burns_as_the_whole_image(value, dtype):
    # Classes up to 255 burn in uint8 and are widened once; others burn in the mask's dtype.
    ds = geochips.ChipDataset(
        index(), labels=geochips.VectorLabels(BUILDINGS, value=value, dtype=dtype)
    )
    full = whole_image(values=[value] * len(features()))
    for i in range(len(ds)):
        sample = ds[i]
        assert sample["mask"].dtype == getattr(torch, dtype)
        np.testing.assert_array_equal(sample["mask"][0].numpy(), cut(full, sample["window"]))


def test_boxes_are_the_polygons_clipped_to_the_chip():
    ds = geochips.ChipDataset(index(), labels=geochips.VectorLabels(BUILDINGS, value=3, boxes=True))
    polygons = [shapely.geometry.shape(f["geometry"]) for f in features()]
    total = 0
    for i in range(len(ds)):
        sample = ds[i]
        # Independently, in the scene's CRS: each polygon cut by the chip's ground box.
        inverse = ~sample["transform"]
        chip = shapely.box(*sample["bounds"])
        with rasterio.open(IMAGE) as src:
            scene = shapely.box(*src.bounds)
        expected = []
        for polygon in polygons:
            part = polygon.intersection(chip).intersection(scene)
            if part.is_empty or part.area == 0:
                continue
            x0, y0, x1, y1 = part.bounds
            (c0, r0), (c1, r1) = inverse @ (x0, y1), inverse @ (x1, y0)
            expected.append([c0, r0, c1, r1])
        boxes = sample["boxes"].numpy()
        assert sample["boxes"].dtype == torch.float32 and sample["labels"].dtype == torch.int64
        assert boxes.shape == (len(expected), 4)
        np.testing.assert_allclose(
            boxes[np.lexsort(boxes.T[::-1])],
            np.array(expected, np.float32).reshape(-1, 4)[np.lexsort(np.array(expected).T[::-1])]
            if expected
            else np.zeros((0, 4)),
            atol=1e-3,
        )
        assert (sample["labels"] == 3).all()
        assert (boxes[:, [0, 2]] >= 0).all() and (boxes[:, [0, 2]] <= 256).all()
        total += len(expected)
    assert total >= 43  # every building is in some chip (some in several)


def test_instance_masks_are_each_object_alone():
    labels = geochips.VectorLabels(BUILDINGS, boxes=True, instances=True)
    ds = geochips.ChipDataset(index(), labels=labels)
    for i in range(len(ds)):
        sample = ds[i]
        instances = sample["instances"]
        assert instances.shape == (len(sample["boxes"]), 256, 256) and instances.dtype == torch.bool
        union = instances.any(0) if len(instances) else torch.zeros(256, 256, dtype=torch.bool)
        inside = sample["mask"][0] != IGNORE
        assert torch.equal(union & inside, (sample["mask"][0] == 1))


def test_a_geopackage_and_a_geodataframe_give_the_same_masks(tmp_path):
    geopandas = pytest.importorskip("geopandas")
    frame = geopandas.read_file(BUILDINGS)
    path = tmp_path / "buildings.gpkg"
    frame.to_file(path, driver="GPKG")
    reference = geochips.ChipDataset(index(), labels=BUILDINGS)
    for source in (path, frame):
        ds = geochips.ChipDataset(index(), labels=source)
        for i in range(len(ds)):
            assert torch.equal(ds[i]["mask"], reference[i]["mask"])


def test_an_array_of_geometries_is_vector_data_like_a_list():
    # The file names its CRS (EPSG:32616, the scene's) in a legacy GeoJSON "crs" member.
    geometries = shapely.from_geojson([json.dumps(f["geometry"]) for f in features()])
    reference = geochips.ChipDataset(index(), labels=BUILDINGS)
    for source in (geometries, list(geometries)):
        ds = geochips.ChipDataset(index(), labels=geochips.VectorLabels(source, crs="EPSG:32616"))
        for i in range(len(ds)):
            assert torch.equal(ds[i]["mask"], reference[i]["mask"])


def test_labels_in_another_crs_are_reprojected_to_the_scene(tmp_path):
    collection = json.loads(BUILDINGS.read_text())
    lonlat = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {},
                "geometry": rasterio.warp.transform_geom("EPSG:32616", "EPSG:4326", f["geometry"]),
            }
            for f in collection["features"]
        ],
    }
    path = tmp_path / "lonlat.geojson"
    path.write_text(json.dumps(lonlat))  # no crs member: RFC 7946 longitude/latitude
    ds = geochips.ChipDataset(index(), labels=path)
    full = whole_image()
    agree = total = 0
    for i in range(len(ds)):
        sample = ds[i]
        expected = cut(full, sample["window"])
        agree += int((sample["mask"][0].numpy() == expected).sum())
        total += expected.size
    # Straight edges in UTM are very slightly curved in longitude/latitude and back.
    assert agree / total > 0.9995


def test_a_gcp_scene_is_labelled_through_its_gcps():
    path = sample_data.path("cog_gcps.tif")
    index_ = geochips.ChipIndex.build([path], size=256, stride=256)
    with rasterio.open(path) as src:
        gcps, _ = src.gcps
    transformer = GCPTransformer(gcps)
    # Polygons on the ground (longitude/latitude), placed through GDAL's GCP transformer.
    spots = [(200, 300, 40), (500, 700, 60), (600, 200, 25)]
    polygons = []
    for row, col, radius in spots:
        x, y = transformer.xy(row, col)
        dx = abs(transformer.xy(row, col + radius)[0] - x)
        polygons.append(shapely.Point(x, y).buffer(dx, quad_segs=16))
    labels = geochips.VectorLabels(polygons, crs="EPSG:4326")
    ds = geochips.ChipDataset(index_, labels=labels)
    burnt = agree = total = 0
    for i in range(len(ds)):
        sample = ds[i]
        w = sample["window"]
        rows, cols = np.mgrid[w.row_off : w.row_off + w.height, w.col_off : w.col_off + w.width]
        xs, ys = transformer.xy(rows.ravel(), cols.ravel())  # pixel centres on the ground
        expected = np.zeros(rows.size, dtype=bool)
        for polygon in polygons:
            expected |= shapely.contains_xy(polygon, np.asarray(xs), np.asarray(ys))
        got = sample["mask"][0].numpy().ravel() == 1
        agree += int((got == expected).sum())
        total += expected.size
        burnt += int(expected.sum())
    assert burnt > 5000
    assert agree / total > 0.999  # edges straight between densified vertices


@pytest.mark.slow
@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_labels_through_dataloader_workers_and_collate(context):
    labels = geochips.VectorLabels(BUILDINGS, boxes=True)
    ds = geochips.ChipDataset(index(), labels=labels)
    loader = DataLoader(
        ds,
        batch_size=4,
        shuffle=True,
        num_workers=2,
        collate_fn=geochips.collate,
        multiprocessing_context=context,
    )
    full = whole_image()
    seen = 0
    for batch in loader:
        assert batch["mask"].shape == (len(batch["chip_id"]), 1, 256, 256)
        assert isinstance(batch["boxes"], list) and isinstance(batch["labels"], list)
        for mask, window, boxes, classes, chip_id in zip(
            batch["mask"],
            batch["window"],
            batch["boxes"],
            batch["labels"],
            batch["chip_id"],
            strict=True,
        ):
            np.testing.assert_array_equal(mask[0].numpy(), cut(full, window))
            alone = ds[chip_id]
            assert torch.equal(boxes, alone["boxes"]) and torch.equal(classes, alone["labels"])
            seen += 1
    assert seen == len(ds)


def test_a_batch_read_at_once_equals_its_samples():
    ds = geochips.ChipDataset(index(), labels=BUILDINGS)
    batch = geochips.collate(ds.__getitems__(list(range(len(ds)))))
    for i in range(len(ds)):
        assert torch.equal(batch["mask"][i], ds[i]["mask"])


def test_the_index_carries_its_labels():
    labelled = index().with_labels(BUILDINGS)
    assert isinstance(labelled.labels, geochips.VectorLabels)
    assert labelled.select([0, 1]).labels == labelled.labels
    ds = geochips.ChipDataset(labelled)
    assert "mask" in ds[0]
    assert "mask" not in geochips.ChipDataset(index())[0]


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (lambda: geochips.VectorLabels(BUILDINGS, value="class_id"), "has no attribute 'class_id'"),
        (lambda: geochips.VectorLabels(BUILDINGS, value=255), "ignore_index"),
        (lambda: geochips.VectorLabels(BUILDINGS, value=300, dtype="uint8"), "does not fit"),
        (lambda: geochips.VectorLabels(BUILDINGS, dtype="float32"), "dtype must be one of"),
        (lambda: geochips.VectorLabels(BUILDINGS, instances=True), "needs boxes=True"),
        (lambda: geochips.VectorLabels(BUILDINGS, value="kind", classes=["a"]), "no attribute"),
        (lambda: geochips.VectorLabels([shapely.box(0, 0, 1, 1)]), "does not say its CRS"),
        (lambda: geochips.VectorLabels(3.5), "vector data must be"),
    ],
)
def test_bad_labels_fail_when_the_dataset_is_made(labels, message):
    with pytest.raises(InvalidParameterError, match=message):
        geochips.ChipDataset(index(), labels=labels())


def test_a_missing_or_broken_vector_file_is_named(tmp_path):
    broken = tmp_path / "broken.geojson"
    broken.write_text("{not json")
    with pytest.raises(InvalidParameterError, match="broken.geojson"):
        geochips.ChipDataset(index(), labels=broken)
    with pytest.raises(InvalidParameterError, match="missing.gpkg"):
        geochips.ChipDataset(index(), labels=tmp_path / "missing.gpkg")


def test_unknown_class_names_are_listed(tmp_path):
    collection = json.loads(BUILDINGS.read_text())
    for feature in collection["features"]:
        feature["properties"]["kind"] = "house"
    collection["features"][5]["properties"]["kind"] = "barn"
    path = tmp_path / "kinds.geojson"
    path.write_text(json.dumps(collection))
    with pytest.raises(InvalidParameterError, match=r"\['barn'\]"):
        geochips.ChipDataset(
            index(), labels=geochips.VectorLabels(path, value="kind", classes=["house"])
        )
