"""The NumPy polygon fill against GDAL's rasterize, pixel for pixel."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio.features
import shapely
import shapely.affinity
from affine import Affine

from geochips.labels.rasterize import burn_edges, fill_polygons, polygon_edges, polygonal


def gdal(geometries, values, offset, shape):
    # A transform that is not the identity, so GDAL does not warn: the same pixels.
    burnt = rasterio.features.rasterize(
        zip(geometries, values.tolist(), strict=True),
        out_shape=(shape[0], shape[1] + 1),
        transform=Affine.translation(offset[1] - 1, offset[0]),
        dtype="int32",
    )
    return burnt[:, 1:]


def ours(geometries, values, offset, shape):
    out = np.zeros(shape, dtype=np.int64)
    fill_polygons(np.asarray(geometries, dtype=object), np.asarray(values), offset, shape, out)
    return out


def random_polygons(rng, n, extent, holes=True):
    polygons = []
    for _ in range(n):
        x, y = rng.uniform(-20, extent + 20, 2)
        k = int(rng.integers(3, 12))
        angles = np.sort(rng.uniform(0, 2 * np.pi, k))
        radii = rng.uniform(2, 40, k)
        shell = np.stack([x + radii * np.cos(angles), y + radii * np.sin(angles)], axis=-1)
        polygon = shapely.make_valid(shapely.Polygon(shell))
        if holes and rng.random() < 0.3:
            polygon = polygon.difference(shapely.Point(x, y).buffer(radii.min() / 2))
        polygon = shapely.make_valid(polygon)
        if polygon.geom_type in ("Polygon", "MultiPolygon") and not polygon.is_empty:
            polygons.append(polygon)
    return polygons


@pytest.mark.parametrize("seed", range(12))
def test_random_polygons_burn_as_gdal_burns_them(seed):
    rng = np.random.default_rng(seed)
    polygons = random_polygons(rng, 60, 128)
    values = rng.integers(1, 6, len(polygons))  # overlapping classes: the later wins
    offset = (int(rng.integers(-30, 30)), int(rng.integers(-30, 30)))
    shape = (int(rng.integers(64, 160)), int(rng.integers(64, 160)))
    expected = gdal(polygons, values, offset, shape)
    assert expected.any()
    np.testing.assert_array_equal(ours(polygons, values, offset, shape), expected)


@pytest.mark.parametrize("seed", range(4))
def test_edges_taken_once_burn_each_chip_as_gdal_burns_its_polygons(seed):
    # As labels do: a scene's edges once, then per chip only the polygons that meet it.
    rng = np.random.default_rng(100 + seed)
    polygons = np.asarray(random_polygons(rng, 400, 512), dtype=object)
    values = rng.integers(1, 6, len(polygons))
    edges, tree = polygon_edges(polygons), shapely.STRtree(polygons)
    for _ in range(6):
        offset = (int(rng.integers(-40, 480)), int(rng.integers(-40, 480)))
        shape = (int(rng.integers(16, 160)), int(rng.integers(16, 160)))
        box = shapely.box(offset[1], offset[0], offset[1] + shape[1], offset[0] + shape[0])
        hits = np.sort(tree.query(box))
        out = burn_edges(edges, hits, values[hits], offset, shape)
        np.testing.assert_array_equal(out, gdal(polygons[hits], values[hits], offset, shape))


def test_multipolygons_holes_and_one_class():
    rng = np.random.default_rng(99)
    parts = random_polygons(rng, 40, 100)
    multi = [shapely.MultiPolygon([p for p in parts[i : i + 3] if p.geom_type == "Polygon"])
             for i in range(0, 30, 3)]  # fmt: skip
    multi = [shapely.make_valid(m) for m in multi if not m.is_empty]
    values = np.ones(len(multi), dtype=np.int64)
    np.testing.assert_array_equal(
        ours(multi, values, (0, 0), (100, 100)), gdal(multi, values, (0, 0), (100, 100))
    )


def test_pixel_aligned_rectangles_fill_exactly_their_pixels():
    boxes = [shapely.box(2, 3, 10, 7), shapely.box(5, 5, 6, 6), shapely.box(0, 0, 1, 40)]
    got = ours(boxes, np.array([1, 2, 3]), (0, 0), (40, 40))
    expected = np.zeros((40, 40), np.int64)
    expected[3:7, 2:10] = 1
    expected[5, 5] = 2
    expected[:, 0] = 3
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(got, gdal(boxes, np.array([1, 2, 3]), (0, 0), (40, 40)))


def test_only_polygons_take_the_fast_path():
    assert polygonal(
        np.array([shapely.box(0, 0, 1, 1), shapely.MultiPolygon([shapely.box(0, 0, 1, 1)])])
    )
    assert not polygonal(np.array([shapely.box(0, 0, 1, 1), shapely.LineString([(0, 0), (1, 1)])]))


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("radius", [6, 60], ids=["few-pixels", "most-of-the-chip"])
def test_one_class_burns_as_gdal_sparse_or_dense(seed, radius):
    # A few pixels are set one by one; most of a chip is burnt as runs of the union.
    rng = np.random.default_rng(200 + seed)
    polygons = [
        shapely.affinity.scale(p, radius / 40, radius / 40)
        for p in random_polygons(rng, 30 if radius > 10 else 120, 128)
    ]
    values = np.full(len(polygons), 7, dtype=np.uint8)
    offset, shape = (int(rng.integers(-20, 20)), int(rng.integers(-20, 20))), (131, 97)
    expected = gdal(polygons, values, offset, shape)
    share = (expected > 0).mean()
    assert (share < 1 / 8) if radius < 10 else (share > 1 / 4)
    np.testing.assert_array_equal(ours(polygons, values, offset, shape), expected)
