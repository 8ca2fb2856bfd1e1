"""Progress of the select steps: counted to the end, silent off a terminal, with a rate."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
import shapely
from affine import Affine
from support.scenes import scene_header

import geochips
from geochips.progress import StderrProgress
from geochips.select.conflicts import comparisons
from geochips.select.ground import window_columns
from geochips.testing import write_scene


class Calls(list):
    """A progress callable that records its calls."""

    def __call__(self, done: int, total: int) -> None:
        self.append((done, total))

    def check(self, total: int) -> None:
        done = [d for d, _ in self]
        assert done == sorted(set(done)) and done[0] > 0, self  # strictly increasing
        assert {t for _, t in self} == {total} and self[-1] == (total, total)


@pytest.fixture(scope="module")
def scenes_written(tmp_path_factory):
    folder = tmp_path_factory.mktemp("progress")
    return [
        write_scene(folder / f"s{i}.tif", height=64, width=64, count=2, nodata=0, overviews=[2])
        for i in range(5)
    ]


def two_zones(n: int = 4) -> geochips.ChipIndex:
    """Scenes in two UTM zones (so every comparison pass runs), chips 64 px."""
    scenes = [
        scene_header(
            f"z{i}",
            640,
            640,
            crs="EPSG:32631" if i % 2 else "EPSG:32632",
            transform=Affine(10, 0, 500_000 + (i // 2) * 3_000, 0, -10, 5_000_000),
        )
        for i in range(n)
    ]
    return geochips.ChipIndex.from_scenes(scenes, size=64, stride=48)


def test_estimate_valid_counts_every_scene(scenes_written):
    index = geochips.ChipIndex.build(scenes_written, size=16)
    calls = Calls()
    geochips.estimate_valid(index, progress=calls, workers=2)
    calls.check(5)


def test_band_stats_counts_every_scene(scenes_written):
    index = geochips.ChipIndex.build(scenes_written, size=16)
    calls = Calls()
    geochips.record_band_stats(index, progress=calls, workers=2)
    calls.check(5)


def test_spatial_split_counts_ground_comparisons_and_dealing():
    index = two_zones()
    calls = Calls()
    splits = geochips.spatial_split(index, {"a": 0.5, "b": 0.5}, progress=calls)
    n = len(index)
    # every pass runs: one scene, one CRS (scenes of a zone overlap), across zones
    assert comparisons(list(index.scenes), window_columns(index)) == 3 * n
    calls.check(2 * n + 3 * n)
    leak = Calls()
    report = geochips.check_leakage(splits, progress=leak)
    leak.check(2 * report.chips)  # in planes, then in the frame


def test_steps_are_silent_off_a_terminal_by_default(scenes_written, capsys):
    index = geochips.ChipIndex.build(scenes_written, size=16)
    geochips.estimate_valid(index)
    geochips.band_stats(index)
    splits = geochips.spatial_split(two_zones(), {"a": 0.5, "b": 0.5})
    geochips.check_leakage(splits, progress=False)
    assert capsys.readouterr().err == ""


def test_the_plain_counter_shows_the_label_unit_rate_and_time_left():
    stream = io.StringIO()
    geochips.spatial_split(
        two_zones(8),
        {"a": 0.5, "b": 0.5},
        progress=StderrProgress("spatial split", stream=stream, every=0, unit="chip"),
    )
    lines = stream.getvalue().split("\r")[1:]
    assert all(line.startswith("spatial split: ") for line in lines)
    assert any(re.search(r" chips, [\d.]+/s, ETA \d+:\d\d$", line) for line in lines), lines
    assert re.search(r"(\d+)/\1 chips, [\d.]+/s, \d+:\d\d\n$", lines[-1]), lines[-1]


def test_progress_true_draws_even_off_a_terminal(scenes_written, capsys):
    index = geochips.ChipIndex.build(scenes_written, size=16)
    geochips.estimate_valid(index, progress=True)
    err = capsys.readouterr().err
    assert "valid fractions" in err and "5/5" in err
    assert np.all(np.isfinite(geochips.estimate_valid(index).column("valid_fraction")))


@pytest.fixture(scope="module")
def labelled_scenes(tmp_path_factory):
    """Five 64 px scenes side by side, each with a label raster on its grid."""
    folder = tmp_path_factory.mktemp("labelled")
    rng = np.random.default_rng(5)
    images, labels = [], {}
    for i in range(5):
        transform = Affine(10, 0, 600_000 + 640 * i, 0, -10, 5_000_000)
        images.append(write_scene(folder / f"s{i}.tif", height=64, width=64, transform=transform))
        classes = (rng.random((1, 64, 64)) < 0.3 * i / 4).astype("uint8")
        labels[f"s{i}"] = write_scene(
            folder / f"l{i}.tif", height=64, width=64, count=1, dtype="uint8",
            transform=transform, data=classes,
        )  # fmt: skip
    return images, labels


@pytest.mark.parametrize("kind", ["vector", "raster"])
def test_filter_labels_counts_every_scene_and_threads_change_nothing(labelled_scenes, kind):
    images, rasters = labelled_scenes
    index = geochips.ChipIndex.build(images, size=16)
    if kind == "raster":
        labels = geochips.RasterLabels(rasters)
    else:
        x = np.random.default_rng(6).uniform(600_000, 603_200, 40)
        centres = shapely.points(x, np.full(40, 4_999_680.0))  # across the scenes' middle
        labels = geochips.VectorLabels(shapely.buffer(centres, 35), crs="EPSG:32618")
    calls = Calls()
    threaded = geochips.filter_labels(index, labels, workers=4, progress=calls)
    calls.check(5)
    alone = geochips.filter_labels(index, labels, workers=1, progress=False)
    np.testing.assert_array_equal(threaded.chip_ids, alone.chip_ids)
    np.testing.assert_array_equal(threaded.column("label_fraction"), alone.column("label_fraction"))
    assert 0 < len(threaded) < len(index)
