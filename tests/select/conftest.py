"""Fixtures shared by the select tests."""

from pathlib import Path

import pytest

from geochips import ChipIndex
from geochips.sample_data import path as sample_path

DATA = Path(__file__).parents[1] / "data"


@pytest.fixture(scope="session")
def real_index():
    """Overlapping chips (stride < size) over real scenes: overlapping neighbours in one
    CRS, a scene in another UTM zone, a GCP-only swath, the antimeridian scene, and a
    rotated Landsat scene."""
    sources = [
        DATA / "mosaic_cog1_ov0.tif",
        DATA / "mosaic_cog2_ov0.tif",
        sample_path("scene_band1.tif"),
        sample_path("cog_gcps.tif"),
        DATA / "cog_dateline.tif",
        sample_path("RGB.byte.tif"),
    ]
    return ChipIndex.build([str(s) for s in sources], size=64, stride=32)
