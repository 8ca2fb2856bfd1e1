"""Damaged and replaced files: every chip read is the right chip or a geochips error.

The pass criterion is pixel equality with a direct rasterio read of the undamaged file,
never "no exception": a read that succeeds on a damaged file must still be right.
"""

import logging
import os
import shutil

import numpy as np
import pytest
import rasterio
import torch
from rasterio.windows import Window
from torch.utils.data import DataLoader

import geochips
from geochips import (
    ChipDataset,
    ChipIndex,
    IncompatibleScenesError,
    SceneChangedError,
    SceneReadError,
    TransformError,
)
from geochips.testing import write_scene

# Small test scenes have small tiles, so most grids here straddle them on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::geochips.errors.TileAlignmentWarning")


def oracle(path, window):
    with rasterio.open(path) as src:
        return src.read(
            window=Window(
                col_off=window.col_off,
                row_off=window.row_off,
                width=window.width,
                height=window.height,
            )
        )


def tile_span(path, row=0, col=0):
    """Byte offset and size of one tile of band 1 (the first image)."""
    with rasterio.open(path) as src:
        offset = int(src.get_tag_item(f"BLOCK_OFFSET_{col}_{row}", "TIFF", bidx=1))
        size = int(src.get_tag_item(f"BLOCK_SIZE_{col}_{row}", "TIFF", bidx=1))
    return offset, size


def damage(path, offset, size, out):
    """Copy ``path`` to ``out`` with 10 bytes flipped in the middle of a byte span."""
    with open(path, "rb") as f:
        data = bytearray(f.read())
    start = offset + size // 3
    for k in range(start, start + 40, 4):
        data[k] ^= 0x5A
    with open(out, "wb") as f:
        f.write(bytes(data))
    return out


def every_chip_right_or_refused(dataset, good_path):
    """Read every chip: right pixels or SceneReadError. Return (right, refused)."""
    right = refused = 0
    for i in range(len(dataset)):
        try:
            sample = dataset[i]
        except SceneReadError as exc:
            assert sample_names(exc, dataset, i)
            refused += 1
            continue
        expected = oracle(good_path, sample["window"])
        assert np.array_equal(sample["image"].numpy(), expected), f"chip {i} is wrong"
        right += 1
    return right, refused


def sample_names(exc, dataset, i):
    message = str(exc)
    return dataset.index.chip_id(i) in message and "row_off=" in message


@pytest.mark.parametrize("compress", ["jpeg", "deflate", "lzw"])
def test_a_corrupt_tile_is_refused_or_read_right(tmp_path, compress):
    dtype = "uint8" if compress == "jpeg" else "uint16"
    good = write_scene(
        tmp_path / "good.tif",
        height=256,
        width=256,
        count=3,
        dtype=dtype,
        blocksize=128,
        compress=compress,
    )
    bad = damage(good, *tile_span(good), tmp_path / "bad.tif")
    index = ChipIndex.build([bad], size=128)
    if compress == "jpeg":
        # libjpeg only warns ("Corrupt JPEG data"); the warning now refuses the chip.
        right, refused = every_chip_right_or_refused(ChipDataset(index), good)
        assert (right, refused) == (3, 1)
        return
    # DEFLATE/LZW damage may decode without a word from GDAL (the documented limit):
    # the three untouched tiles read right, and checksums catch the damaged one.
    dataset = ChipDataset(index)
    for i in range(1, 4):
        assert np.array_equal(dataset[i]["image"].numpy(), oracle(good, dataset[i]["window"]))
    clean = geochips.record_checksums(ChipIndex.build([good], size=128))
    sums = index.with_columns(checksum=clean.column("checksum"))
    right, refused = every_chip_right_or_refused(ChipDataset(sums), good)
    assert (right, refused) == (3, 1)


def test_decode_warnings_refuse_a_chip_even_when_rasterio_is_silenced(tmp_path):
    good = write_scene(
        tmp_path / "good.tif",
        height=256,
        width=256,
        count=3,
        dtype="uint8",
        blocksize=128,
        compress="jpeg",
    )
    bad = damage(good, *tile_span(good), tmp_path / "bad.tif")
    logger = logging.getLogger("rasterio")
    before = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with pytest.raises(SceneReadError, match="Corrupt JPEG data"):
            ChipDataset(ChipIndex.build([bad], size=128))[0]
    finally:
        logger.setLevel(before)


