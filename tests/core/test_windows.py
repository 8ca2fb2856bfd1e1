import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geochips.errors import InvalidParameterError
from geochips.testing import expected_chip_count
from geochips.windows import (
    ChipWindow,
    axis_offsets,
    chip_count,
    grid_windows,
    resolve_grid,
    rows_by_scene,
    window_bounds,
)

LENGTH = st.integers(min_value=1, max_value=3000)
SIZE = st.integers(min_value=1, max_value=600)
STRIDE = st.integers(min_value=1, max_value=700)
EDGE = st.sampled_from(["drop", "pad", "shift"])


@given(length=LENGTH, size=SIZE, stride=STRIDE, edge=EDGE)
def test_axis_count_matches_the_walking_oracle(length, size, stride, edge):
    assert len(axis_offsets(length, size, stride, edge)) == expected_chip_count(
        length, size, stride, edge
    )


@given(length=LENGTH, size=SIZE, stride=STRIDE)
def test_drop_count_is_the_xbatcher_formula(length, size, stride):
    expected = (length - size) // stride + 1 if length >= size else 0
    assert len(axis_offsets(length, size, stride, "drop")) == expected


@given(length=LENGTH, size=SIZE, stride=STRIDE, edge=EDGE)
def test_windows_lie_inside_or_are_padded(length, size, stride, edge):
    offsets = axis_offsets(length, size, stride, edge)
    assert np.all(np.diff(offsets) > 0), "offsets increase strictly (no duplicate window)"
    if edge in ("drop", "shift"):
        assert np.all(offsets >= 0) and np.all(offsets + size <= length)
    else:
        assert np.all(offsets >= 0) and np.all(offsets < max(length, 1))
    if edge in ("pad", "shift") and len(offsets) and stride <= size:
        assert offsets[-1] + size >= length, "pad and shift cover the far edge"


@given(length=LENGTH, size=SIZE, stride=STRIDE)
def test_shift_ends_on_the_edge_and_keeps_the_stride_elsewhere(length, size, stride):
    offsets = axis_offsets(length, size, stride, "shift")
    if length < size:
        assert len(offsets) == 0
    else:
        assert offsets[-1] == length - size
        assert np.all(np.diff(offsets[:-1]) == stride)


@settings(deadline=None)
@given(height=st.integers(1, 400), width=st.integers(1, 400), size=st.integers(4, 64))
def test_stride_equal_to_size_tiles_without_overlap(height, width, size):
    rows, cols = grid_windows(height, width, (size, size), (size, size), "drop")
    cover = np.zeros((height, width), dtype=np.int32)
    for r, c in zip(rows, cols, strict=True):
        cover[r : r + size, c : c + size] += 1
    assert cover.max(initial=0) <= 1
    # Every pixel of the full-chip region is covered exactly once.
    full_h, full_w = (height // size) * size, (width // size) * size
    assert np.all(cover[:full_h, :full_w] == 1)


@given(h=st.integers(1, 300), w=st.integers(1, 300), size=SIZE, stride=STRIDE, edge=EDGE)
def test_grid_is_row_major_and_counts_multiply(h, w, size, stride, edge):
    rows, cols = grid_windows(h, w, (size, size), (stride, stride), edge)
    assert len(rows) == chip_count(h, w, (size, size), (stride, stride), edge)
    assert len(set(zip(rows.tolist(), cols.tolist(), strict=True))) == len(rows)
    assert list(zip(rows, cols, strict=True)) == sorted(zip(rows, cols, strict=True))


def test_grid_parameters_resolve():
    assert resolve_grid(512) == ((512, 512), (512, 512))
    assert resolve_grid(512, overlap=256) == ((512, 512), (256, 256))
    assert resolve_grid((256, 512), stride=(128, 256)) == ((256, 512), (128, 256))
    assert resolve_grid(10, overlap=(0, 5)) == ((10, 10), (10, 5))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": 0}, "size must be positive"),
        ({"size": -3}, "size must be positive"),
        ({"size": 8, "stride": 0}, "stride must be positive"),
        ({"size": 8, "overlap": 8}, "overlap must be at least 0 and less than the chip size"),
        ({"size": 8, "overlap": -1}, "overlap must be at least 0"),
        ({"size": 8, "stride": 4, "overlap": 4}, "give stride or overlap, not both"),
        ({"size": 8, "edge": "wrap"}, "edge must be one of 'drop', 'pad', 'shift'"),
        ({"size": 2.5}, "size must be an int"),
        ({"size": (1, 2, 3)}, "size must be an int or a (height, width) pair"),
    ],
)
def test_bad_grid_parameters_say_what_is_wrong(kwargs, message):
    with pytest.raises(
        InvalidParameterError, match=message.replace("(", r"\(").replace(")", r"\)")
    ):
        resolve_grid(**kwargs)


def test_window_bounds_of_a_north_up_grid():
    transform = (10.0, 0.0, 1000.0, 0.0, -10.0, 5000.0)
    bounds = window_bounds(
        transform, np.array([0, 2]), np.array([0, 3]), np.array([4, 4]), np.array([5, 5])
    )
    assert bounds.tolist() == [[1000.0, 4960.0, 1050.0, 5000.0], [1030.0, 4940.0, 1080.0, 4980.0]]


def test_chip_window_slices_cut_the_same_pixels():
    arr = np.arange(100).reshape(10, 10)
    assert arr[ChipWindow(2, 3, 4, 5).slices()].tolist() == arr[2:6, 3:8].tolist()


@given(st.lists(st.integers(0, 6), max_size=60))
def test_rows_by_scene_are_the_rows_of_each_scene_in_index_order(scene_col):
    column = np.array(scene_col, dtype=np.int32)
    grouped = rows_by_scene(column)
    assert [s for s, _ in grouped] == sorted(set(scene_col))
    for s, rows in grouped:
        np.testing.assert_array_equal(rows, np.flatnonzero(column == s))
