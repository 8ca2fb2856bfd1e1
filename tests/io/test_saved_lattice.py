"""Saved footprints of whole grids: lattice points through PROJ once a CRS.

A grid's chips share their ring points: a save transforms each distinct point of a CRS
once. Every vertex written must be the one the chip gets alone, each of its points through
GDAL, with the same vertices and parts, for scenes across the antimeridian and GCP scenes.
"""

import numpy as np
import pyarrow.parquet as pq
import pytest
import shapely
from affine import Affine
from rasterio.control import GroundControlPoint

from geochips import ChipIndex
from geochips.coordinates import (
    LONLAT,
    pixel_to_scene_crs,
    reproject_points,
    unwrap_longitudes,
    window_rings,
)
from geochips.footprint_rings import within_half_turn
from geochips.footprints import DENSIFY


def own_rings(index, position):
    """The chip's outline alone, ``DENSIFY`` points a side, each through GDAL (unwrapped)."""
    scene = index.scene_of(position)
    window = index[position].window
    cols, rows = window_rings(
        *(np.array([v]) for v in (window.row_off, window.col_off, window.height, window.width)),
        DENSIFY,
    )
    xs, ys = pixel_to_scene_crs(scene, cols, rows)
    if scene.crs == LONLAT:
        return np.stack([xs[0], ys[0]], axis=-1)
    lons, lats = reproject_points(scene.crs, LONLAT, xs, ys)
    return np.stack([unwrap_longitudes(lons)[0], lats[0]], axis=-1)


@pytest.fixture
def scenes(make_scene):
    """Real COGs: UTM 60 across the antimeridian, UTM 32 (curved rings), two GCP scenes
    (one across the antimeridian)."""

    def gcps(lon, lat, size):
        corners = ((0, 0, 0, 0), (0, size, 1.1, 0.1), (size, 0, -0.1, -1), (size, size, 1, -0.9))
        return [
            GroundControlPoint(row=r, col=c, x=lon + dx, y=lat + dy) for r, c, dx, dy in corners
        ]

    common = {"count": 1, "layout": "cog", "blocksize": 256}
    return [
        make_scene(
            "dateline.tif", height=1024, width=1024, crs="EPSG:32660",
            transform=Affine(60.0, 0, 640_000.0, 0, -60.0, 6_700_000.0), **common,
        ),
        make_scene(
            "utm32.tif", height=1024, width=1024, crs="EPSG:32632",
            transform=Affine(40.0, 0, 300_000.0, 0, -40.0, 6_900_000.0), **common,
        ),
        make_scene("gcps_dateline.tif", height=512, width=512, gcps=gcps(179.5, 60, 512), **common),
        make_scene("gcps.tif", height=512, width=512, gcps=gcps(10.0, 50, 512), **common),
    ]  # fmt: skip


@pytest.mark.parametrize("stride", [128, 256, 64])
def test_saved_lattice_footprints_are_each_chips_own_points(scenes, tmp_path, stride):
    index = ChipIndex.build(scenes, size=256, stride=stride)
    path = tmp_path / "chips.parquet"
    index.save(path)
    saved = shapely.from_wkb(pq.read_table(path).column("geometry").to_numpy(zero_copy_only=False))
    assert list(shapely.to_wkb(saved, output_dimension=2)) == list(
        shapely.to_wkb(index.footprints(LONLAT), output_dimension=2)
    )
    kinds = set()
    for position, polygon in enumerate(saved):
        scene = index.scene_of(position)
        if polygon.geom_type == "MultiPolygon":
            kinds.add("cut")
            continue
        vertices = np.asarray(polygon.exterior.coords)[:-1]
        own = own_rings(index, position)
        if len(vertices) == 4:
            own = own[::DENSIFY]
        kinds.add((scene.georef, len(vertices)))
        assert np.array_equal(vertices, own), index.chip_id(position)
    assert "cut" in kinds and ("transform", 4 * DENSIFY) in kinds and ("gcps", 4) in kinds


@pytest.mark.parametrize(
    "lons, calm",
    [
        ([10.0, 20.0, -150.0], True),
        ([-170.0, 10.0], False),  # spans more than 179 degrees
        ([179.9995, 170.0], False),  # too close to the antimeridian
        ([np.nan, 10.0], False),
        ([], False),
    ],
)
def test_within_half_turn(lons, calm):
    assert within_half_turn(np.array(lons, dtype=np.float64)) is calm
