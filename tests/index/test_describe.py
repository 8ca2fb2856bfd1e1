"""describe(): one line per scene for a few scenes, a summary for many."""

from __future__ import annotations

import geochips


def test_describe_of_many_scenes_is_a_short_summary_with_the_totals(make_scene):
    paths = [
        make_scene(name=f"s{i:02d}.tif", height=32 + 16 * (i % 3), width=32) for i in range(30)
    ]
    index = geochips.ChipIndex.build(paths, size=16, progress=False)
    text = index.describe()
    lines = text.splitlines()
    assert len(lines) < 15, text
    assert f"totals: {len(index)} chips, 30 scenes" in text
    assert "chips per scene: min 4, median 6, max 8" in text  # 32, 48 and 64 rows
    assert "CRS: 30 x EPSG:32618" in text and "dtype: 30 x uint16" in text
    assert "bands: 30 x 3 band(s)" in text and "size: 30 x <=1k px" in text
    assert lines[-4].startswith("  s00: 4 chips") and lines[-1] == "  ... and 27 more scenes"


def test_describe_of_a_few_scenes_lists_each(make_scene):
    index = geochips.ChipIndex.build([make_scene(height=32, width=32) for _ in range(3)], size=16)
    lines = index.describe().splitlines()
    assert len(lines) == 4 and all(": 4 chips, 32x32 px" in line for line in lines[1:])
