"""Chip footprints in every frame, checked against what the real scenes must give."""

import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from rasterio.errors import NotGeoreferencedWarning

from geochips import ChipIndex
from geochips.footprints import cut_antimeridian, unwrap_longitudes
from geochips.sample_data import path as sample_path

# Small test scenes have small tiles, so most grids here straddle them on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::geochips.errors.TileAlignmentWarning")


DATA = Path(__file__).parents[1] / "data"


@pytest.fixture(scope="module")
def index():
    sources = [
        str(DATA / "mosaic_cog1_ov0.tif"),  # EPSG:32618
        str(DATA / "cog_dateline.tif"),  # EPSG:32660, across the antimeridian
        str(DATA / "cog_nodata.tif"),  # EPSG:32621, 74 degrees north
        str(sample_path("cog_gcps.tif")),  # GCPs only
    ]
    return ChipIndex.build(sources, size=256, stride=128)


def test_scene_frame_matches_the_window_bounds(index):
    projected = np.isin(index.column("scene"), [0, 1, 2])
    footprints = index.footprints()
    assert np.array_equal(shapely.bounds(footprints[projected]), index.bounds()[projected])
    assert all(
        g.geom_type == "Polygon" and len(g.exterior.coords) == 5 for g in footprints[projected]
    )


def test_equal_area_footprints_keep_the_ground_area(index):
    # UTM scale error within a few degrees of the central meridian is below 0.5 %; the
    # equal-area frame must give each chip its ground area, wherever it is.
    projected = np.flatnonzero(np.isin(index.column("scene"), [0, 1, 2]))
    areas = shapely.area(index.footprints("EPSG:6933")[projected])
    pixel = np.array([abs(s.transform.a * s.transform.e) for s in index.scenes])
    expected = pixel[index.column("scene")[projected]] * 256 * 256
    assert np.allclose(areas, expected, rtol=0.005)


def test_lonlat_footprints_are_cut_at_the_antimeridian(index):
    lonlat = index.footprints("EPSG:4326")
    dateline = lonlat[index.column("scene") == 1]
    crossing = [g for g in dateline if g.geom_type == "MultiPolygon"]
    assert 0 < len(crossing) < len(dateline)
    for g in crossing:
        negative, positive = sorted(g.geoms, key=lambda p: p.bounds[0])
        assert negative.bounds[0] == -180.0 and positive.bounds[2] == 180.0
    bounds = shapely.bounds(dateline)
    assert bounds[:, 0].min() >= -180 and bounds[:, 2].max() <= 180
    # A small chip never spans the globe: each part is under two degrees wide.
    parts = shapely.get_parts(dateline)
    widths = shapely.bounds(parts)[:, 2] - shapely.bounds(parts)[:, 0]
    assert widths.max() < 2


def test_gcp_scene_footprints_go_through_the_gcps(index):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(sample_path("cog_gcps.tif")) as src:
            corner = next(g for g in src.gcps[0] if g.row == 0 and g.col == 0)
    first = int(np.flatnonzero(index.column("scene") == 3)[0])
    assert index.chip_id(first).endswith("/0/0/256x256")
    polygon = index.footprints()[first]
    x, y = polygon.exterior.coords[0]
    # Within a pixel (~0.002 degrees) of the file's own GCP at pixel (0, 0).
    assert abs(x - corner.x) < 0.002 and abs(y - corner.y) < 0.002
    # GCP edges curve: densified (33 points) unless within 0.01 pixel of straight (5).
    assert len(polygon.exterior.coords) in (5, 4 * 8 + 1)


def test_pixel_frame_and_scenes_without_crs(make_scene):
    index = ChipIndex.build([make_scene(crs=None)], size=10, stride=5)
    boxes = index.footprints("pixel")
    assert shapely.bounds(boxes[3]).tolist() == [15.0, 0.0, 25.0, 10.0]
    assert all(g is None for g in index.footprints("EPSG:4326"))


def test_cut_antimeridian_keeps_area_and_unwrap_keeps_rings_whole():
    lons = np.array([[179.0, -179.0, -179.0, 179.0], [10.0, 11.0, 11.0, 10.0]])
    unwrapped = unwrap_longitudes(lons)
    assert unwrapped[0].tolist() == [179.0, 181.0, 181.0, 179.0]
    assert unwrapped[1].tolist() == lons[1].tolist()
    lats = np.array([[0.0, 0.0, 1.0, 1.0]] * 2)
    polys = shapely.polygons(np.stack([unwrapped, lats], axis=-1))
    cut = cut_antimeridian(polys)
    assert cut[0].geom_type == "MultiPolygon" and cut[0].area == pytest.approx(2.0)
    assert cut[1].equals(polys[1])
