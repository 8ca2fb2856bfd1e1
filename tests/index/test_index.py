import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.scenes import scene_header

from geochips import ChipIndex
from geochips.errors import (
    ChipNotFoundError,
    InvalidParameterError,
    SceneHeaderError,
    SmallSceneWarning,
)
from geochips.testing import expected_chip_count

# Small test scenes have small tiles, so most grids here straddle them on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::geochips.errors.TileAlignmentWarning")


def scene(id="s", height=100, width=120, level=None):
    return scene_header(id, height, width, overview_level=level)


SIDE = st.integers(1, 700)
CHIP = st.integers(1, 128)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(h=SIDE, w=SIDE, size=CHIP, stride=CHIP, edge=st.sampled_from(["drop", "pad", "shift"]))
def test_counts_equal_the_oracle_and_ids_are_unique(h, w, size, stride, edge):
    scenes = [scene("a", h, w), scene("b", w, h)]
    with pytest.warns(SmallSceneWarning) if (min(h, w) < size and edge != "pad") else nullwarn():
        index = ChipIndex.from_scenes(scenes, size=size, stride=stride, edge=edge)
    expected = (
        2 * expected_chip_count(h, size, stride, edge) * expected_chip_count(w, size, stride, edge)
    )
    assert len(index) == expected
    assert len(set(index.chip_ids)) == len(index)


class nullwarn:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_seed_counts_without_and_with_overlap():
    # Sentinel-1 IW GRD at overview level 3 is about 1050 x 1600 pixels.
    scenes = [scene("osaka", 1050, 1600, level=3), scene("tokyo", 1049, 1601, level=3)]
    assert len(ChipIndex.from_scenes(scenes, size=512)) == 12
    assert len(ChipIndex.from_scenes(scenes, size=512, overlap=256)) == 30


def test_rectangular_size_and_stride_are_height_width():
    index = ChipIndex.from_scenes([scene(height=100, width=300)], size=(50, 100), stride=(25, 100))
    assert len(index) == 3 * 3
    assert set(index.column("height")) == {50} and set(index.column("width")) == {100}
    assert sorted(set(index.column("row_off"))) == [0, 25, 50]
    assert sorted(set(index.column("col_off"))) == [0, 100, 200]


def test_small_scene_warns_and_names_it():
    with pytest.warns(SmallSceneWarning, match=r"'tiny' \(/nowhere/tiny.tif\) 10x10.*edge='pad'"):
        index = ChipIndex.from_scenes([scene("tiny", 10, 10), scene("big", 64, 64)], size=32)
    assert len(index) == 4
    padded = ChipIndex.from_scenes([scene("tiny", 10, 10)], size=32, edge="pad")
    assert len(padded) == 1


@pytest.mark.parametrize(
    ("level", "advice"),
    [
        (None, "Use a smaller size, or edge='pad'"),
        (0, "Use overview_level=None (full resolution), a smaller size"),
        (3, "Use a finer overview_level (overview_level=2, or None for full resolution)"),
    ],
)
def test_small_scene_advice_points_to_larger_scenes_never_coarser(level, advice):
    with pytest.warns(SmallSceneWarning) as caught:
        ChipIndex.from_scenes([scene("tiny", 10, 10, level=level)], size=32)
    text = str(caught[0].message)
    assert advice in text and "coarser" not in text


def test_bands_travel_with_selections_pickles_and_saved_indexes(tmp_path):
    pytest.importorskip("pyarrow")
    three = scene_header("a", 64, 64, band_counts=(3,))
    index = ChipIndex.from_scenes([three], size=32).with_bands([3, 1])
    assert index.bands == [3, 1] and index[:2].bands == [3, 1]
    assert pickle.loads(pickle.dumps(index)).bands == [3, 1]
    index.save(tmp_path / "chips.parquet")
    assert ChipIndex.load(tmp_path / "chips.parquet").bands == [3, 1]
    with pytest.raises(InvalidParameterError, match=r"bands \[4\] do not exist in scene"):
        index.with_bands([4])


def test_chip_ids_name_scene_level_and_window():
    index = ChipIndex.from_scenes([scene("S1A_x/vv", 64, 64, level=3)], size=32)
    assert index.chip_ids == [
        "S1A_x/vv/ov3/0/0/32x32",
        "S1A_x/vv/ov3/0/32/32x32",
        "S1A_x/vv/ov3/32/0/32x32",
        "S1A_x/vv/ov3/32/32/32x32",
    ]
    full = ChipIndex.from_scenes([scene("a", 64, 64)], size=32)
    assert full.chip_id(3) == "a/full/32/32/32x32"


