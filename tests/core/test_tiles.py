import itertools
import warnings

import numpy as np
import pytest

from geochips import ChipIndex, TileAlignmentWarning
from geochips.errors import InvalidParameterError
from geochips.tiles import aligned_grid, check_alignment, tiles_per_chip

# Small test scenes have small tiles, so most grids here straddle them on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::geochips.errors.TileAlignmentWarning")


def touched_tiles(window, scene):
    """Oracle: the distinct tiles under every pixel of the window inside the scene."""
    bh, bw = scene.tile_shape
    rows = range(max(window.row_off, 0), min(window.row_off + window.height, scene.height))
    cols = range(max(window.col_off, 0), min(window.col_off + window.width, scene.width))
    return len({(r // bh, c // bw) for r, c in itertools.product(rows, cols)})


@pytest.mark.parametrize("edge", ["drop", "pad", "shift"])
@pytest.mark.parametrize(("size", "stride"), [(16, 16), (16, 8), (15, 15), (10, 7), (40, 24)])
def test_tiles_per_chip_matches_the_pixels(make_scene, size, stride, edge):
    paths = [make_scene(height=45, width=70, blocksize=16), make_scene(layout="striped")]
    index = ChipIndex.build(paths, size=size, stride=stride, edge=edge)
    expected = [touched_tiles(chip.window, chip.scene) for chip in index]
    np.testing.assert_array_equal(tiles_per_chip(index), expected)


@pytest.mark.parametrize(
    ("size", "stride", "block", "expected"),
    [
        ((500, 500), (500, 500), (512, 512), ((512, 512), (512, 512))),
        ((512, 512), (256, 256), (512, 512), ((512, 512), (256, 256))),
        ((300, 1000), (300, 700), (512, 512), ((256, 1024), (256, 512))),
        ((16, 16), (16, 16), (16, 16), ((16, 16), (16, 16))),
    ],
)
def test_aligned_grid(size, stride, block, expected):
    assert aligned_grid(size, stride, block) == expected


def test_check_alignment_reports_and_suggests(make_scene):
    path = make_scene(height=96, width=96, blocksize=32)
    report = check_alignment(ChipIndex.build([path], size=30, stride=30))
    assert not report.aligned and (report.size, report.stride) == ((32, 32), (32, 32))
    assert report.aligned_tiles_per_chip == 1.0 < report.tiles_per_chip
    assert "size=(32, 32), stride=(32, 32) would touch 1.00" in str(report)
    aligned = check_alignment(ChipIndex.build([path], size=report.size, stride=report.stride))
    assert aligned.aligned and aligned.tiles_per_chip == 1.0
    assert str(aligned) == "the grid is aligned to the 32x32 tiles: 1.00 tiles per chip"


def test_building_a_grid_that_straddles_tiles_warns_with_the_aligned_grid(make_scene):
    tiled = make_scene(height=96, width=96, blocksize=32)
    with pytest.warns(TileAlignmentWarning, match=r"size=\(32, 32\), stride=\(32, 32\) is aligned"):
        ChipIndex.build([tiled], size=30)
    with pytest.warns(TileAlignmentWarning, match="32x32 tiles of 1 scene"):
        ChipIndex.build([tiled], size=64, stride=48)  # overlap is fine, off-tile steps are not
    striped = make_scene(height=96, width=96, layout="striped")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # as the grid fits the tiles, and no grid fits strips
        for size, stride in ((32, 32), (64, 32), (16, 16), (96, 96)):
            ChipIndex.build([tiled], size=size, stride=stride)
        ChipIndex.build([striped], size=30)


def test_an_index_without_a_grid_is_refused(make_scene):
    index = ChipIndex.build([make_scene()], size=16)
    with pytest.raises(InvalidParameterError, match="needs an index built with a grid"):
        check_alignment(ChipIndex(index.scenes, {k: index.column(k) for k in index.column_names}))


def test_striped_scenes_are_reported_as_strips_not_tiles(make_scene):
    index = ChipIndex.build([make_scene(height=64, width=64, layout="striped")], size=16)
    report = check_alignment(index)
    assert report.striped and "strips, not tiles" in str(report)
