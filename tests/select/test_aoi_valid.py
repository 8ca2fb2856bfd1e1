"""AOI filters and valid fractions, on real scenes, against independent expectations.

Expected chips come from a different path than geochips.select.aoi: a ground point is
located in the scene with rasterio (``dataset.index`` after ``rasterio.warp.transform``, or a
GCP of the file itself, which is a known pixel <-> lon/lat pair), and the chips expected
are those whose window holds that pixel. Valid fractions are compared to full-resolution
counts of the same files.
"""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rasterio.errors import NotGeoreferencedWarning
from rasterio.warp import transform as warp_transform
from rasterio.warp import transform_geom
from support.scenes import scene_header

import geochips
from geochips import ChipIndex, estimate_valid, filter_aoi
from geochips.errors import InvalidParameterError
from geochips.sample_data import path as sample_path
from geochips.select.aoi import aoi_mask, read_aoi

# Small test scenes have small tiles, so most grids here straddle them on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::geochips.errors.TileAlignmentWarning")


DATA = Path(__file__).parents[1] / "data"
DATELINE = str(DATA / "cog_dateline.tif")


def chips_holding(index, row, col):
    """Positions of the chips whose window contains pixel (row, col)."""
    r, c = index.column("row_off"), index.column("col_off")
    h, w = index.column("height"), index.column("width")
    return set(np.flatnonzero((r <= row) & (row < r + h) & (c <= col) & (col < c + w)).tolist())


def pixel_of(href, lon, lat):
    with rasterio.open(href) as src:
        xs, ys = warp_transform("EPSG:4326", src.crs, [lon], [lat])
        return src.index(xs[0], ys[0])


def dot(lon, lat, radius=1e-5):
    return shapely.Point(lon, lat).buffer(radius)


# -- the antimeridian -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def dateline():
    return ChipIndex.build([DATELINE], size=256, stride=128)


@pytest.mark.parametrize(
    "lon, lat",
    [
        (178.5, 52.5),  # west of the antimeridian
        (179.99, 51.5),  # just west of it
        (-179.5, 51.5),  # east of it, in negative longitudes
        (-178.9, 51.0),  # near the east edge
    ],
)
def test_aoi_points_on_both_sides_of_the_antimeridian(dateline, lon, lat):
    row, col = pixel_of(DATELINE, lon, lat)
    assert 0 <= row < 2355 and 0 <= col < 2325
    expected = chips_holding(dateline, row, col)
    assert len(expected) == 4  # stride half the size: every pixel is in 4 chips
    assert set(np.flatnonzero(aoi_mask(dateline, dot(lon, lat))).tolist()) == expected


def test_an_aoi_cut_at_the_antimeridian_or_with_longitudes_beyond_180_is_the_same(dateline):
    cut = shapely.MultiPolygon(
        [shapely.box(179.8, 51.3, 180.0, 51.6), shapely.box(-180.0, 51.3, -179.8, 51.6)]
    )
    unwrapped = shapely.box(179.8, 51.3, 180.2, 51.6)
    kept_cut = aoi_mask(dateline, cut)
    assert kept_cut.sum() > 4
    assert np.array_equal(kept_cut, aoi_mask(dateline, unwrapped))
    # ... and it reaches chips on both sides of 180 degrees.
    east = chips_holding(dateline, *pixel_of(DATELINE, -179.85, 51.45))
    west = chips_holding(dateline, *pixel_of(DATELINE, 179.85, 51.45))
    assert east <= set(np.flatnonzero(kept_cut)) and west <= set(np.flatnonzero(kept_cut))


def test_the_whole_world_holds_every_chip_and_a_far_aoi_none(dateline):
    world = shapely.box(-180, -90, 180, 90)
    assert filter_aoi(dateline, world, predicate="within").chip_ids == dateline.chip_ids
    assert len(filter_aoi(dateline, shapely.box(0, 0, 10, 10))) == 0
    assert len(filter_aoi(dateline, shapely.Point(-0.1, 51.5))) == 0  # London, far away


# -- scenes in several CRSs -----------------------------------------------------------------


