"""Saved footprints: WKB written with NumPy is shapely's, and its points are each chip's own.

Footprints are written without shapely objects (quads from their corners, densified rings
from their points) and computed for many scenes at once (one lattice of distinct points a
CRS): the bytes must be those shapely writes, and every vertex must be the one a chip gets
alone, reprojected point by point.
"""

import numpy as np
import pyarrow.parquet as pq
import pytest
import shapely
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from support.scenes import scene_header

import geochips.io.index_save
from geochips import ChipIndex
from geochips.coordinates import (
    LONLAT,
    pixel_to_scene_crs,
    reproject_points,
    unwrap_longitudes,
    window_rings,
)
from geochips.footprints import DENSIFY
from geochips.io.index_rows import polygon_wkb, ring_bounds

COORD = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


def utm(name, zone, x0, y0, size=4096, pixel=10.0, north=True):
    crs = f"EPSG:{(32600 if north else 32700) + zone}"
    transform = Affine(pixel, 0, x0, 0, -pixel, y0)
    return scene_header(name, size, size, crs=crs, transform=transform)


@pytest.fixture(scope="module")
def scenes():
    """Scenes in several CRSs, interleaved; one across the antimeridian, one far north,
    one without CRS, one rotated and one in lon/lat."""
    return [
        utm("a31", 31, 254_000, 7_000_000),
        utm("a32", 32, 295_000, 6_959_000),
        utm("dateline", 60, 690_000, 5_800_000, size=2000),
        utm("a31b", 31, 336_000, 6_918_000),
        utm("arctic", 33, 400_000, 9_300_000, size=3000, pixel=30.0),
        utm("south", 50, 300_000, 7_000_000, size=1500, pixel=20.0, north=False),
        scene_header("nocrs", 300, 300, transform=Affine(1, 0, 0, 0, -1, 0)),
        scene_header(
            "rotated", 1000, 1000, crs="EPSG:32631", transform=Affine(7, 3, 5e5, 2.5, -7.5, 5.5e6)
        ),
        scene_header(
            "lonlat", 900, 1000, crs="EPSG:4326", transform=Affine(0.001, 0, 10, 0, -0.001, 50)
        ),
    ]


def own_rings(index, position):
    """The chip's outline alone (no lattice, no other chip), ``DENSIFY`` points a side, in
    lon/lat (unwrapped), reprojected point by point: every vertex its footprint may have."""
    scene = index.scene_of(position)
    window = index[position].window
    cols, rows = window_rings(
        *(np.array([v]) for v in (window.row_off, window.col_off, window.height, window.width)),
        DENSIFY,
    )
    xs, ys = pixel_to_scene_crs(scene, cols, rows)
    if scene.crs == LONLAT:  # the scene's own frame: no reprojection, no unwrap
        return np.stack([xs[0], ys[0]], axis=-1)
    lons, lats = reproject_points(scene.crs, LONLAT, xs, ys)
    return np.stack([unwrap_longitudes(lons)[0], lats[0]], axis=-1)


def saved(index, path):
    index.save(path)
    table = pq.read_table(path)
    return table.column("geometry").to_pylist(), table.column("bbox").to_pylist()


@given(
    rings=st.integers(1, 5).flatmap(
        lambda n: st.lists(
            st.lists(st.tuples(COORD, COORD), min_size=4, max_size=4), min_size=n, max_size=n
        )
    )
)
def test_polygon_wkb_is_what_shapely_writes_in_the_same_order(rings):
    rings = np.array(rings, dtype=np.float64)
    polygons = shapely.polygons(np.concatenate([rings, rings[:, :1]], axis=1))
    expected = shapely.to_wkb(polygons, output_dimension=2)
    assert [bytes(row) for row in polygon_wkb([rings])] == list(expected)
    order = np.arange(len(rings))[::-1].copy()
    assert [bytes(row) for row in polygon_wkb([rings[:2], rings[2:]], order=order)] == list(
        expected[::-1]
    )
    assert np.array_equal(ring_bounds(rings), shapely.bounds(polygons))