def test_checksums_save_with_the_index_and_can_be_turned_off(tmp_path):
    pytest.importorskip("pyarrow")
    good = write_scene(tmp_path / "good.tif", height=256, width=256, count=2, blocksize=128)
    index = geochips.record_checksums(ChipIndex.build([good], size=96, edge="pad"))
    index.save(tmp_path / "chips.parquet")
    loaded = ChipIndex.load(tmp_path / "chips.parquet")
    assert np.array_equal(loaded.column("checksum"), index.column("checksum"))
    # Checksums leave the fill value out; a subset of bands is checked through all bands.
    for ds in (ChipDataset(loaded, fill_value=7), ChipDataset(loaded, bands=[2])):
        for i in range(len(ds)):
            ds[i]
    damage(good, *tile_span(good, 1, 1), tmp_path / "bad.tif")
    os.replace(tmp_path / "bad.tif", good)
    refused = 0
    for i in range(len(loaded)):
        try:
            ChipDataset(loaded)[i]
        except SceneReadError as exc:
            assert "checksum" in str(exc) and loaded.chip_id(i) in str(exc)
            refused += 1
    assert refused >= 1
    ChipDataset(loaded, verify=False)[len(loaded) - 1]  # no check, no error
    with pytest.raises(geochips.InvalidParameterError, match="record_checksums"):
        ChipDataset(ChipIndex.build([good], size=96), verify=True)


@pytest.mark.parametrize("cut", [0, 100, 2_000, 0.5, 0.9])
def test_truncated_or_emptied_files_give_right_chips_or_errors(tmp_path, cut):
    good = write_scene(tmp_path / "good.tif", height=256, width=256, count=2, blocksize=64)
    path = shutil.copy(good, tmp_path / "scene.tif")
    index = ChipIndex.build([path], size=64)
    size = os.path.getsize(good)
    keep = int(size * cut) if isinstance(cut, float) else cut
    with open(path, "r+b") as f:
        f.truncate(keep)
    right, refused = every_chip_right_or_refused(ChipDataset(index), good)
    assert refused >= 1


def test_a_file_that_is_not_a_tiff_any_more_names_chip_and_fix(tmp_path):
    path = write_scene(tmp_path / "scene.tif", height=64, width=64)
    index = ChipIndex.build([path], size=32)
    with open(path, "wb") as f:
        f.write(b"<html>not found</html>" * 50)
    with pytest.raises(SceneReadError) as info:
        ChipDataset(index)[3]
    message = str(info.value)
    assert index.chip_id(3) in message and "row_off=32" in message and "corrupt" in message
    os.remove(path)
    with pytest.raises(SceneReadError, match="check that it still exists") as info:
        ChipDataset(index)[0]
    assert "1 attempt in" in str(info.value)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (
            dict(height=128, width=128, transform=rasterio.Affine(5, 0, 500_000, 0, -5, 4e6)),
            "128x128 pixels",
        ),
        (dict(dtype="uint8"), "dtype uint8"),
        (dict(height=48, width=64), "48x64 pixels"),
        (dict(count=2), "2 bands"),
        (dict(transform=rasterio.Affine(10, 0, 600_000, 0, -10, 4e6)), "transform"),
    ],
    ids=["twice-the-resolution", "uint8", "smaller-crop", "fewer-bands", "moved"],
)
def test_a_file_replaced_after_indexing_is_refused(tmp_path, change, words):
    path = write_scene(tmp_path / "scene.tif", height=64, width=64, count=3)
    index = ChipIndex.build([path], size=32)
    dataset = ChipDataset(index)
    write_scene(tmp_path / "new.tif", **{"height": 64, "width": 64, "count": 3, **change})
    os.replace(tmp_path / "new.tif", path)
    with pytest.raises(SceneChangedError, match=words) as info:
        dataset[1]
    message = str(info.value)
    assert "changed after the index was built" in message and index.chip_id(1) in message
    assert "Rebuild the index" in message


