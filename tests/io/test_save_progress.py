"""Saving a large index reports rows as its row groups are written."""

from __future__ import annotations

import pyarrow.parquet as pq
from affine import Affine
from support.scenes import scene_header

import geochips
from geochips.io.index_save import ROW_GROUP


def test_save_counts_rows_to_the_end_and_writes_row_groups(tmp_path, capsys):
    scenes = [
        scene_header(
            f"s{i}", 6000, 6000, crs="EPSG:32631", transform=Affine(10, 0, i * 1e5, 0, -10, 5e6)
        )
        for i in range(3)
    ]
    index = geochips.ChipIndex.from_scenes(scenes, size=32)  # 3 x 187^2 = 104907 rows
    calls: list[tuple[int, int]] = []
    path = tmp_path / "big.parquet"
    index.save(path, progress=lambda done, total: calls.append((done, total)))
    done = [d for d, _ in calls]
    assert done == sorted(set(done)) and calls[-1] == (len(index), len(index))
    assert {t for _, t in calls} == {len(index)} and len(calls) == 2  # one per row group
    assert pq.ParquetFile(path).num_row_groups == -(-len(index) // ROW_GROUP) == 2
    loaded = geochips.ChipIndex.load(path)
    assert loaded.chip_ids == index.chip_ids
    index.save(tmp_path / "quiet.parquet")  # auto: stderr is not a terminal
    assert capsys.readouterr().err == ""


def test_a_save_that_fails_part_way_leaves_the_older_index_and_no_partial_file(tmp_path):
    old = geochips.ChipIndex.from_scenes([scene_header("old", 64, 64)], size=32)
    new = geochips.ChipIndex.from_scenes([scene_header("new", 64, 64)], size=16)
    path = tmp_path / "chips.parquet"
    old.save(path)

    def fail_once_written(done: int, total: int) -> None:
        if done == total:  # every row written, the file not yet closed and renamed
            raise KeyboardInterrupt

    try:
        new.save(path, progress=fail_once_written)
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError("the save did not fail")
    assert geochips.ChipIndex.load(path).chip_ids == old.chip_ids
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chips.parquet"]
    new.save(path)
    assert geochips.ChipIndex.load(path).chip_ids == new.chip_ids