def test_ids_survive_selection_reordering_and_pickling():
    index = ChipIndex.from_scenes([scene("a"), scene("b")], size=20, stride=10)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(index))
    shuffled = index[order]
    assert shuffled.chip_ids == [index.chip_ids[i] for i in order]
    subset = index[index.column("scene") == 1]
    assert all(cid.startswith("b/") for cid in subset.chip_ids)
    restored = pickle.loads(pickle.dumps(shuffled))
    assert restored.chip_ids == shuffled.chip_ids
    for position in (0, 7, len(index) - 1):
        cid = index.chip_ids[position]
        assert index.position(cid) == position
        assert shuffled.chip_id(shuffled.position(cid)) == cid
        assert index[cid] == index[position]


def test_selection_by_slice_ids_and_mask():
    index = ChipIndex.from_scenes([scene("a", 40, 40)], size=10)
    assert index[2:5].chip_ids == index.chip_ids[2:5]
    picked = index.select([index.chip_ids[7], index.chip_ids[1]])
    assert picked.chip_ids == [index.chip_ids[7], index.chip_ids[1]]
    with pytest.raises(InvalidParameterError, match="one value per chip"):
        index.select(np.ones(3, dtype=bool))
    with pytest.raises(IndexError, match="out of range for 16 chips"):
        index.select([16])
    with pytest.raises(IndexError, match="chip position -17 is out of range for 16 chips"):
        index[-17]
    assert index[-1] == index[15]


def test_iteration_yields_chips_in_order():
    index = ChipIndex.from_scenes([scene("a", 30, 30)], size=10, stride=10)
    chips = list(index)
    assert [c.chip_id for c in chips] == index.chip_ids
    assert chips[4].window == (10, 10, 10, 10)
    assert chips[4].scene.id == "a"


def test_unknown_chip_id_names_it():
    index = ChipIndex.from_scenes([scene("a", 30, 30)], size=10)
    with pytest.raises(ChipNotFoundError, match="no chip with id 'a/full/5/5/10x10'"):
        index.position("a/full/5/5/10x10")
    with pytest.raises(KeyError):
        index.position("nope")


def test_columns_are_read_only_and_extendable():
    index = ChipIndex.from_scenes([scene("a", 30, 30)], size=10)
    with pytest.raises(ValueError, match="read-only"):
        index.column("row_off")[0] = 5
    labelled = index.with_columns(label=np.arange(9))
    assert labelled.column("label").tolist() == list(range(9))
    assert labelled[3:5].column("label").tolist() == [3, 4]
    with pytest.raises(InvalidParameterError, match="holds the windows"):
        index.with_columns(row_off=np.zeros(9))
    with pytest.raises(InvalidParameterError, match=r"has \(2,\) values for 9 chips"):
        index.with_columns(label=[1, 2])
    with pytest.raises(KeyError, match="no column 'nope'"):
        index.column("nope")


def test_a_million_chips_are_small():
    # Their build time is benchmarks/bench_index.py's (times are never asserted here).
    scenes = [scene(f"s{i}", 25_600, 16_800) for i in range(4)]
    index = ChipIndex.from_scenes(scenes, size=48, stride=40)
    assert len(index) > 1_000_000
    per_chip = sum(index.column(c).nbytes for c in index.column_names) / len(index)
    assert per_chip <= 20


def test_build_rejects_bad_parameters_before_any_io(tmp_path):
    missing = tmp_path / "missing.tif"
    with pytest.raises(InvalidParameterError, match="size must be positive"):
        ChipIndex.build([missing], size=0)
    with pytest.raises(InvalidParameterError, match="overview_level must be None"):
        ChipIndex.build([missing], size=8, overview_level=-1)
    with pytest.raises(InvalidParameterError, match="cannot index int"):
        ChipIndex.build([3], size=8)
    with pytest.raises(SceneHeaderError, match="missing.tif"):
        ChipIndex.build([missing], size=8)


def test_scene_ids_from_paths(make_scene, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = make_scene("a/B04.tif")
    two = make_scene("b/B04.tif")
    index = ChipIndex.build([one, two], size=10)
    assert [s.id for s in index.scenes] == ["a/B04", "b/B04"]
    named = ChipIndex.build({"left": one, "right": two}, size=10)
    assert [s.id for s in named.scenes] == ["left", "right"]
    with pytest.raises(InvalidParameterError, match="two scenes have the id"):
        ChipIndex.build([one, one], size=10)


def test_gdal_options_are_given_once_and_travel_with_the_index(make_scene):
    from geochips import ChipDataset

    index = ChipIndex.build([make_scene(height=32, width=32)], size=16, gdal_options={"X_A": "on"})
    assert index.gdal_options == {"X_A": "on"}
    picked = index.select([0, 2])
    assert picked.gdal_options == {"X_A": "on"}
    assert pickle.loads(pickle.dumps(picked)).gdal_options == {"X_A": "on"}
    reader = ChipDataset(picked).reader
    assert reader.gdal_options["X_A"] == "on" and "GDAL_HTTP_TIMEOUT" in reader.gdal_options
    both = ChipDataset(picked, gdal_options={"X_A": "off", "X_B": "b"}).reader.gdal_options
    assert (both["X_A"], both["X_B"]) == ("off", "b")