def test_one_aoi_over_scenes_in_different_crss():
    hrefs = [
        str(DATA / "mosaic_cog1_ov0.tif"),  # EPSG:32618
        str(DATA / "mosaic_cog2_ov0.tif"),  # EPSG:32618, overlapping
        str(sample_path("scene_band1.tif")),  # EPSG:32629, Western Sahara
        str(DATA / "cog_nodata.tif"),  # EPSG:32621, Greenland
    ]
    index = ChipIndex.build(hrefs, size=64, stride=32)
    # A point where the two neighbours overlap (Quebec), and one in the Sahara scene.
    for lon, lat, scenes in [(-73.9, 46.3, {0, 1}), (-11.5, 24.8, {2})]:
        kept = filter_aoi(index, dot(lon, lat))
        assert set(kept.column("scene").tolist()) == scenes
        expected = set()
        for s in scenes:
            row, col = pixel_of(hrefs[s], lon, lat)
            in_scene = np.flatnonzero(index.column("scene") == s)
            sub = index.select(in_scene)
            expected |= {in_scene[p] for p in chips_holding(sub, row, col)}
        assert set(kept.chip_ids) == {index.chip_id(p) for p in expected}


def test_within_keeps_only_chips_inside_the_aoi():
    index = ChipIndex.build([str(DATA / "mosaic_cog1_ov0.tif")], size=64, stride=64)
    bounds = index.bounds()
    # An AOI in the scene's own CRS covering exactly chips (1..3, 1..3) of the grid.
    left, top = bounds[7, 0], bounds[7, 3]  # chip at row 1, col 1 (6 chips per row)
    right, bottom = bounds[6 * 3 + 3, 2], bounds[6 * 3 + 3, 1]
    aoi = shapely.box(left, bottom, right, top)
    within = filter_aoi(index, aoi, crs="EPSG:32618", predicate="within")
    assert within.chip_ids == [
        f"mosaic_cog1_ov0/full/{r}/{c}/64x64" for r in (64, 128, 192) for c in (64, 128, 192)
    ]
    touching = filter_aoi(index, aoi, crs="EPSG:32618")
    assert len(touching) == 25  # the 3x3 block and its ring of neighbours touch it


def test_gcp_scene_aoi_goes_to_pixels_through_the_gcps():
    href = str(sample_path("cog_gcps.tif"))
    index = ChipIndex.build([href], size=100, stride=50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(href) as src:
            gcps = src.gcps[0]
    # Ground truth: the file's own GCPs are known pixel <-> lon/lat pairs. GDAL's GCP
    # transformer is a least-squares fit (within a pixel here), so take GCPs at least 3
    # pixels from every window edge (the windows start every 50 pixels).
    inner = [
        g
        for g in gcps
        if 3 <= g.row % 50 <= 47 and 3 <= g.col % 50 <= 47 and g.row < 750 and g.col < 1200
    ]
    assert len(inner) >= 12
    for g in inner:
        kept = set(np.flatnonzero(aoi_mask(index, dot(g.x, g.y))).tolist())
        assert kept == chips_holding(index, g.row, g.col), g


def test_geojson_file_with_a_legacy_crs_member():
    # The solaris building labels (EPSG:32616, declared in the file) over the header of
    # the image they were drawn on: 900 x 900 at 0.5 m.
    scene = scene_header(
        "atlanta",
        900,
        900,
        crs="EPSG:32616",
        transform=Affine(0.5, 0, 733601.0, 0, -0.5, 3725139.0),
        nodata=0.0,
    )
    index = ChipIndex.from_scenes([scene], size=100)
    labels = DATA / "solaris_labels.geojson"
    geometry, crs = read_aoi(labels)
    assert crs == "EPSG:32616" and geometry.geom_type == "MultiPolygon"
    kept = filter_aoi(index, labels)
    # Expected: chips whose box (from ChipIndex.bounds) meets a building, building by building.
    features = json.loads(labels.read_text())["features"]
    buildings = [shapely.geometry.shape(f["geometry"]) for f in features]
    b = index.bounds()
    boxes = shapely.box(b[:, 0], b[:, 1], b[:, 2], b[:, 3])
    expected = [
        cid
        for cid, box in zip(index.chip_ids, boxes, strict=True)
        if any(box.intersects(building) for building in buildings)
    ]
    assert kept.chip_ids == expected and 0 < len(expected) < len(index)
    # The same labels given in lon/lat (as a GeoJSON mapping) keep the same chips, except
    # perhaps where a building only touches a chip edge (reprojection moves it by ~1e-9).
    lonlat = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {},
                "geometry": transform_geom("EPSG:32616", "EPSG:4326", f["geometry"]),
            }
            for f in features
        ],
    }
    again = filter_aoi(index, lonlat)
    assert len(set(again.chip_ids) ^ set(expected)) <= 2


