"""Spatial splits: leak-free by construction, and proven so by independent oracles.

The oracles here do not use geochips.footprints or the STRtree: chips of one scene are
painted onto a per-scene pixel canvas (no pixel may carry two splits), and chips of
different scenes are compared pairwise, all pairs, with shapely boxes built from
``ChipIndex.bounds()`` (same CRS) or reprojected corner grids (different CRSs).
"""

import numpy as np
import pytest
import shapely
from affine import Affine
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from rasterio.warp import transform as warp_transform
from support.scenes import scene_header

import geochips
from geochips import ChipIndex, LeakageError, check_leakage, spatial_split
from geochips.errors import InvalidParameterError
from geochips.sample_data import path as sample_path
from geochips.select.leakage import AREA_TOLERANCE
from geochips.sources import SceneSource

# Small test scenes have small tiles, so most grids here straddle them on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::geochips.errors.TileAlignmentWarning")


DATA = __import__("pathlib").Path(__file__).parents[1] / "data"
FRACTIONS = {"train": 0.7, "val": 0.15, "test": 0.15}


def synthetic(id, height, width, crs="EPSG:32618", transform=None, georef="transform"):
    """A scene header without a file: splits and checks never read pixels."""
    if georef == "transform" and transform is None:
        transform = Affine(30.0, 0.0, 500_000.0, 0.0, -30.0, 4_000_000.0)
    return scene_header(
        id,
        height,
        width,
        crs=crs if georef != "none" else None,
        transform=transform if georef != "none" else None,
        georef=georef,
    )


# -- independent oracles --------------------------------------------------------------------


def pixel_oracle(splits):
    """No pixel of any scene is covered by chips of two splits (painting, no geometry)."""
    canvases = {}
    for k, index in enumerate(splits.values()):
        columns = [
            index.column(c).tolist() for c in ("scene", "row_off", "col_off", "height", "width")
        ]
        for s, r, c, h, w in zip(*columns, strict=True):
            scene = index.scenes[s]
            key = (scene.id, scene.overview_level)
            if key not in canvases:
                canvases[key] = np.full((scene.height, scene.width), -1, dtype=np.int8)
            canvas = canvases[key]
            patch = canvas[max(r, 0) : r + h, max(c, 0) : c + w]
            assert np.all((patch == -1) | (patch == k)), f"pixel shared by two splits in {scene.id}"
            patch[...] = k


def same_crs_oracle(splits, buffer=0.0):
    """All pairs of chips of different scenes and splits, compared as boxes in one CRS."""
    boxes, labels, scenes = [], [], []
    for k, index in enumerate(splits.values()):
        b = index.bounds()
        boxes.append(shapely.box(b[:, 0], b[:, 1], b[:, 2], b[:, 3]))
        labels.append(np.full(len(index), k))
        scenes.append([index.scenes[s].id for s in index.column("scene")])
    geoms = np.concatenate(boxes)
    label = np.concatenate(labels)
    scene = np.array(sum(scenes, []))
    i, j = np.triu_indices(len(geoms), 1)
    cross = (label[i] != label[j]) & (scene[i] != scene[j])
    i, j = i[cross], j[cross]
    shared = shapely.area(shapely.intersection(geoms[i], geoms[j]))
    assert shared.max(initial=0) == 0
    if buffer:
        assert shapely.distance(geoms[i], geoms[j]).min(initial=np.inf) >= buffer - 1e-6
    return len(i)


# -- real scenes ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_split(real_index):
    return spatial_split(real_index, FRACTIONS, seed=0)


def test_spatial_split_of_real_scenes_passes_check_leakage(real_index, real_split):
    report = check_leakage(real_split)
    assert report.ok and report.chips == sum(len(v) for v in real_split.values())
    pixel_oracle(real_split)
    assert list(real_split) == list(FRACTIONS)
    kept = sum(len(v) for v in real_split.values())
    assert kept + real_split.report.dropped == len(real_index)
    assert real_split.report.frame == "EPSG:6933"  # scenes in several CRSs
    for name, index in real_split.items():
        assert set(index.column("split")) == {name}


def test_overlapping_neighbours_share_no_ground_across_splits(real_split):
    mosaic = {
        name: index.select(
            np.isin(index.column("scene"), [0, 1])  # mosaic_cog1/2: EPSG:32618, overlapping
        )
        for name, index in real_split.items()
    }
    compared = same_crs_oracle(mosaic)
    assert compared > 1000
    # Both neighbours keep chips where they overlap: shared ground is not simply dropped.
    overlap_x = (547185.0, 658814.0)
    kept_there = set()
    for index in mosaic.values():
        b = index.bounds()
        inside = (b[:, 0] > overlap_x[0]) & (b[:, 2] < overlap_x[1])
        kept_there |= set(index.column("scene")[inside].tolist())
    assert kept_there == {0, 1}