@pytest.mark.slow
def test_a_replaced_file_is_refused_in_a_worker(tmp_path):
    path = write_scene(tmp_path / "scene.tif", height=64, width=64, count=3)
    index = ChipIndex.build([path], size=32)
    write_scene(tmp_path / "new.tif", height=64, width=64, count=3, dtype="uint8")
    os.replace(tmp_path / "new.tif", path)
    loader = DataLoader(ChipDataset(index), batch_size=2, num_workers=1)
    with pytest.raises(SceneChangedError, match="dtype uint8"):
        next(iter(loader))


def broken_transform(sample):
    raise ValueError("boom")


def test_a_failing_transform_names_chip_and_scene(make_scene):
    index = ChipIndex.build([make_scene(height=32, width=32)], size=16)
    dataset = ChipDataset(index, transform=broken_transform)
    with pytest.raises(
        TransformError,
        match=r"broken_transform raised ValueError on chip "
        r"'scene0/full/16/0/16x16' of scene 'scene0': boom",
    ) as info:
        dataset[2]
    assert isinstance(info.value.__cause__, ValueError)
    with pytest.raises(TransformError, match="scene0/full/0/0/16x16"):
        dataset.__getitems__([0, 1])


@pytest.mark.slow
def test_a_failing_transform_names_the_chip_from_a_worker(make_scene):
    index = ChipIndex.build([make_scene(height=32, width=32)], size=16)
    loader = DataLoader(ChipDataset(index, transform=broken_transform), num_workers=1)
    with pytest.raises(TransformError, match="scene0/full/0/0/16x16"):
        next(iter(loader))


def test_scenes_whose_samples_cannot_stack_are_refused_at_construction(make_scene):
    three = make_scene(height=16, width=16, count=3)
    one = make_scene(height=16, width=16, count=1)
    index = ChipIndex.build({"rgb": three, "gray": one}, size=16)
    with pytest.raises(IncompatibleScenesError, match=r"bands=\[1\]") as info:
        ChipDataset(index)
    assert "'rgb'" in str(info.value) and "'gray'" in str(info.value)
    batch = geochips.collate(ChipDataset(index, bands=[1]).__getitems__([0, 1]))
    assert batch["image"].shape == (2, 1, 16, 16)
    floats = make_scene(height=16, width=16, count=3, dtype="float32")
    mixed = ChipIndex.build({"rgb": three, "f": floats}, size=16)
    with pytest.raises(IncompatibleScenesError, match="dtype='float32'"):
        ChipDataset(mixed)
    batch = geochips.collate(ChipDataset(mixed, dtype="float32").__getitems__([0, 1]))
    assert batch["image"].dtype == torch.float32
    # A selection of one kind is fine.
    ChipDataset(index.select([0]))


def test_reads_leave_the_users_logging_as_it_was(tmp_path):
    logger = logging.getLogger("rasterio._err")
    level, filters = logger.level, list(logger.filters)
    path = write_scene(tmp_path / "scene.tif", height=64, width=64)
    dataset = ChipDataset(ChipIndex.build([path], size=32))
    dataset[0]
    os.remove(path)
    dataset.reader.close()
    with pytest.raises(SceneReadError):
        dataset[1]
    assert logger.level == level
    assert len(logger.filters) <= len(filters) + 1  # the capture filter, installed once


def test_an_uncompressed_file_cut_short_is_refused_where_cut_and_right_elsewhere(tmp_path):
    # Uncompressed local GeoTIFFs are read through a memory map (GTIFF_VIRTUAL_MEM_IO):
    # GDAL must fall back to reads, which fail, where the file lacks the tiles it names.
    good = write_scene(
        tmp_path / "good.tif", height=512, width=512, count=1, blocksize=128, compress="none"
    )
    cut = tmp_path / "cut.tif"
    shutil.copy(good, cut)
    offset, _ = tile_span(good, row=3, col=0)  # the last row of tiles is gone
    os.truncate(cut, offset + 10)
    dataset = ChipDataset(ChipIndex.build([cut], size=128))
    assert every_chip_right_or_refused(dataset, good) == (12, 4)