def test_an_aoi_in_any_vector_format_selects_the_same_chips(dateline, tmp_path):
    geopandas = pytest.importorskip("geopandas")
    lonlat = shapely.box(178.5, 51.2, 179.6, 51.8)  # on the scene, west of the antimeridian
    expected = filter_aoi(dateline, lonlat).chip_ids
    assert 0 < len(expected) < len(dateline)
    frame = geopandas.GeoDataFrame({"name": ["a", "b"]}, geometry=[lonlat, None], crs="EPSG:4326")
    frame.to_file(tmp_path / "aoi.gpkg", driver="GPKG")
    frame.to_parquet(tmp_path / "aoi.parquet")
    with_null = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": {}, "geometry": shapely.geometry.mapping(lonlat)},
            {"type": "Feature", "properties": {}, "geometry": None},
        ],
    }
    for aoi in (frame, tmp_path / "aoi.gpkg", tmp_path / "aoi.parquet", with_null):
        assert filter_aoi(dateline, aoi).chip_ids == expected, type(aoi)


@pytest.mark.parametrize(
    "aoi, match",
    [
        ({"type": "Polygon"}, "not GeoJSON"),
        ({"type": "FeatureCollection", "features": []}, "holds no geometry"),
        (42, "shapely geometries"),
        ("/nowhere/aoi.geojson", "cannot read '/nowhere/aoi.geojson'"),
        (shapely.Polygon(), "empty"),
    ],
)
def test_bad_aois_are_refused(dateline, aoi, match):
    with pytest.raises(InvalidParameterError, match=match):
        filter_aoi(dateline, aoi)


def test_scenes_without_crs_and_bad_predicates_are_refused(make_scene, dateline):
    index = ChipIndex.build([make_scene(crs=None)], size=10)
    with pytest.raises(InvalidParameterError, match="no CRS"):
        filter_aoi(index, shapely.box(0, 0, 1, 1))
    with pytest.raises(InvalidParameterError, match="predicate"):
        filter_aoi(dateline, shapely.box(0, 0, 1, 1), predicate="touches")


# -- valid fractions ------------------------------------------------------------------------


def full_resolution_fractions(index, href, level=None):
    """Truth: valid fraction of each chip from a read of the index's whole grid (test only)."""
    with rasterio.open(href, overview_level=level) as src:
        data = src.read()
        nodata = src.nodata
    valid = ~(data == nodata).all(axis=0)
    return np.array(
        [
            valid[w.row_off : w.row_off + w.height, w.col_off : w.col_off + w.width].mean()
            for _, _, w in index
        ]
    )


TOLERANCE_MAX = 0.05
"""Largest error allowed on one chip (window edges rounded to the coarse grid)."""
TOLERANCE_MEAN = 0.01
"""Mean absolute error allowed over the chips of a scene."""


