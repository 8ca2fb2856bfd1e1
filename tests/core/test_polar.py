"""Footprints of chips at the poles and across the antimeridian, in polar stereographic scenes.

Each footprint is checked against the chip itself: points sampled densely on the window's
edges and inside it, in pixel space, and taken to lon/lat by rasterio (PROJ), must lie in
the footprint; points just outside the window must not (where the footprint is exact).
"""

import sys

import numpy as np
import pytest
import shapely
from affine import Affine
from rasterio.warp import transform as warp_transform

from geochips import ChipIndex, check_leakage, spatial_split
from geochips.testing import write_scene

# Small test scenes have small tiles, so most grids here straddle them on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::geochips.errors.TileAlignmentWarning")


KM10 = 10_000.0
TOLERANCE = 50.0
"""Metres (0.005 pixel): footprints are polygons through densified edges, in lon/lat."""
EARTH = 6_371_000.0


def distances(footprint, points):
    """Ground distance (m, spherical) from points to a footprint; lon 180 is lon -180."""
    coords = shapely.get_coordinates(points)
    flipped = coords.copy()
    flipped[np.abs(coords[:, 0]) == 180, 0] *= -1
    best = np.full(len(coords), np.inf)
    for candidate in (coords, flipped):
        near = shapely.get_coordinates(shapely.shortest_line(shapely.points(candidate), footprint))
        a, b = np.radians(near[0::2]), np.radians(near[1::2])
        h = (
            np.sin((b[:, 1] - a[:, 1]) / 2) ** 2
            + np.cos(a[:, 1]) * np.cos(b[:, 1]) * np.sin((b[:, 0] - a[:, 0]) / 2) ** 2
        )
        best = np.minimum(best, 2 * EARTH * np.arcsin(np.sqrt(np.clip(h, 0, 1))))
    return best


def polar_scene(folder, name, crs, size, origin=None):
    """A ``size`` x ``size`` scene of 10 km pixels, centred on the pole unless ``origin``."""
    x0, y0 = origin if origin is not None else (-size / 2 * KM10, size / 2 * KM10)
    return write_scene(
        folder / f"{name}.tif",
        height=size,
        width=size,
        count=1,
        crs=crs,
        transform=Affine(KM10, 0, x0, 0, -KM10, y0),
    )


@pytest.fixture(scope="module")
def south(tmp_path_factory):
    """EPSG:3031, 60x60 px around the south pole; 20 px chips every 10 px put the pole
    inside one chip, on a corner of four and mid-edge of four."""
    folder = tmp_path_factory.mktemp("south")
    scene = polar_scene(folder, "south", "EPSG:3031", 60)
    return ChipIndex.build([scene], size=20, stride=10, sign=None)


@pytest.fixture(scope="module")
def north(tmp_path_factory):
    """EPSG:3413, 64x64 px around the north pole, 32 px chips: each has a corner on it."""
    folder = tmp_path_factory.mktemp("north")
    return ChipIndex.build([polar_scene(folder, "north", "EPSG:3413", 64)], size=32, sign=None)


@pytest.fixture(scope="module")
def dateline(tmp_path_factory):
    """EPSG:3031 at 1500-2000 km from the pole, across 180 degrees east (down in 3031)."""
    folder = tmp_path_factory.mktemp("dateline")
    scene = polar_scene(folder, "dateline", "EPSG:3031", 50, origin=(-250 * KM10 / 10, -150e4))
    return ChipIndex.build([scene], size=16, stride=16, sign=None)


def chip_points(index, position, inset=0.0, per_side=200):
    """Lon/lat of points on the outline (moved ``inset`` pixels outward) and inside a chip."""
    scene, window = index.locate(position)
    transform = index.scenes[scene].transform
    r0, c0 = window.row_off - inset, window.col_off - inset
    h, w = window.height + 2 * inset, window.width + 2 * inset
    t = np.linspace(0, 1, per_side)
    cols = np.concatenate(
        [c0 + w * t, np.full(per_side, c0 + w), c0 + w * t, np.full(per_side, c0)]
    )
    rows = np.concatenate(
        [np.full(per_side, r0), r0 + h * t, np.full(per_side, r0 + h), r0 + h * t]
    )
    if inset == 0:
        gc, gr = np.meshgrid(np.linspace(c0, c0 + w, 21), np.linspace(r0, r0 + h, 21))
        cols, rows = np.concatenate([cols, gc.ravel()]), np.concatenate([rows, gr.ravel()])
    xs, ys = transform @ (cols, rows)
    lons, lats = warp_transform(index.scenes[scene].crs, "EPSG:4326", xs, ys)
    return shapely.points(np.array(lons), np.array(lats))


