"""Chip ids found by parsing and binary search resolve exactly as a dict of every id would."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.scenes import scene_header

from geochips import ChipIndex
from geochips.errors import ChipNotFoundError


def scenes():
    return [
        scene_header("S1A_x/vv", 96, 80),  # an id with a slash, as STAC scene ids have
        scene_header("b", 64, 64, overview_level=2),
        scene_header("c", 40, 200),
    ]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(0, 10_000), min_size=1, max_size=80),
    st.sampled_from([(16, 16), (16, 8), (32, 32)]),
)
def test_every_id_resolves_to_the_position_a_dict_of_ids_gives(picks, grid):
    size, stride = grid
    full = ChipIndex.from_scenes(scenes(), size=size, stride=stride, edge="pad")
    index = full[[p % len(full) for p in picks]]  # shuffled, with repeats
    expected = {cid: i for i, cid in enumerate(index.chip_ids)}  # the last of repeats
    fresh = full[[p % len(full) for p in picks]]  # no id list built yet
    for chip_id, position in expected.items():
        assert fresh.position(chip_id) == position
    assert fresh._ids.listed is None  # found without making the ids


@pytest.mark.parametrize(
    "chip_id",
    [
        "b/ov2/016/0/16x16",  # a leading zero: not an id the index writes
        "b/full/16/0/16x16",  # the wrong level
        "S1A_x/full/0/0/16x16",  # a prefix of a scene id
        "c/full/0/0/16x17",
        "c/full/0/0",
        "nonsense",
        "",
    ],
)
def test_ids_the_index_does_not_hold_are_not_found(chip_id):
    index = ChipIndex.from_scenes(scenes(), size=16)
    with pytest.raises(ChipNotFoundError, match="no chip with id"):
        index.position(chip_id)


def test_offsets_too_large_for_the_key_still_resolve():
    index = ChipIndex.from_scenes([scene_header("big", 16, 3_000_000)], size=16)
    last = index.chip_id(len(index) - 1)
    assert last == "big/full/0/2999984/16x16"
    assert index.position(last) == len(index) - 1
    assert isinstance(np.asarray(index.column("col_off"))[-1], np.integer)
