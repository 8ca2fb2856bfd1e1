"""``geochips localize``: a saved index to local copies, run as users run it."""

import numpy as np
import pytest
from test_cli import RGB, assert_one_line_error, run

import geochips


def test_localize_saves_an_index_whose_chips_equal_the_original(tmp_path):
    pytest.importorskip("pyarrow")
    chips, local = tmp_path / "chips.parquet", tmp_path / "local.parquet"
    assert run("index", RGB, "--size", "128", "-o", str(chips)).returncode == 0
    args = ("localize", str(chips), "--to", str(tmp_path / "copies"), "-o", str(local))
    first = run(*args, "--codec", "zstd")
    assert first.returncode == 0, first.stderr
    assert "1 of 1 scene(s) to localize into" in first.stdout and "MB" in first.stdout
    assert f"saved 30 chips over 1 local scene(s) to {local}" in first.stdout
    again = run(*args, "--codec", "zstd")
    assert "0 of 1 scene(s) to localize" in again.stdout and "1 already there" in again.stdout
    original, copied = geochips.ChipIndex.load(chips), geochips.ChipIndex.load(local)
    assert copied.chip_ids == original.chip_ids
    assert copied.scenes[0].hrefs == (str(tmp_path / "copies" / "RGB.byte-full.tif"),)
    a, b = geochips.ChipDataset(original), geochips.ChipDataset(copied)
    for i in range(len(a)):
        assert np.array_equal(a[i]["image"].numpy(), b[i]["image"].numpy())


def test_localize_errors_are_one_line(tmp_path):
    missing = run("localize", str(tmp_path / "no.parquet"), "--to", str(tmp_path), "-o",
                  str(tmp_path / "o.parquet"))  # fmt: skip
    assert "does not exist" in assert_one_line_error(missing)
    wrong = run("localize", "x.parquet", "-o", "y.parquet")
    assert "--to" in assert_one_line_error(wrong, code=2)
    bad_out = run("localize", "x.parquet", "--to", str(tmp_path), "-o",
                  str(tmp_path / "nowhere" / "o.parquet"))  # fmt: skip
    assert "does not exist" in assert_one_line_error(bad_out)
