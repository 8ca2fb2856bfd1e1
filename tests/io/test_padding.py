"""Reader.read of windows partly or wholly outside their scene, against whole-scene reads."""

import numpy as np
import pytest
import rasterio

import geochips
from geochips.io.reader import Reader
from geochips.windows import ChipWindow

WINDOWS = [
    (0, 0, 16, 16),  # inside
    (-5, -3, 16, 16),  # over the top-left corner
    (30, 40, 16, 16),  # over the bottom-right corner
    (-4, 10, 48, 20),  # taller than the scene
    (50, 60, 8, 8),  # wholly outside
]


@pytest.mark.parametrize("row_off, col_off, height, width", WINDOWS)
@pytest.mark.parametrize("bands", [None, [3, 1]])
def test_padded_windows_are_the_scene_pixels_and_the_fill_around_them(
    make_scene, row_off, col_off, height, width, bands
):
    path = make_scene(height=40, width=50, count=3)
    scene = geochips.ChipIndex.build([path], size=8).scenes[0]
    window = ChipWindow(row_off=row_off, col_off=col_off, height=height, width=width)
    got = Reader().read(scene, window, bands=bands, fill_value=7)
    with rasterio.open(path) as src:
        pixels = src.read(bands or [1, 2, 3])
    # The scene inside a frame of fill wide enough for every window, cut at the window.
    margin = 64
    framed = np.full((len(pixels), 40 + 2 * margin, 50 + 2 * margin), 7, dtype=pixels.dtype)
    framed[:, margin:-margin, margin:-margin] = pixels
    rows, cols = (
        slice(row_off + margin, row_off + margin + height),
        slice(col_off + margin, col_off + margin + width),
    )
    expected = framed[:, rows, cols]
    assert got.dtype == expected.dtype and np.array_equal(got, expected)


def test_out_receives_an_inner_window_and_is_left_alone_for_a_padded_one(make_scene):
    path = make_scene(height=40, width=50, count=2)
    scene = geochips.ChipIndex.build([path], size=8).scenes[0]
    reader = Reader()
    out = np.zeros((2, 16, 16), dtype=scene.dtype)
    inner = reader.read(scene, ChipWindow(row_off=4, col_off=4, height=16, width=16), out=out)
    assert inner is out and out.any()
    before = out.copy()
    padded = reader.read(scene, ChipWindow(row_off=-4, col_off=4, height=16, width=16), out=out)
    assert padded is not out and np.array_equal(out, before)
    assert (padded[:, :4] == 0).all() and np.array_equal(padded[:, 8:], before[:, :8])
