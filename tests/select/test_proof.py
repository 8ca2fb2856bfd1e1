"""The leakage proof's engine against the split's: the same pairs, found two ways.

``geochips.select.proof.leaks`` (planes, cells, only chips near a split's border) and
``geochips.select.conflicts.conflicts`` (an STRtree over every footprint) implement one
rule independently; with random labels (a split that leaks everywhere) every pair of chips
of two labels in conflict must come out of both, with the same kind (overlap or buffer).
"""

from pathlib import Path

import numpy as np
import pytest
import shapely
from affine import Affine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rasterio.warp import transform as warp_transform
from support.scenes import scene_header

from geochips import ChipIndex, check_leakage
from geochips.sample_data import path as sample_path
from geochips.select.conflicts import conflicts, inner_boxes
from geochips.select.ground import chip_ground, choose_frame, pixel_sizes, window_columns
from geochips.select.proof import leaks
from geochips.sources import SceneSource

pytestmark = pytest.mark.filterwarnings("ignore::geochips.errors.TileAlignmentWarning")

DATA = Path(__file__).parents[1] / "data"


def header(id, height, width, transform, crs="EPSG:32618", georef="transform"):
    return scene_header(id, height, width, crs=crs, transform=transform, georef=georef)


def both(index: ChipIndex, labels: int, buffer: float, seed: int = 0) -> set:
    """Run both engines on random labels; return the pairs after checking they agree."""
    label = np.random.default_rng(seed).integers(0, labels, len(index))
    scenes, columns = list(index.scenes), window_columns(index)
    frame = choose_frame(scenes)
    sizes = pixel_sizes(scenes, columns["scene"], frame)
    a, b, overlap, _ = leaks(scenes, columns, label, buffer, frame, sizes)
    ground = chip_ground(scenes, columns, frame)
    i, j, flag, _ = conflicts(ground, buffer, None, label)
    mine = set(zip(a.tolist(), b.tolist(), overlap.tolist(), strict=True))
    theirs = set(zip(i.tolist(), j.tolist(), flag.tolist(), strict=True))
    assert len(mine) == len(a)  # no pair twice
    assert mine == theirs, (sorted(mine - theirs)[:5], sorted(theirs - mine)[:5])
    assert all(label[x] != label[y] for x, y, _ in mine)
    return mine


@pytest.mark.parametrize("buffer", [0.0, 200.0])
def test_real_scenes_in_several_crss_gcps_the_antimeridian_and_a_rotated_grid(real_index, buffer):
    found = both(real_index, 3, buffer)
    scene = real_index.column("scene")
    assert {scene[a] != scene[b] for a, b, _ in found} == {True, False}
    if buffer:
        assert {kind for _, _, kind in found} == {True, False}


def test_repeat_passes_of_a_gcp_swath():
    href = str(sample_path("cog_gcps.tif"))
    index = ChipIndex.build([SceneSource(f"pass{k}", (href,)) for k in (1, 2)], size=48, stride=24)
    assert both(index, 2, 0.0)


@pytest.mark.parametrize("buffer", [0.0, 500.0])
def test_two_utm_zones(buffer):
    a = header("z18", 300, 300, Affine(30, 0, 300_000, 0, -30, 4_500_000))
    xs, ys = warp_transform("EPSG:32618", "EPSG:32617", [300_000.0], [4_500_000.0])
    b = header("z17", 300, 300, Affine(30, 0, xs[0], 0, -30, ys[0]), crs="EPSG:32617")
    index = ChipIndex.from_scenes([a, b], size=40, stride=20)
    found = both(index, 2, buffer)
    assert any(index.column("scene")[x] != index.column("scene")[y] for x, y, _ in found)


def test_rotated_grids_beside_a_north_up_one():
    scenes = [
        header(f"rot{k}", 160, 160, Affine.translation(500_000 + 1500 * k, 4e6)
               @ Affine.rotation(angle) @ Affine.scale(30, -30))
        for k, angle in enumerate((20, 0))
    ]  # fmt: skip
    index = ChipIndex.from_scenes(scenes, size=32, stride=16)
    assert both(index, 2, 0.0) and both(index, 2, 100.0)


def test_scenes_without_ground_are_planes_of_their_own():
    scenes = [
        header("p1", 200, 160, None, crs=None, georef="none"),
        header("p2", 200, 160, None, crs=None, georef="none"),
        header("bare", 200, 160, Affine(30, 0, 500_000, 0, -30, 4e6), crs=None),
    ]
    index = ChipIndex.from_scenes(scenes, size=20, stride=10)
    found = both(index, 2, 15.0)
    assert all(index.column("scene")[x] == index.column("scene")[y] for x, y, _ in found)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shifts=st.lists(st.sampled_from([0.0, 0.0, 30.0 * 7, 30.0 * 13.5, 45.0, -600.0]),
                    min_size=1, max_size=4),
    size=st.integers(8, 30),
    stride_frac=st.floats(0.3, 1.2),
    labels=st.integers(2, 4),
    buffer=st.sampled_from([0.0, 0.0, 29.0, 30.0, 95.0]),
    seed=st.integers(0, 2**31),
)  # fmt: skip
def test_property_revisits_shifted_grids_and_buffers_agree(
    shifts, size, stride_frac, labels, buffer, seed
):
    # Revisits (one transform), whole-pixel shifts and half-pixel shifts in one CRS.
    scenes = [
        header(f"s{k}", 120, 100, Affine(30, 0, 500_000 + shift, 0, -30, 4e6 - shift / 3))
        for k, shift in enumerate(shifts)
    ]
    index = ChipIndex.from_scenes(scenes, size=size, stride=max(1, int(size * stride_frac)))
    both(index, labels, buffer, seed)


def test_check_leakage_names_the_same_leaks_as_the_split_engine(real_index):
    label = np.random.default_rng(5).integers(0, 2, len(real_index))
    splits = {"a": real_index.select(label == 0), "b": real_index.select(label == 1)}
    report = check_leakage(splits, raise_on_leak=False)
    assert not report.ok
    ids = real_index.chip_ids
    expected = {tuple(sorted((ids[x], ids[y]))) for x, y, _ in both(real_index, 2, 0.0, seed=5)}
    assert {tuple(sorted((a, b))) for _, a, _, b, _ in report.leaks} == expected


def test_the_splits_inner_boxes_lie_inside_their_footprints(real_index):
    # conflicts() takes an overlap of inner boxes as a sure overlap: they must be inside.
    scenes, columns = list(real_index.scenes), window_columns(real_index)
    polys = chip_ground(scenes, columns, choose_frame(scenes)).polygons
    boxes = inner_boxes(polys)
    found = np.isfinite(boxes).all(axis=1)
    assert found.mean() > 0.9  # GCP swath, rotated and reprojected chips included
    inner = shapely.box(*boxes[found].T)
    assert shapely.contains(polys[found], inner).all()
    assert (shapely.area(inner) > 0.5 * shapely.area(polys[found])).all()
