"""filter_labels on raster labels: coarse counts of label pixels against full-resolution ones.

Label rasters are written here: the real SpaceNet buildings burnt on the image's own grid
(classes 1..3, a nodata square), smooth blobs of three classes on that grid, and the
buildings warped to longitude/latitude at another resolution over part of the image.
Oracles count the labelled pixels of each window in a full-resolution read (or in a
whole-scene ``rasterio.warp.reproject``, nearest, onto the image's grid).

Tolerances are what was measured, with some room (maximum error over all chips, 128 px
chips on the 900 x 900 image): read whole, 0 on the image's grid and 0 against the warp;
overview 1/2 read 0.0015 (buildings), 0.0043 (blobs) and 0.0055 (lon/lat), 1/4 0.011,
0.017 and 0.011, 1/8 0.020, 0.058 and 0.031; decimated to 1/4 without overviews, 0.009.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import rasterio
import rasterio.warp
import torch
from affine import Affine
from rasterio.enums import Resampling
from support.buildings import BUILDINGS, IMAGE, burn_buildings

import geochips
from geochips.errors import InvalidParameterError, OverviewWarning
from geochips.testing import write_scene

NODATA = 9
OUTSIDE = 200  # what the oracle's warp leaves where no label pixel is

pytestmark = pytest.mark.filterwarnings("ignore::geochips.TileAlignmentWarning")


def write(path, classes, *, nodata=NODATA, overviews=True, **grid):
    """Write ``classes`` as a tiled uint8 label raster (on the image's grid by default)."""
    with rasterio.open(IMAGE) as src:
        crs, transform = src.crs, src.transform
    profile = {"driver": "GTiff", "dtype": "uint8", "count": 1, "nodata": nodata,
               "height": classes.shape[0], "width": classes.shape[1], "crs": crs,
               "transform": transform, "tiled": True, "blockxsize": 256, "blockysize": 256,
               "compress": "deflate", **grid}  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(classes, 1)
        if overviews:
            dst.build_overviews([2, 4, 8], Resampling.nearest)
    return str(path)


@pytest.fixture(scope="module")
def buildings():
    """Class 1..3 by building, 0 elsewhere, a nodata square: the image's full-res grid."""
    classes = burn_buildings()
    classes[100:180, 600:700] = NODATA
    return classes


@pytest.fixture(scope="module")
def blobs():
    """Smooth blobs: 40 % class 0, then classes 1, 2, 3 (a cubic-upsampled random field)."""
    rng = np.random.default_rng(0)
    field = np.zeros((900, 900), "float32")
    rasterio.warp.reproject(
        rng.standard_normal((30, 30)).astype("float32"),
        field,
        src_transform=Affine.scale(30),
        src_crs="EPSG:3857",
        dst_transform=Affine.identity(),
        dst_crs="EPSG:3857",
        resampling=Resampling.cubic,
    )
    return np.digitize(field, np.quantile(field, [0.4, 0.7, 0.9])).astype("uint8")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("labels")


def index(size=128, **kwargs):
    return geochips.ChipIndex.build([IMAGE], **{"size": size, "edge": "pad", **kwargs})


def exact(index_, full, nodata=NODATA):
    """Per chip: labelled pixels (not 0, nodata or outside) of ``full`` over the chip's pixels."""
    labelled = (full != 0) & (full != nodata) & (full != OUTSIDE)
    out = []
    columns = (index_.column(k) for k in ("row_off", "col_off", "height", "width"))
    for r0, c0, h, w in zip(*columns, strict=True):
        out.append(labelled[max(r0, 0) : r0 + h, max(c0, 0) : c0 + w].sum() / (h * w))
    return np.array(out)


def mask_shares(index_, labels):
    """Per chip: the share of ChipDataset's mask that is a class (not 0 nor ignore_index)."""
    ds = geochips.ChipDataset(index_, labels=labels)
    masks = (ds[i]["mask"] for i in range(len(ds)))
    return np.array([((m != 0) & (m != labels.ignore_index)).float().mean().item() for m in masks])


def fractions(index_, labels, **kwargs):
    measured = geochips.filter_labels(index_, labels, min_fraction=0.0, **kwargs)
    assert measured.chip_ids == index_.chip_ids  # min_fraction=0 keeps every chip, in order
    return measured.column("label_fraction")


def test_on_the_scene_grid_without_overviews_every_chip_is_exact(buildings, folder):
    labels = geochips.RasterLabels(write(folder / "plain.tif", buildings, overviews=False))
    chips = index()
    got = fractions(chips, labels)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, exact(chips, buildings), rtol=0, atol=1e-7)
    assert 0 < got.max() < 1 and (got == 0).any()
    # The same count as the masks ChipDataset reads, where nodata and outside are ignored.
    np.testing.assert_allclose(got, mask_shares(chips, labels), rtol=0, atol=1e-7)