def test_a_random_split_of_the_same_chips_leaks_and_the_error_names_pairs(real_index):
    rng = np.random.default_rng(0)
    label = rng.choice(3, size=len(real_index), p=[0.7, 0.15, 0.15])
    random = {name: real_index.select(label == k) for k, name in enumerate(FRACTIONS)}
    with pytest.raises(LeakageError) as caught:
        check_leakage(random)
    message = str(caught.value)
    assert "pair(s) of chips in different splits share ground" in message
    leaks = caught.value.report.leaks
    assert len(leaks) > 1000
    split_a, chip_a, split_b, chip_b, kind = leaks[0]
    assert f"{split_a}:{chip_a} <-> {split_b}:{chip_b}" in message
    assert split_a != split_b and kind == "overlap"
    # Cross-scene leaks between the overlapping neighbours are found too.
    assert any(
        a.startswith("mosaic_cog1")
        and b.startswith("mosaic_cog2")
        or a.startswith("mosaic_cog2")
        and b.startswith("mosaic_cog1")
        for _, a, _, b, _ in leaks
    )
    assert isinstance(caught.value, ValueError)
    report = check_leakage(random, raise_on_leak=False)
    assert not report.ok and len(report.leaks) == len(leaks)


def test_the_report_counts_and_explains_dropped_chips(real_index, real_split):
    report = real_split.report
    assert sum(report.counts.values()) + report.dropped == len(real_index)
    assert report.dropped == sum(report.dropped_by_reason.values())
    assert report.dropped_chips is not None and len(report.dropped_chips) == report.dropped
    assert set(report.dropped_chips.column("drop_reason")) <= {"overlap", "buffer"}
    assert "dropped" in str(report) and "train" in str(report)
    # Kept and dropped chips partition the index.
    ids = [set(v.chip_ids) for v in real_split.values()] + [set(report.dropped_chips.chip_ids)]
    assert sum(len(s) for s in ids) == len(set().union(*ids)) == len(real_index)
    for name in FRACTIONS:
        assert abs(report.achieved[name] - FRACTIONS[name]) < 0.05


def test_buffer_keeps_splits_apart(real_index):
    mosaic = real_index.select(np.isin(real_index.column("scene"), [0, 1]))
    buffer = 3000.0  # metres, 5 pixels
    splits = spatial_split(mosaic, {"train": 0.5, "test": 0.5}, buffer=buffer, seed=3)
    assert splits.report.frame == "EPSG:32618"
    assert splits.report.dropped_by_reason["buffer"] > 0
    check_leakage(splits, buffer=buffer)
    same_crs_oracle(splits, buffer=buffer)
    pixel_oracle(splits)
    # Without the buffer, the same splits touch.
    plain = spatial_split(mosaic, {"train": 0.5, "test": 0.5}, seed=3)
    with pytest.raises(LeakageError, match="closer than buffer"):
        check_leakage(plain, buffer=buffer)


@pytest.mark.parametrize(
    "href",
    [str(DATA / "mosaic_cog1_ov0.tif"), str(sample_path("cog_gcps.tif"))],
    ids=["utm", "gcps"],
)
def test_repeat_passes_put_one_place_in_one_split(href):
    passes = [SceneSource("pass1", (href,)), SceneSource("pass2", (href,))]
    index = ChipIndex.build(passes, size=48, stride=24)
    splits = spatial_split(index, FRACTIONS, seed=1)
    check_leakage(splits)
    where = {}
    for name, part in splits.items():
        for chip_id in part.chip_ids:
            where[chip_id] = name
    same_place = [
        (where[c], where[c.replace("pass1", "pass2", 1)])
        for c in where
        if c.startswith("pass1/") and c.replace("pass1", "pass2", 1) in where
    ]
    assert len(same_place) > 100
    assert all(a == b for a, b in same_place)