def test_dense_ring_wkb_keeps_orientation_and_the_closing_point():
    rng = np.random.default_rng(0)
    rings = rng.uniform(-180, 180, (7, 4 * DENSIFY, 2))
    wkb = polygon_wkb([rings])
    assert wkb.shape == (7, 13 + 16 * (4 * DENSIFY + 1))
    back = shapely.from_wkb([bytes(row) for row in wkb])
    for ring, polygon in zip(rings, back, strict=True):
        coords = np.asarray(polygon.exterior.coords)
        assert np.array_equal(coords[:-1], ring) and np.array_equal(coords[-1], ring[0])
    polygons = shapely.polygons(np.concatenate([rings, rings[:, :1]], axis=1))
    assert [bytes(row) for row in wkb] == list(shapely.to_wkb(polygons, output_dimension=2))


@pytest.mark.parametrize(
    "size, stride, edge, keep",
    [
        (256, 128, "drop", None),  # a full grid: the lattice
        (256, 128, "drop", 0.05),  # a sparse selection
        ((250, 180), (100, 90), "shift", None),  # sides not a whole multiple of the points
        ((37, 53), (31, 41), "pad", 0.3),
    ],
)
def test_saved_footprints_are_shapely_bytes_of_each_chips_own_points(
    scenes, tmp_path, size, stride, edge, keep
):
    index = ChipIndex.from_scenes(scenes, size=size, stride=stride, edge=edge)
    if keep is not None:
        rng = np.random.default_rng(1)
        index = index[np.sort(rng.choice(len(index), int(keep * len(index)), replace=False))]
    geometry, bbox = saved(index, tmp_path / "chips.parquet")
    footprints = index.footprints(LONLAT)
    assert geometry == list(shapely.to_wkb(footprints, output_dimension=2))
    known = ~shapely.is_missing(footprints)
    boxes = np.array(
        [[bbox[i][k] for k in ("xmin", "ymin", "xmax", "ymax")] for i in np.flatnonzero(known)]
    )
    assert np.array_equal(boxes, shapely.bounds(footprints[known]))
    kinds = set()
    for position in np.flatnonzero(known)[:: max(1, int(known.sum()) // 400)]:
        polygon = footprints[position]
        if polygon.geom_type != "Polygon":
            kinds.add("cut")
            continue
        vertices = np.asarray(polygon.exterior.coords)[:-1]
        own = own_rings(index, position)
        if len(vertices) == 4:
            kinds.add("quad")
            assert np.array_equal(vertices, own[::DENSIFY]), index.chip_id(position)
        else:
            kinds.add("ring")
            assert np.array_equal(vertices, own), index.chip_id(position)
    assert "quad" in kinds and ("ring" in kinds) == (np.max(size) > 100)  # small chips: quads


def test_rings_and_quads_of_several_crss_are_in_row_order(scenes, tmp_path):
    """Scenes of a CRS are reprojected together: rows still come back in index order."""
    index = ChipIndex.from_scenes([scenes[i] for i in (0, 1, 3, 1, 0)], size=256, stride=256)
    index = index[np.random.default_rng(2).permutation(len(index))]
    geometry, _ = saved(index, tmp_path / "chips.parquet")
    assert geometry == list(shapely.to_wkb(index.footprints(LONLAT), output_dimension=2))


@settings(max_examples=15, deadline=None)
@given(fail_at=st.integers(0, 5), where=st.sampled_from(["footprints", "write"]))
def test_a_save_that_fails_in_any_row_group_leaves_the_older_index(
    tmp_path_factory, monkeypatch_module, fail_at, where
):
    folder = tmp_path_factory.mktemp("fail")
    old = ChipIndex.from_scenes([scene_header("old", 64, 64)], size=32)
    new = ChipIndex.from_scenes([scene_header("new", 64, 64)], size=8)  # 64 rows
    path = folder / "chips.parquet"
    old.save(path)
    calls = []

    def failing(original):
        def call(*args, **kwargs):
            calls.append(1)
            if len(calls) == fail_at + 1:
                raise OSError("disk full")
            return original(*args, **kwargs)

        return call

    module = geochips.io.index_save
    with monkeypatch_module.context() as patch:
        patch.setattr(module, "ROW_GROUP", 10)  # 7 row groups
        if where == "footprints":  # in the main thread
            patch.setattr(module.RowGroups, "footprints", failing(module.RowGroups.footprints))
        else:  # in the thread that makes tables and writes them
            patch.setattr(module._Part, "write", failing(module._Part.write))
        with pytest.raises(OSError, match="disk full"):
            new.save(path)
    assert ChipIndex.load(path).chip_ids == old.chip_ids
    assert sorted(p.name for p in folder.iterdir()) == ["chips.parquet"]


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch
