"""Stitcher progress: chips added over the index's chips, ended by close."""

from __future__ import annotations

import numpy as np
import pytest

import geochips
from geochips.testing import write_scene

pytestmark = pytest.mark.filterwarnings("ignore::geochips.TileAlignmentWarning")


def test_stitcher_counts_chips_added_once_and_close_ends_the_count(tmp_path, capsys):
    index = geochips.ChipIndex.build(write_scene(tmp_path / "s.tif", height=64, width=64), size=16)
    calls: list[tuple[int, int]] = []
    ids = index.chip_ids
    with geochips.Stitcher(
        index, str(tmp_path / "out.tif"), bands=1, progress=lambda d, t: calls.append((d, t))
    ) as out:
        for start in range(0, len(ids), 5):
            batch = ids[start : start + 5]
            out.add(batch, np.ones((len(batch), 1, 16, 16), np.float32))
        out.add(ids[:2], np.ones((2, 1, 16, 16), np.float32))  # repeats count nothing
    assert [d for d, _ in calls] == [5, 10, 15, 16]
    assert {t for _, t in calls} == {16}
    with geochips.Stitcher(index, str(tmp_path / "quiet.tif"), bands=1) as out:
        out.add(ids, np.ones((16, 1, 16, 16), np.float32))
    assert capsys.readouterr().err == ""