def test_scenes_in_different_utm_zones_are_compared_on_the_ground():
    # The same ground in EPSG:32618 and in the neighbouring zone EPSG:32617.
    a = synthetic("zone18", 400, 400, "EPSG:32618", Affine(30, 0, 300_000, 0, -30, 4_500_000))
    xs, ys = warp_transform("EPSG:32618", "EPSG:32617", [300_000.0], [4_500_000.0])
    b = synthetic("zone17", 400, 400, "EPSG:32617", Affine(30, 0, xs[0], 0, -30, ys[0]))
    index = ChipIndex.from_scenes([a, b], size=40, stride=20)
    splits = spatial_split(index, {"train": 0.6, "test": 0.4}, seed=2, block=3000)
    assert splits.report.frame == "EPSG:6933"
    check_leakage(splits)
    # Oracle: all cross-zone pairs, footprints from 9 x 9 reprojected grid points.
    geoms, labels = [], []
    for k, part in enumerate(splits.values()):
        for _, scene, w in part:
            t = scene.transform
            rows = np.linspace(w.row_off, w.row_off + w.height, 9)
            cols = np.linspace(w.col_off, w.col_off + w.width, 9)
            ring = [(c, rows[0]) for c in cols] + [(cols[-1], r) for r in rows[1:]]
            ring += [(c, rows[-1]) for c in cols[::-1][1:]] + [(cols[0], r) for r in rows[::-1][1:]]
            x = [t.a * c + t.b * r + t.c for c, r in ring]
            y = [t.d * c + t.e * r + t.f for c, r in ring]
            lon, lat = warp_transform(scene.crs, "EPSG:4326", x, y)
            geoms.append((scene.id, shapely.Polygon(zip(lon, lat, strict=True))))
            labels.append(k)
    label = np.array(labels)
    scene = np.array([s for s, _ in geoms])
    polys = np.array([g for _, g in geoms])
    i, j = np.triu_indices(len(polys), 1)
    cross = (label[i] != label[j]) & (scene[i] != scene[j])
    area = shapely.area(shapely.intersection(polys[i[cross]], polys[j[cross]]))
    assert area.max() < AREA_TOLERANCE * shapely.area(polys).min()
    # A random split of the same chips leaks across the zones.
    rng = np.random.default_rng(0)
    label = rng.choice(2, size=len(index))
    with pytest.raises(LeakageError) as caught:
        check_leakage({"train": index.select(label == 0), "test": index.select(label == 1)})
    assert any(a.split("/")[0] != b.split("/")[0] for _, a, _, b, _ in caught.value.report.leaks)


def test_rotated_grids_are_compared_by_their_true_footprints():
    # Two overlapping scenes on grids rotated by 20 and 35 degrees, in one CRS.
    scenes = [
        synthetic(
            f"rot{k}",
            200,
            200,
            transform=Affine.translation(500_000 + 1500 * k, 4e6)
            @ Affine.rotation(angle)
            @ Affine.scale(30, -30),
        )
        for k, angle in enumerate((20, 35))
    ]
    index = ChipIndex.from_scenes(scenes, size=32, stride=16)
    splits = spatial_split(index, {"a": 0.5, "b": 0.5}, seed=4, block=2000)
    check_leakage(splits)
    pixel_oracle(splits)
    # Oracle: all cross-split pairs of different scenes, corners through the transforms.
    polys, labels, scene_ids = [], [], []
    for k, part in enumerate(splits.values()):
        for _, scene, w in part:
            t = scene.transform
            corners = [
                (w.col_off, w.row_off),
                (w.col_off + w.width, w.row_off),
                (w.col_off + w.width, w.row_off + w.height),
                (w.col_off, w.row_off + w.height),
            ]
            polys.append(
                shapely.Polygon(
                    [(t.a * c + t.b * r + t.c, t.d * c + t.e * r + t.f) for c, r in corners]
                )
            )
            labels.append(k)
            scene_ids.append(scene.id)
    polys, label, scene_id = np.array(polys), np.array(labels), np.array(scene_ids)
    i, j = np.triu_indices(len(polys), 1)
    cross = (label[i] != label[j]) & (scene_id[i] != scene_id[j])
    assert cross.sum() > 1000
    area = shapely.area(shapely.intersection(polys[i[cross]], polys[j[cross]]))
    assert area.max() < 1e-6
    rng = np.random.default_rng(1)
    label = rng.choice(2, size=len(index))
    with pytest.raises(LeakageError):
        check_leakage({"a": index.select(label == 0), "b": index.select(label == 1)})


def test_scenes_without_crs_are_split_in_pixel_space():
    scenes = [
        synthetic("p1", 300, 200, georef="none"),
        synthetic("p2", 300, 200, georef="none"),
        # A geotransform without a CRS places chips relative to each other only.
        synthetic("bare", 300, 200, crs=None, transform=Affine(30, 0, 500_000, 0, -30, 4e6)),
    ]
    index = ChipIndex.from_scenes(scenes, size=20, stride=10)
    splits = spatial_split(index, {"a": 0.5, "b": 0.5}, block=60, seed=0)
    assert splits.report.frame is None and splits.report.pixel_block == 60
    check_leakage(splits)
    pixel_oracle(splits)
    # Scenes without CRS are different planes: the same window may go to two splits.
    assert sum(len(v) for v in splits.values()) > 0.6 * len(index)


def test_scenes_with_and_without_crs_split_together(real_index):
    mosaic = real_index.select(real_index.column("scene") == 0)
    plain = ChipIndex.from_scenes([synthetic("plain", 300, 300, georef="none")], size=64, stride=32)
    scenes = [*mosaic.scenes, *plain.scenes]
    columns = {
        k: np.concatenate(
            [mosaic.column(k), plain.column(k) + (len(mosaic.scenes) if k == "scene" else 0)]
        )
        for k in ("scene", "row_off", "col_off", "height", "width")
    }
    both = ChipIndex(scenes, columns, size=(64, 64), stride=(32, 32), edge="drop")
    splits = spatial_split(both, {"a": 0.5, "b": 0.5}, seed=1)
    report = splits.report
    assert report.frame == "EPSG:32618" and report.pixel_block == 4 * 64
    check_leakage(splits)
    pixel_oracle(splits)


def test_the_default_block_is_four_chips(real_index):
    mosaic = real_index.select(real_index.column("scene") == 0)
    splits = spatial_split(mosaic, FRACTIONS)
    assert splits.report.block == pytest.approx(4 * 64 * 599.31, rel=0.01)


def test_the_same_seed_gives_the_same_split_and_another_seed_another(real_index):
    mosaic = real_index.select(np.isin(real_index.column("scene"), [0, 1]))
    # 40 km blocks: about 50 of them, so seeds have many good deals to choose from.
    one = spatial_split(mosaic, FRACTIONS, seed=5, block=40_000)
    two = spatial_split(mosaic, FRACTIONS, seed=5, block=40_000)
    other = spatial_split(mosaic, FRACTIONS, seed=6, block=40_000)
    assert one.report.blocks > 30
    assert {k: v.chip_ids for k, v in one.items()} == {k: v.chip_ids for k, v in two.items()}
    assert {k: v.chip_ids for k, v in one.items()} != {k: v.chip_ids for k, v in other.items()}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"fractions": {"train": 0.7, "test": 0.2}}, "sum to 1"),
        ({"fractions": {"train": 1.2, "test": -0.2}}, r"in \(0, 1\]"),
        ({"fractions": [0.5, 0.5]}, "mapping"),
        ({"fractions": FRACTIONS, "block": 0}, "block must be positive"),
        ({"fractions": FRACTIONS, "buffer": -1}, "buffer must be >= 0"),
        ({"fractions": FRACTIONS, "seed": "x"}, "seed must be an int"),
    ],
)
def test_bad_arguments_are_refused(kwargs, match):
    index = ChipIndex.from_scenes([synthetic("s", 100, 100)], size=10)
    with pytest.raises(InvalidParameterError, match=match):
        spatial_split(index, **kwargs)


def test_an_empty_index_splits_into_empty_indexes():
    index = ChipIndex.from_scenes([synthetic("s", 100, 100)], size=10)[[]]
    splits = spatial_split(index, FRACTIONS)
    assert [len(v) for v in splits.values()] == [0, 0, 0]
    assert check_leakage(splits).ok


def test_check_leakage_matches_scenes_across_separately_built_indexes():
    a = ChipIndex.from_scenes([synthetic("s", 100, 100)], size=20, stride=10)
    b = ChipIndex.from_scenes([synthetic("t", 50, 50), synthetic("s", 100, 100)], size=20)
    with pytest.raises(LeakageError, match="s/full/0/0/20x20"):
        check_leakage({"x": a[:1], "y": b[b.column("scene") == 1][:1]})
    # Chips that only touch do not leak.
    assert check_leakage({"x": a[:1], "y": b[b.chip_ids.index("s/full/0/20/20x20") :][:1]}).ok


# -- properties -----------------------------------------------------------------------------

