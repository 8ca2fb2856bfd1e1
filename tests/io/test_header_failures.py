"""Many header failures: one short error that counts them by cause, each kept in .failures."""

from __future__ import annotations

import pytest

import geochips
from geochips.errors import SceneHeaderError


def test_fifteen_missing_files_give_a_short_message_counted_by_cause(make_scene, tmp_path):
    good = make_scene(height=32, width=32)
    text = tmp_path / "notes.tif"
    text.write_text("not a raster")
    missing = [str(tmp_path / f"gone{i:02d}.tif") for i in range(15)]
    with pytest.raises(SceneHeaderError) as caught:
        geochips.ChipIndex.build([good, *missing, str(text)], size=16, progress=False)
    error = caught.value
    message = str(error)
    assert len(message.splitlines()) <= 6, message
    assert message.startswith("16 of 17 scenes failed, by cause: ")
    assert "15 x not found; 1 x not a raster" in message
    assert message.endswith("... and 13 more (SceneHeaderError.failures has them all)")
    assert len(error.failures) == 16
    for href, failure in zip([*missing, str(text)], error.failures, strict=True):
        assert href in str(failure) and isinstance(failure, SceneHeaderError)
    assert [f.reason for f in error.failures] == ["not found"] * 15 + ["not a raster"]


def test_a_few_failures_are_listed_whole(tmp_path):
    missing = [str(tmp_path / f"gone{i}.tif") for i in range(3)]
    with pytest.raises(SceneHeaderError) as caught:
        geochips.ChipIndex.build(missing, size=16)
    lines = str(caught.value).splitlines()
    assert lines[0] == "3 of 3 scenes failed:" and len(lines) == 4
    assert all(href in line for href, line in zip(missing, lines[1:], strict=True))


def test_a_single_failure_is_raised_itself(tmp_path):
    with pytest.raises(SceneHeaderError) as caught:
        geochips.ChipIndex.build([str(tmp_path / "gone.tif")], size=16)
    assert caught.value.failures == [caught.value] and caught.value.reason == "not found"
    assert str(caught.value).startswith("cannot open scene 'gone' at ")