@pytest.mark.parametrize(
    ("max_pixels", "tolerance"),
    [(250_000, 0.01), (60_000, 0.03), (15_000, 0.08)],
    ids=["overview 1/2", "overview 1/4", "overview 1/8"],
)
@pytest.mark.parametrize("kind", ["buildings", "blobs"])
def test_from_overviews_chips_are_within_the_documented_tolerance(
    kind, max_pixels, tolerance, folder, request
):
    classes = request.getfixturevalue(kind)
    labels = geochips.RasterLabels(write(folder / f"{kind}_ovr.tif", classes))
    chips = index()
    with warnings.catch_warnings():
        warnings.simplefilter("error", OverviewWarning)  # overviews were there to read
        got = fractions(chips, labels, max_pixels=max_pixels)
    np.testing.assert_allclose(got, exact(chips, classes), rtol=0, atol=tolerance)


@pytest.fixture(scope="module")
def lonlat(buildings, folder):
    """The buildings warped (nearest) to EPSG:4326 at ~0.66 x 0.55 m over the north-west
    three quarters of the image, and the oracle: that raster warped back onto the image."""
    with rasterio.open(IMAGE) as src:
        crs, transform, shape = src.crs, src.transform, src.shape
        west, south, east, north = rasterio.warp.transform_bounds(crs, "EPSG:4326", *src.bounds)
    step = 6e-6
    grid = Affine(step, 0, west, 0, -step, north)
    height, width = int((north - south) / step * 0.75), int((east - west) / step * 0.75)
    classes = np.zeros((height, width), "uint8")
    rasterio.warp.reproject(buildings, classes, src_transform=transform, src_crs=crs,
                            dst_transform=grid, dst_crs="EPSG:4326",
                            resampling=Resampling.nearest)  # fmt: skip
    back = np.full(shape, OUTSIDE, "uint8")
    rasterio.warp.reproject(classes, back, src_transform=grid, src_crs="EPSG:4326",
                            src_nodata=NODATA, dst_transform=transform, dst_crs=crs,
                            dst_nodata=OUTSIDE, resampling=Resampling.nearest)  # fmt: skip
    common = {"crs": "EPSG:4326", "transform": grid}
    return (
        write(folder / "lonlat.tif", classes, overviews=False, **common),
        write(folder / "lonlat_ovr.tif", classes, **common),
        back,
    )


def test_another_crs_and_resolution_read_whole_follows_a_whole_scene_warp(lonlat):
    plain, _, back = lonlat
    chips = index()
    got = fractions(chips, geochips.RasterLabels(plain))
    truth = exact(chips, back)
    np.testing.assert_allclose(got, truth, rtol=0, atol=1e-7)
    assert (back == OUTSIDE).any() and truth.max() > 0.1
    # Chips beyond the label raster (the south-east quarter) have no label at all.
    outside = chips.column("row_off") >= 800
    assert outside.any() and (got[outside] == 0).all()


@pytest.mark.parametrize(
    ("max_pixels", "tolerance"), [(250_000, 0.01), (60_000, 0.02), (15_000, 0.05)]
)
def test_another_crs_from_overviews_is_within_tolerance(lonlat, max_pixels, tolerance):
    _, with_overviews, back = lonlat
    chips = index()
    got = fractions(chips, geochips.RasterLabels(with_overviews), max_pixels=max_pixels)
    np.testing.assert_allclose(got, exact(chips, back), rtol=0, atol=tolerance)


def test_nodata_is_unlabelled_and_ignore_index_plays_no_part(tmp_path):
    """Class 255 (the default ignore_index) is a class; nodata and class 0 are not labels."""
    image = write_scene(tmp_path / "image.tif", height=256, width=256, count=1)
    other = write_scene(tmp_path / "other.tif", height=128, width=128, count=1)
    classes = np.ones((256, 256), "uint8")
    classes[0:64, 0:128] = NODATA
    classes[128:192, 0:64] = 255
    classes[192:256, :] = 0
    classes[64:128, 0:32] = 0  # half of the chip at (64, 0)
    with rasterio.open(image) as src:
        grid = {"crs": src.crs, "transform": src.transform}
    chips = geochips.ChipIndex.build([image, other], size=64)
    ids = [scene.id for scene in chips.scenes]
    source = {
        ids[0]: write(tmp_path / "a.tif", classes, overviews=False, **grid),
        ids[1]: write(tmp_path / "b.tif", np.zeros((128, 128), "uint8"), nodata=None, **grid),
    }
    expected = {
        (ids[0], r, c): (0.0 if r == 0 and c < 128 else 0.5 if (r, c) == (64, 0) else 1.0)
        for r in range(0, 192, 64)
        for c in range(0, 256, 64)
    }
    expected |= {(ids[0], 192, c): 0.0 for c in range(0, 256, 64)}
    expected |= {(ids[1], r, c): 0.0 for r in (0, 64) for c in (0, 64)}
    for ignore in (255, 1):
        got = fractions(chips, geochips.RasterLabels(source, ignore_index=ignore))
        keys = zip(
            (ids[s] for s in chips.column("scene")),
            chips.column("row_off"),
            chips.column("col_off"),
            strict=True,
        )
        assert dict(zip(keys, got.tolist(), strict=True)) == expected


