"""The AOI placed once per CRS for many scenes agrees with each chip's own footprint.

The oracle is independent of how ``filter_aoi`` places the AOI: every chip's footprint in
longitude/latitude against the AOI in longitude/latitude. Only chips within a few metres of
the AOI's outline may go either way (the AOI is densified before it is reprojected).
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from affine import Affine
from support.scenes import scene_header

import geochips
from geochips.select.aoi import aoi_mask

MARGIN = 1e-4  # degrees, ~10 m: chips this close to the outline are not judged


def archive(zones, per_zone=40):
    """Scenes of 2048 px at 10 m, 5 x 8 tiles a zone, 18 km apart (they overlap)."""
    scenes = []
    for zone in zones:
        for k in range(per_zone):
            col, row = k % 5, k // 5
            north = zone > 0
            crs = f"EPSG:{32600 + zone if north else 32700 - zone}"
            transform = Affine(10, 0, 300_000 + col * 18_000, 0, -10,
                               (6_200_000 if north else 4_000_000) - row * 18_000)  # fmt: skip
            scenes.append(scene_header(f"z{zone}_{k}", 2048, 2048, crs=crs, transform=transform))
    return geochips.ChipIndex.from_scenes(scenes, size=256, stride=192)


def judged(index, aoi_lonlat, mask):
    chips = index.footprints("EPSG:4326")
    inside = shapely.intersects(aoi_lonlat, chips)
    near = shapely.dwithin(shapely.boundary(aoi_lonlat), chips, MARGIN)
    clear = ~near
    assert clear.mean() > 0.8 and inside[clear].any() and (~inside[clear]).any()
    np.testing.assert_array_equal(mask[clear], inside[clear])


@pytest.mark.parametrize("seed", range(3))
def test_an_irregular_aoi_over_three_zones(seed):
    index = archive([31, 32, 33])
    rng = np.random.default_rng(seed)
    angles = np.sort(rng.uniform(0, 2 * np.pi, 12))
    radii = rng.uniform(1.0, 2.5, 12)
    aoi = shapely.Polygon(
        np.stack([6 + radii * np.cos(angles), 55 + radii * np.sin(angles) / 2], 1)
    )
    judged(index, aoi, aoi_mask(index, aoi))


def test_an_aoi_across_the_antimeridian_in_zones_60_and_1():
    index = archive([60, 1])
    # Longitudes past 180, as an AOI drawn across the antimeridian may have them.
    aoi = shapely.box(174.5, 54.8, 181.0, 55.6)
    mask = aoi_mask(index, aoi)
    cut = shapely.MultiPolygon(
        [shapely.box(174.5, 54.8, 180, 55.6), shapely.box(-180, 54.8, -179.0, 55.6)]
    )
    judged(index, cut, mask)
    zone = np.array([s.crs for s in index.scenes])[index.column("scene")]
    assert mask[zone == "EPSG:32660"].any() and mask[zone == "EPSG:32601"].any()