SIDES = st.integers(40, 240)
CHIPS = st.integers(10, 40)
SPLITS = st.sampled_from(
    [{"a": 0.5, "b": 0.5}, {"a": 0.7, "b": 0.15, "c": 0.15}, {"a": 0.8, "b": 0.2}]
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    heights=st.lists(SIDES, min_size=1, max_size=3),
    width=SIDES,
    size=CHIPS,
    stride_frac=st.floats(0.3, 1.0),
    block_chips=st.floats(1.0, 6.0),
    shift=st.integers(-300, 300),
    fractions=SPLITS,
    seed=st.integers(0, 2**31),
    buffer=st.sampled_from([0.0, 0.0, 45.0]),
)
def test_property_no_leak_deterministic_partition(
    heights, width, size, stride_frac, block_chips, shift, fractions, seed, buffer
):
    # Overlapping scenes on one 30 m grid, offset by whole pixels.
    scenes = [
        synthetic(f"s{k}", h, width, transform=Affine(30, 0, 500_000 + 30 * shift * k, 0, -30, 4e6))
        for k, h in enumerate(heights)
    ]
    stride = max(1, int(size * stride_frac))
    assume(len(heights) * (max(heights) // stride) * (width // stride) <= 1500)
    index = ChipIndex.from_scenes(scenes, size=size, stride=stride)
    block = block_chips * size * 30
    splits = spatial_split(index, fractions, block=block, seed=seed, buffer=buffer)
    # No leakage, by the checker and by the oracles.
    check_leakage(splits, buffer=buffer)
    pixel_oracle(splits)
    same_crs_oracle(splits, buffer=buffer)
    # Every kept chip is in exactly one split; with the dropped ones, the index.
    ids = [v.chip_ids for v in splits.values()] + [splits.report.dropped_chips.chip_ids]
    flat = [c for part in ids for c in part]
    assert len(flat) == len(set(flat)) == len(index)
    # Determinism from the seed.
    again = spatial_split(index, fractions, block=block, seed=seed, buffer=buffer)
    assert [v.chip_ids for v in again.values()] == ids[:-1]
    # Fractions within 0.1 of those asked when there are enough blocks (of at least two
    # chips: with one-chip blocks almost every chip straddles blocks) and chips.
    report = splits.report
    if report.blocks >= 50 and block_chips >= 2 and buffer == 0 and len(index) >= 500:
        for name, asked in fractions.items():
            assert abs(report.achieved[name] - asked) <= 0.1, report


def test_fractions_are_close_with_many_blocks():
    scene = synthetic("big", 2000, 2000)
    index = ChipIndex.from_scenes([scene], size=32, stride=16)
    for seed in range(3):
        splits = spatial_split(index, FRACTIONS, seed=seed)
        assert splits.report.blocks > 200
        for name, asked in FRACTIONS.items():
            assert abs(splits.report.achieved[name] - asked) <= 0.02, splits.report
        # With 4-chip blocks and half-chip strides, about a fifth of the chips straddle
        # two splits' blocks and are dropped.
        assert splits.report.dropped < 0.3 * len(index)


@pytest.mark.slow
def test_a_split_of_100k_chips_passes_the_proof():
    # Scale runs in benchmarks/bench_scale.py (times are never asserted here); this one
    # checks that the split and the proof agree on an index of that size.
    scenes = [
        synthetic(f"s{k}", 4000, 4000, transform=Affine(10, 0, 500_000 + 30_000 * k, 0, -10, 4e6))
        for k in range(4)
    ]
    index = ChipIndex.from_scenes(scenes, size=32, stride=24)
    assert len(index) >= 100_000
    splits = spatial_split(index, FRACTIONS, seed=0)
    report = check_leakage(splits)
    assert report.ok and report.chips == len(index) - splits.report.dropped


def test_exports():
    assert geochips.spatial_split is spatial_split and geochips.check_leakage is check_leakage


def test_revisits_of_a_grid_split_as_one_scene_does():
    # Three passes over one 30 m grid: each window's three chips are one ground, so the
    # split is the single scene's, window for window, each window's chips together.
    one = ChipIndex.from_scenes([synthetic("p0", 600, 600)], size=32, stride=16)
    three = ChipIndex.from_scenes(
        [synthetic(f"p{k}", 600, 600) for k in range(3)], size=32, stride=16
    )
    alone = spatial_split(one, FRACTIONS, seed=3)
    passes = spatial_split(three, FRACTIONS, seed=3)
    check_leakage(passes)
    for name in FRACTIONS:
        windows = {c.split("/", 2)[2] for c in alone[name].chip_ids}
        ids = passes[name].chip_ids
        assert len(ids) == 3 * len(windows)
        assert {c.split("/", 2)[2] for c in ids} == windows
    assert passes.report.dropped == 3 * alone.report.dropped