def test_min_fraction_keeps_exactly_the_chips_at_or_above_it(buildings, folder):
    labels = geochips.RasterLabels(write(folder / "keep.tif", buildings))
    chips = index(size=64)
    every = geochips.filter_labels(chips, labels, min_fraction=0.0)
    fraction = dict(zip(every.chip_ids, every.column("label_fraction").tolist(), strict=True))
    for bound in (0.01, 0.1, 0.3, float(np.float32(sorted(fraction.values())[-5]))):
        kept = geochips.filter_labels(chips, labels, min_fraction=bound)
        assert kept.chip_ids == [c for c in every.chip_ids if fraction[c] >= bound]
        assert kept.labels == labels
    some = geochips.filter_labels(chips, labels)  # by default: any labelled pixel
    assert some.chip_ids == [c for c in every.chip_ids if fraction[c] > 0]
    assert 0 < len(some) < len(chips)


def test_min_objects_is_refused_with_the_fix():
    with pytest.raises(InvalidParameterError, match="label raster has none.*min_fraction="):
        geochips.filter_labels(index(), geochips.RasterLabels("labels.tif"), min_objects=1)
    with pytest.raises(InvalidParameterError, match="max_pixels must be an int >= 1"):
        geochips.filter_labels(index(), geochips.RasterLabels("labels.tif"), max_pixels=0)


def test_a_label_raster_without_overviews_over_the_budget_warns_and_names_it(buildings, folder):
    path = write(folder / "big.tif", buildings, overviews=False)
    chips = index()
    with pytest.warns(
        OverviewWarning, match="no overview.*spacenet_atlanta.*big.tif.*gdaladdo -r nearest"
    ):
        got = fractions(chips, geochips.RasterLabels(path), max_pixels=60_000)
    np.testing.assert_allclose(got, exact(chips, buildings), rtol=0, atol=0.015)


def test_the_column_and_the_labels_are_saved_and_loaded_with_the_index(buildings, folder, tmp_path):
    labels = geochips.RasterLabels(write(folder / "saved.tif", buildings), ignore_index=254)
    kept = geochips.filter_labels(index(), labels, min_fraction=0.02)
    path = tmp_path / "index.parquet"
    kept.save(path)
    loaded = geochips.ChipIndex.load(path)
    assert loaded.labels == labels
    assert loaded.chip_ids == kept.chip_ids and "label_objects" not in loaded.column_names
    column = loaded.column("label_fraction")
    assert column.dtype == np.float32
    np.testing.assert_array_equal(column, kept.column("label_fraction"))
    a, b = geochips.ChipDataset(kept), geochips.ChipDataset(loaded)
    for i in range(len(a)):
        assert torch.equal(a[i]["mask"], b[i]["mask"])


def test_on_the_real_sample_the_raster_agrees_with_the_vector_geometry(folder):
    """The SpaceNet buildings burnt (class 1, pixel centres) against their polygons' area."""
    burnt = burn_buildings(lambda n: 1)
    raster = geochips.RasterLabels(write(folder / "burnt.tif", burnt, nodata=None))
    chips = index()
    by_raster = fractions(chips, raster)  # overview 1/2 of the burnt buildings
    by_geometry = fractions(chips, geochips.VectorLabels(BUILDINGS))
    np.testing.assert_allclose(by_raster, by_geometry, rtol=0, atol=0.01)
    assert by_geometry.max() > 0.1


def test_an_index_at_an_overview_counts_what_its_masks_hold(buildings, folder):
    """A full-resolution label raster is on another grid than an index at overview 0:
    warped, read whole, it gives every chip the share of labelled pixels of its mask."""
    labels = geochips.RasterLabels(write(folder / "full.tif", buildings, overviews=False))
    chips = index(size=64, overview_level=0)
    got = fractions(chips, labels)
    np.testing.assert_allclose(got, mask_shares(chips, labels), rtol=0, atol=1e-7)
    assert got.max() > 0.1
