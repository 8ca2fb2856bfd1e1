"""The seed tutorial's numbers: two Sentinel-1 IW GRD-sized scenes read at overview level 3."""

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.windows import Window
from torch.utils.data import DataLoader

from geochips import ChipDataset, ChipIndex, collate

pytestmark = pytest.mark.slow


def write_grd_sized_scene(path, seed):
    """A 16,800 x 25,600 scene (like S1 IW GRD) that stays small: sparse, few blocks set."""
    rng = np.random.default_rng(seed)
    profile = dict(
        driver="GTiff",
        height=16_800,
        width=25_600,
        count=1,
        dtype="uint16",
        tiled=True,
        blockxsize=512,
        blockysize=512,
        compress="deflate",
        sparse_ok=True,
        crs="EPSG:32654",
        transform=Affine(10.0, 0.0, 300_000.0, 0.0, -10.0, 4_000_000.0),
    )
    with rasterio.open(path, "w", **profile) as dst:
        for row, col in rng.integers(0, 30, size=(12, 2)):
            block = rng.integers(1, 65_535, size=(1, 512, 512), dtype="uint16")
            dst.write(
                block, window=Window(col_off=col * 512, row_off=row * 512, width=512, height=512)
            )
        dst.build_overviews([2, 4, 8, 16], Resampling.nearest)
    return str(path)


@pytest.fixture(scope="module")
def grd_scenes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("grd")
    return {
        "osaka": write_grd_sized_scene(folder / "osaka.tif", 1),
        "tokyo": write_grd_sized_scene(folder / "tokyo.tif", 2),
    }


def test_seed_counts_shapes_and_mixed_batches(grd_scenes):
    plain = ChipIndex.build(grd_scenes, size=512, overview_level=3)
    assert [(s.height, s.width) for s in plain.scenes] == [(1050, 1600)] * 2
    assert len(plain) == 12
    assert np.bincount(plain.column("scene")).tolist() == [6, 6]

    overlapping = ChipIndex.build(grd_scenes, size=512, overlap=256, overview_level=3)
    assert len(overlapping) == 30
    assert np.bincount(overlapping.column("scene")).tolist() == [15, 15]

    loader = DataLoader(ChipDataset(overlapping), batch_size=10, collate_fn=collate)
    batches = list(loader)
    assert [tuple(b["image"].shape) for b in batches] == [(10, 1, 512, 512)] * 3
    assert sorted(set(batches[1]["scene_id"])) == ["osaka", "tokyo"]  # the second batch mixes

    with rasterio.open(grd_scenes["tokyo"], overview_level=3) as src:
        for batch in batches:
            for image, scene, window in zip(
                batch["image"], batch["scene_id"], batch["window"], strict=True
            ):
                if scene != "tokyo":
                    continue
                r, c, h, w = window
                expected = src.read(window=Window(col_off=c, row_off=r, width=w, height=h))
                np.testing.assert_array_equal(image.numpy(), expected.astype("int32"))