def pole_chips(index):
    """Positions of chips whose window holds the pole, and whether it is strictly inside."""
    out = {}
    for position in range(len(index)):
        scene, window = index.locate(position)
        col, row = (~index.scenes[scene].transform) @ (0.0, 0.0)
        c, r = col - window.col_off, row - window.row_off
        if 0 <= c <= window.width and 0 <= r <= window.height:
            out[position] = 0 < c < window.width and 0 < r < window.height
    return out


@pytest.mark.parametrize("name", ["south", "north", "dateline"])
def test_lonlat_footprints_are_valid_and_cover_their_chips(name, request):
    index = request.getfixturevalue(name)
    footprints = index.footprints("EPSG:4326")
    assert all(shapely.is_valid(footprints)), shapely.is_valid_reason(footprints)
    bounds = shapely.bounds(footprints)
    assert bounds[:, 0].min() >= -180 and bounds[:, 2].max() <= 180
    assert bounds[:, 1].min() >= -90 and bounds[:, 3].max() <= 90
    for position, footprint in enumerate(footprints):
        gap = distances(footprint, chip_points(index, position))
        assert gap.max() < TOLERANCE, (index.chip_id(position), gap.max())


def test_the_grids_hold_the_cases_they_are_meant_to(south, north, dateline):
    assert sorted(pole_chips(south).values()) == [False] * 8 + [True]  # 4 corners, 4 mid-edges
    assert sorted(pole_chips(north).values()) == [False] * 4
    assert pole_chips(dateline) == {}
    lons = shapely.get_coordinates(dateline.footprints("EPSG:4326"))[:, 0]
    assert lons.min() == -180 and lons.max() == 180
    parts = [g for g in dateline.footprints("EPSG:4326") if g.geom_type == "MultiPolygon"]
    assert parts and all(len(g.geoms) == 2 for g in parts)


@pytest.mark.parametrize("name", ["south", "north"])
def test_pole_chips_have_an_edge_along_the_pole(name, request):
    index = request.getfixturevalue(name)
    footprints = index.footprints("EPSG:4326")
    pole = -90.0 if name == "south" else 90.0
    for position, inside in pole_chips(index).items():
        footprint = footprints[position]
        edge = shapely.intersection(
            footprint.boundary, shapely.box(-180, pole - 1e-9, 180, pole + 1e-9)
        )
        length = shapely.length(edge)
        # Enclosed: the whole line of the pole; on a corner 90 degrees of it; mid-edge 180.
        expected = 360.0 if inside else 90.0 if _corner(index, position) else 180.0
        assert length == pytest.approx(expected, abs=0.5), (index.chip_id(position), length)
        if inside:
            assert footprint.covers(shapely.LineString([(-180, pole), (180, pole)]))


def _corner(index, position):
    scene, window = index.locate(position)
    col, row = (~index.scenes[scene].transform) @ (0.0, 0.0)
    return col in (window.col_off, window.col_off + window.width) and row in (
        window.row_off,
        window.row_off + window.height,
    )


@pytest.mark.parametrize("name", ["south", "north", "dateline"])
def test_footprints_are_tight(name, request):
    # Points half a pixel outside a window lie outside its footprint: no coarse caps.
    index = request.getfixturevalue(name)
    footprints = index.footprints("EPSG:4326")
    for position, footprint in enumerate(footprints):
        outside = chip_points(index, position, inset=0.5, per_side=50)
        assert not shapely.intersects(footprint, outside).any(), index.chip_id(position)


def test_without_antimeridian_an_enclosed_pole_gets_a_valid_covering_cap(south, monkeypatch):
    monkeypatch.setitem(sys.modules, "antimeridian", None)
    (position,) = [p for p, inside in pole_chips(south).items() if inside]
    footprint = south.footprints("EPSG:4326")[position]
    assert shapely.is_valid(footprint) and footprint.geom_type == "Polygon"
    assert shapely.bounds(footprint).tolist()[:3] == [-180.0, -90.0, 180.0]
    assert distances(footprint, chip_points(south, position)).max() < TOLERANCE


@pytest.mark.parametrize("name", ["south", "north", "dateline"])
def test_polar_indexes_save_load_split_and_check(name, request, tmp_path):
    index = request.getfixturevalue(name)
    index.save(tmp_path / "polar.parquet")
    back = ChipIndex.load(tmp_path / "polar.parquet", sign=None)
    assert back.chip_ids == index.chip_ids and back.scenes == index.scenes
    assert all(shapely.is_valid(back.footprints("EPSG:6933")))
    splits = spatial_split(back, {"train": 0.5, "test": 0.5}, seed=0)
    check_leakage(splits)
    assert sum(len(s) for s in splits.values()) <= len(index)