@pytest.mark.parametrize(
    "href, size, level, overview",
    [
        (str(sample_path("RGB.byte.tif")), 128, None, None),  # 33 % border, no overviews
        (str(DATA / "cog_nodata.tif"), 256, None, 2),  # 48 % border, from overview 1/8
        (str(DATA / "cog_nodata.tif"), 512, None, 2),
        (str(DATA / "cog_nodata.tif"), 128, 0, 2),  # an index on overview 0, mask from 1/8
        (str(DATA / "mosaic_cog1_ov0.tif"), 64, None, None),  # 3 bands, no overview deep enough
    ],
)
def test_valid_fractions_match_full_resolution_counts(href, size, level, overview, monkeypatch):
    index = ChipIndex.build([href], size=size, stride=size // 2, overview_level=level)
    opened = []
    real_open = rasterio.open

    def spy(path, *args, **kwargs):
        opened.append(kwargs.get("overview_level"))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(rasterio, "open", spy)
    estimated = estimate_valid(index).column("valid_fraction")
    monkeypatch.undo()
    assert overview is None or overview in opened
    truth = full_resolution_fractions(index, href, level)
    error = np.abs(estimated - truth)
    assert error.max() <= TOLERANCE_MAX and error.mean() <= TOLERANCE_MEAN, (
        error.max(),
        error.mean(),
    )
    assert truth.min() < 0.5 < truth.max()  # the scenes do have nodata chips


def test_estimates_never_read_full_resolution(monkeypatch):
    index = ChipIndex.build([str(DATA / "cog_nodata.tif")], size=256, stride=128)
    shapes = []
    real_read = rasterio.io.DatasetReader.read

    def spy(self, *args, **kwargs):
        out = real_read(self, *args, **kwargs)
        shapes.append(out.shape)
        return out

    monkeypatch.setattr(rasterio.io.DatasetReader, "read", spy)
    estimate_valid(index)
    assert shapes and all(s[-2] * s[-1] <= (2667 // 8 + 1) * (2658 // 8 + 1) for s in shapes)


def test_min_valid_filters_and_scenes_without_nodata_need_no_read(monkeypatch, make_scene):
    index = ChipIndex.build([str(sample_path("RGB.byte.tif"))], size=128, stride=128)
    kept = estimate_valid(index, min_valid=0.5)
    assert 0 < len(kept) < len(index)
    assert (kept.column("valid_fraction") >= 0.5).all()
    # A scene without nodata: every pixel is valid, nothing is opened; pad windows count
    # their outside part as invalid.
    plain = ChipIndex.build([make_scene(height=40, width=50)], size=32, edge="pad")
    monkeypatch.setattr(rasterio, "open", lambda *a, **k: pytest.fail("opened a file"))
    fractions = estimate_valid(plain).column("valid_fraction")
    assert fractions.tolist() == pytest.approx([1.0, 18 / 32, 8 / 32, 8 * 18 / 32**2])


def test_bad_valid_arguments_are_refused(dateline):
    with pytest.raises(InvalidParameterError, match="min_valid"):
        estimate_valid(dateline, min_valid=2)
    with pytest.raises(InvalidParameterError, match="samples"):
        estimate_valid(dateline, samples=0)


def test_exports():
    assert geochips.filter_aoi is filter_aoi and geochips.estimate_valid is estimate_valid


# -- properties -----------------------------------------------------------------------------

FRACTION = st.floats(0.0, 1.0)


@pytest.fixture(scope="module")
def mosaic():
    return ChipIndex.build([str(DATA / "mosaic_cog1_ov0.tif")], size=48, stride=32)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(x0=FRACTION, x1=FRACTION, y0=FRACTION, y1=FRACTION)
def test_property_boxes_in_the_scene_crs_keep_exactly_the_chips_they_meet(mosaic, x0, x1, y0, y1):
    b = mosaic.bounds()
    left, bottom, right, top = b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()
    xs = sorted([left + x0 * (right - left), left + x1 * (right - left)])
    ys = sorted([bottom + y0 * (top - bottom), bottom + y1 * (top - bottom)])
    aoi = shapely.box(xs[0], ys[0], xs[1] + 1.0, ys[1] + 1.0)
    meets = (
        (b[:, 0] <= xs[1] + 1) & (b[:, 2] >= xs[0]) & (b[:, 1] <= ys[1] + 1) & (b[:, 3] >= ys[0])
    )
    inside = (
        (b[:, 0] >= xs[0]) & (b[:, 2] <= xs[1] + 1) & (b[:, 1] >= ys[0]) & (b[:, 3] <= ys[1] + 1)
    )
    assert np.array_equal(aoi_mask(mosaic, aoi, crs="EPSG:32618"), meets)
    within = aoi_mask(mosaic, aoi, crs="EPSG:32618", predicate="within")
    assert np.array_equal(within, inside)
    # The same box given in lon/lat (densified, so its edges stay straight in UTM) keeps
    # the same chips except where an edge runs within a few metres of a chip edge.
    lonlat = transform_geom(
        "EPSG:32618", "EPSG:4326", shapely.segmentize(aoi, 500).__geo_interface__
    )
    again = aoi_mask(mosaic, lonlat)
    near_edge = (
        (np.abs(b[:, 0] - (xs[1] + 1)) < 5)
        | (np.abs(b[:, 2] - xs[0]) < 5)
        | (np.abs(b[:, 1] - (ys[1] + 1)) < 5)
        | (np.abs(b[:, 3] - ys[0]) < 5)
    )
    assert np.array_equal(again[~near_edge], meets[~near_edge])
