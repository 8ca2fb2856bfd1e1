"""geochips.localize: local copies whose every chip equals the original's, written safely."""

from __future__ import annotations

import dataclasses
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window
from support.localserver import ServerProcess

import geochips
from geochips import sample_data
from geochips.errors import DiskSpaceError, InvalidParameterError, SceneReadError
from geochips.io.copies import needed_tiles, source_hrefs
from geochips.scene import Scene
from geochips.select.localize import SOURCE_COLUMN, plan_localize
from geochips.testing import write_scene

# Small test scenes have small tiles, so most grids here straddle them on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::geochips.errors.TileAlignmentWarning")

SAMPLE = Path(geochips.__file__).parent / "sample_data"


def direct(scene: Scene, href: str, window) -> np.ndarray:
    """The part of ``window`` inside the scene, read by rasterio from the original file."""
    level = scene.file_level(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(href, **({} if level is None else {"overview_level": level})) as src:
            r0, c0 = max(window.row_off, 0), max(window.col_off, 0)
            r1 = min(window.row_off + window.height, scene.height)
            c1 = min(window.col_off + window.width, scene.width)
            return src.read(window=Window(c0, r0, c1 - c0, r1 - r0))


def assert_same_chips(original: geochips.ChipIndex, local: geochips.ChipIndex) -> None:
    """Every chip of ``local`` equals the original's, read by geochips and by rasterio."""
    assert local.chip_ids == original.chip_ids and len(local) > 0
    assert local.column_names == (*original.column_names, SOURCE_COLUMN)
    for name in original.column_names:
        if name != "scene":
            assert local.column(name).tolist() == original.column(name).tolist(), name
    theirs = geochips.ChipDataset(original, threads=1)
    ours = geochips.ChipDataset(local, threads=1)
    for i in range(len(local)):
        got, expected = ours[i]["image"].numpy(), theirs[i]["image"].numpy()
        assert got.dtype == expected.dtype and np.array_equal(got, expected, equal_nan=True), i
        scene, window = original.scene_of(i), original.window(i)
        if len(scene.hrefs) == 1 and not scene.warped:
            inside = direct(scene, scene.hrefs[0], window)
            r, c = max(-window.row_off, 0), max(-window.col_off, 0)
            part = got[:, r : r + inside.shape[1], c : c + inside.shape[2]]
            assert np.array_equal(part, inside, equal_nan=True), i
        copy = local.scene_of(i)
        assert len(copy.hrefs) == 1 and copy.count == scene.count
        assert (copy.crs, copy.transform, copy.gcps) == (scene.crs, scene.transform, scene.gcps)
        assert (copy.dtype, copy.height, copy.width) == (scene.dtype, scene.height, scene.width)
        assert local.column(SOURCE_COLUMN)[i] == "\n".join(scene.hrefs)


CASES = {
    "cog-uint16-full-pad": (
        dict(height=700, width=650, count=3, layout="cog", blocksize=128, nodata=0),
        dict(size=200, stride=150, edge="pad"),
    ),
    "cog-float32-ov0-shift": (
        dict(height=900, width=800, count=2, dtype="float32", layout="cog", blocksize=128,
             overviews=(2, 4), nodata=-9999.0),
        dict(size=100, stride=80, edge="shift", overview_level=0),
    ),
    "cog-int16-ov1": (
        dict(height=1024, width=1024, count=1, dtype="int16", layout="cog", blocksize=256,
             overviews=(2, 4)),
        dict(size=64, overview_level=1),
    ),
    "striped-uint8": (
        dict(height=300, width=260, count=4, dtype="uint8", layout="striped"),
        dict(size=64, stride=50, edge="pad"),
    ),
    "no-crs": (dict(height=200, width=200, count=1, crs=None), dict(size=50, stride=70)),
}  # fmt: skip


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")  # no-crs
@pytest.mark.parametrize("codec", ["none", "zstd"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_every_chip_of_a_local_copy_equals_the_original(tmp_path, case, codec):
    scene_kwargs, grid = CASES[case]
    path = write_scene(tmp_path / "scene.tif", **scene_kwargs)
    index = geochips.ChipIndex.build([path], **grid)
    local = geochips.localize(index, tmp_path / "local", codec)
    assert_same_chips(index, local)
    with rasterio.open(local.scenes[0].hrefs[0]) as src:
        assert (src.compression is None) == (codec == "none")
        assert src.nodata == index.scenes[0].nodata or np.isnan(src.nodata)


SAMPLES = {
    "gcps-ov0": (["cog_gcps.tif"], dict(size=200, stride=150, overview_level=0)),
    "gcps-full-pad": (["cog_gcps.tif"], dict(size=256, stride=300, edge="pad")),
    "rgb-striped-nodata": (["RGB.byte.tif"], dict(size=128, stride=100, edge="pad")),
    "atlanta-ov1": (["spacenet_atlanta.tif"], dict(size=64, overview_level=1)),
    "s2-stacked": (["scene_band1.tif", "scene_band2.tif"], dict(size=128, stride=100)),
}


@pytest.mark.parametrize("codec", ["none", "zstd"])
@pytest.mark.parametrize("case", sorted(SAMPLES))
def test_sample_scenes_localize_exactly(tmp_path, case, codec):
    names, grid = SAMPLES[case]
    files = [str(sample_data.path(n)) for n in names]
    index = geochips.ChipIndex.build({"s": files} if len(files) > 1 else files, **grid)
    local = geochips.localize(index, tmp_path, codec)
    assert_same_chips(index, local)
    scene = local.scenes[0]
    with rasterio.open(scene.hrefs[0]) as src:
        assert src.count == sum(index.scenes[0].band_counts)
        if index.scenes[0].georef == "gcps":
            assert src.crs is None and len(src.gcps[0]) == len(index.scenes[0].gcps)


def test_a_stacked_scene_becomes_one_file_with_its_bands_in_order(tmp_path):
    b1, b2 = (str(sample_data.path(f"scene_band{i}.tif")) for i in (1, 2))
    index = geochips.ChipIndex.build({"s2": [b2, b1]}, size=128).with_bands([2, 1])
    local = geochips.localize(index, tmp_path)
    assert local.bands == [2, 1] and local.scenes[0].hrefs == (str(tmp_path / "s2-full.tif"),)
    with rasterio.open(local.scenes[0].hrefs[0]) as copy, rasterio.open(b2) as first:
        window = Window(0, 0, 128, 128)
        assert np.array_equal(copy.read(1, window=window), first.read(1, window=window))
    assert_same_chips(index, local)


def test_resampled_assets_are_copied_on_the_scene_grid(tmp_path):
    fine = write_scene(tmp_path / "fine.tif", height=256, width=256, count=1, blocksize=64)
    coarse = write_scene(
        tmp_path / "coarse.tif",
        height=128,
        width=128,
        count=1,
        blocksize=64,
        transform=rasterio.Affine(20.0, 0, 500_000.0, 0, -20.0, 4_000_000.0),
    )
    index = geochips.ChipIndex.build({"s": [fine, coarse]}, size=64, grid=0, resampling="bilinear")
    local = geochips.localize(index, tmp_path / "local", "zstd")
    assert local.scenes[0].warped == () and local.scenes[0].band_counts == (2,)
    assert_same_chips(index, local)


def test_only_the_tiles_chips_touch_are_written(tmp_path):
    path = write_scene(tmp_path / "s.tif", height=1024, width=1024, count=1, layout="cog",
                       blocksize=256)  # fmt: skip
    index = geochips.ChipIndex.build([path], size=256)
    few = index[[0, 5]]  # tiles (0, 0) and (1, 1)
    local = geochips.localize(few, tmp_path / "local")
    with rasterio.open(local.scenes[0].hrefs[0]) as src:
        assert src.block_shapes[0] == (256, 256)
        written = {
            (r, c)
            for r in range(4)
            for c in range(4)
            if src.get_tag_item(f"BLOCK_OFFSET_{c}_{r}", "TIFF", bidx=1) is not None
        }
    assert written == {(0, 0), (1, 1)}
    assert_same_chips(few, local)


def test_a_remote_scene_is_copied_through_the_reader(tmp_path):
    write_scene(tmp_path / "remote.tif", height=600, width=600, count=2, layout="cog",
                blocksize=128, overviews=(2,))  # fmt: skip
    with ServerProcess(tmp_path) as server:
        index = geochips.ChipIndex.build(f"{server.url}/remote.tif", size=128, stride=100)
        local = geochips.localize(index, tmp_path / "local", "zstd", workers=2)
        server.take()
        ds = geochips.ChipDataset(local, threads=1)
        [ds[i] for i in range(len(ds))]
        assert not server.take(), "reading the copy asks nothing of the server"
        assert_same_chips(index, local)
    assert local.column(SOURCE_COLUMN)[0] == f"{server.url}/remote.tif"
    assert local.signer is None


def sign(href: str) -> str:
    return f"{href}?sig=SECRET"


def test_a_signed_remote_scene_is_read_signed_and_copied_without_its_token(tmp_path):
    write_scene(tmp_path / "signed.tif", height=256, width=256, count=1, layout="cog",
                blocksize=128)  # fmt: skip
    with ServerProcess(tmp_path) as server:
        index = geochips.ChipIndex.build(f"{server.url}/signed.tif", size=128, sign=sign)
        server.take()
        local = geochips.localize(index, tmp_path / "local", "zstd")
        reads = [r for r in server.take() if r.method == "GET" and r.path == "/signed.tif"]
        assert reads and all(r.query == "sig=SECRET" for r in reads)
        assert_same_chips(index, local)
    with rasterio.open(local.scenes[0].hrefs[0]) as src:
        assert "SECRET" not in str(src.tags())
    assert not any("SECRET" in h for h in local.column(SOURCE_COLUMN))


def test_remote_label_rasters_stay_remote_and_signed(tmp_path):
    write_scene(tmp_path / "image.tif", height=256, width=256, count=1, layout="cog",
                blocksize=128)  # fmt: skip
    with rasterio.open(tmp_path / "image.tif") as src:
        profile = src.profile | {"dtype": "uint8", "count": 1, "nodata": None}
        classes = (src.read(1) % 7).astype("uint8")
    with rasterio.open(tmp_path / "classes.tif", "w", **profile) as dst:
        dst.write(classes, 1)
    with ServerProcess(tmp_path) as server:
        labels = geochips.RasterLabels(f"{server.url}/classes.tif", dtype="uint8")
        index = geochips.ChipIndex.build(f"{server.url}/image.tif", size=128, sign=sign)
        local = geochips.localize(index.with_labels(labels), tmp_path / "local")
        server.take()
        ds = geochips.ChipDataset(local)
        for i in range(len(ds)):
            rows, cols = ds[i]["window"].slices()
            np.testing.assert_array_equal(ds[i]["mask"][0].numpy(), classes[rows, cols])
        reads = [r for r in server.take() if r.method == "GET"]
        assert {r.path for r in reads} == {"/classes.tif"}  # the image is local now
        assert all(r.query == "sig=SECRET" for r in reads)
    assert geochips.localize(index, tmp_path / "local").signer is None  # no labels: none


def test_source_hrefs_hold_no_token(tmp_path):
    path = write_scene(tmp_path / "s.tif", height=64, width=64, count=1)
    scene = geochips.ChipIndex.build([path], size=32).scenes[0]
    # An href given with its token (no signer to strip it): the token stays out.
    signed = dataclasses.replace(scene, hrefs=("https://a.b/s.tif?sv=2024&sig=SECRET&x=1",))
    assert source_hrefs(signed) == ("https://a.b/s.tif?sv=REDACTED&sig=REDACTED&x=1",)


def test_a_second_run_writes_nothing_and_a_larger_index_completes_the_copy(tmp_path):
    path = write_scene(tmp_path / "s.tif", height=512, width=512, count=2, layout="cog",
                       blocksize=128)  # fmt: skip
    index = geochips.ChipIndex.build([path], size=128)
    folder = tmp_path / "local"
    geochips.localize(index[:4], folder)
    copy = folder / "s-full.tif"
    stamp = copy.stat().st_mtime_ns
    counts: list[tuple[int, int]] = []
    again = geochips.localize(index[:4], folder, progress=lambda d, t: counts.append((d, t)))
    assert copy.stat().st_mtime_ns == stamp and counts in ([], [(0, 0)])
    assert_same_chips(index[:4], again)
    plan = plan_localize(index, folder)
    assert plan.tiles == 12 and "1 scene(s) to localize" in str(plan)
    whole = geochips.localize(index, folder)
    assert_same_chips(index, whole)
    assert plan_localize(index, folder).tiles == 0
    assert not [p for p in os.listdir(folder) if "partial" in p]


@pytest.mark.parametrize("damage", ["garbage", "other-scene", "other-codec"])
def test_a_copy_that_does_not_match_is_rewritten(tmp_path, damage):
    path = write_scene(tmp_path / "s.tif", height=256, width=256, count=1, blocksize=64)
    other = write_scene(tmp_path / "o.tif", height=256, width=256, count=1, blocksize=64,
                        data=np.ones((1, 256, 256), np.uint16))  # fmt: skip
    index = geochips.ChipIndex.build([path], size=64)
    folder = tmp_path / "local"
    copy = folder / "s-full.tif"
    if damage == "garbage":
        folder.mkdir()
        copy.write_bytes(b"II*\x00not a tiff at all")
    elif damage == "other-scene":
        fake = geochips.ChipIndex.build({"s": other}, size=64)
        geochips.localize(fake, folder)
    else:
        geochips.localize(index, folder, "zstd")
    plan = plan_localize(index, folder)
    assert plan.copies[0].rewrite and plan.tiles == 16
    assert_same_chips(index, geochips.localize(index, folder))


def test_a_failed_copy_leaves_no_file_that_looks_complete(tmp_path):
    good = write_scene(tmp_path / "good.tif", height=128, width=128, count=1, blocksize=32)
    gone = write_scene(tmp_path / "gone.tif", height=128, width=128, count=1, blocksize=32)
    index = geochips.ChipIndex.build([good, gone], size=32)
    os.remove(gone)
    folder = tmp_path / "local"
    with pytest.raises(SceneReadError, match="gone"):
        geochips.localize(index, folder, workers=2)
    assert sorted(os.listdir(folder)) == ["good-full.tif"]  # no partial file is left
    # The partial file of a run killed half way (its process gone) is removed next time.
    stale = folder / "gone-full.tif.partial-4194305-1.tif"  # above Linux's largest pid
    stale.write_bytes(b"half a file")
    shutil.copy(good, gone)
    assert_same_chips(index, geochips.localize(index, folder))
    assert sorted(os.listdir(folder)) == ["gone-full.tif", "good-full.tif"]


def test_a_folder_without_the_space_is_refused_before_writing(tmp_path):
    # A scene of 10^6 x 10^6 float64 pixels, 4 bands: 32 TB uncompressed; no file is read.
    huge = Scene(
        id="huge", hrefs=(str(tmp_path / "nowhere.tif"),), assets=(), overview_level=None,
        height=1_000_000, width=1_000_000, band_counts=(4,), dtype="float64", nodata=None,
        crs="EPSG:32618", transform=rasterio.Affine(1, 0, 0, 0, -1, 0), georef="transform",
        tile_shape=(1024, 1024),
    )  # fmt: skip
    index = geochips.ChipIndex.from_scenes([huge], size=65536)
    folder = tmp_path / "local"
    with pytest.raises(DiskSpaceError) as caught:
        geochips.localize(index, folder)
    message = str(caught.value)
    assert repr(str(folder)) in message and "bytes) free" in message
    assert f"({plan_localize(index, folder).bytes_needed} bytes" in message
    assert os.listdir(folder) == []


def test_bad_arguments_are_refused(tmp_path):
    index = geochips.ChipIndex.build([write_scene(tmp_path / "s.tif")], size=16)
    with pytest.raises(InvalidParameterError, match="codec must be one of none, zstd"):
        geochips.localize(index, tmp_path / "x", "jpeg")
    with pytest.raises(InvalidParameterError, match="workers"):
        geochips.localize(index, tmp_path / "x", workers=0)


def test_a_local_index_saves_and_loads(tmp_path):
    pytest.importorskip("pyarrow")
    index = geochips.ChipIndex.build([str(sample_data.path("cog_gcps.tif"))], size=128,
                                     overview_level=1)  # fmt: skip
    local = geochips.localize(index, tmp_path / "local", "zstd")
    local.save(tmp_path / "local.parquet")
    loaded = geochips.ChipIndex.load(tmp_path / "local.parquet")
    assert loaded.scenes == local.scenes and loaded.chip_ids == index.chip_ids
    assert loaded.column(SOURCE_COLUMN).tolist() == local.column(SOURCE_COLUMN).tolist()
    assert_same_chips(index, loaded)


def test_tile_lookup_marks_every_touched_tile():
    scene = Scene(
        id="s", hrefs=("x",), assets=(), overview_level=None, height=100, width=90,
        band_counts=(1,), dtype="uint8", nodata=None, crs=None, transform=None, georef="none",
    )  # fmt: skip
    rows, cols = np.array([-5, 40, 95]), np.array([-5, 10, 85])
    got = needed_tiles(scene, (32, 32), rows, cols, np.full(3, 20), np.full(3, 30))
    expected = np.zeros((4, 3), bool)
    expected[0, 0] = True  # rows 0..15, columns 0..25 once clipped
    expected[1, 0:2] = True  # rows 40..60, columns 10..40
    expected[2:4, 2] = True  # rows 95..100 (clipped), columns 85..90
    assert np.array_equal(got, expected)


def test_progress_counts_the_tiles_written_by_every_worker(tmp_path):
    paths = [
        write_scene(tmp_path / f"s{i}.tif", height=256, width=256, count=1, blocksize=64)
        for i in range(3)
    ]
    index = geochips.ChipIndex.build(paths, size=64)
    total = plan_localize(index, tmp_path / "local").tiles
    calls: list[tuple[int, int]] = []
    geochips.localize(
        index, tmp_path / "local", workers=3, progress=lambda d, t: calls.append((d, t))
    )
    assert total == 48 and calls[-1] == (48, 48)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


@pytest.mark.parametrize("codec", ["lzw", "deflate"])
def test_every_codec_keeps_every_pixel_and_the_index_steps_still_work(tmp_path, codec):
    files = [str(sample_data.path(n)) for n in ("cog_gcps.tif", "RGB.byte.tif")]
    index = geochips.ChipIndex.build(files, size=128)[::3]
    local = geochips.localize(index, tmp_path, codec, workers=2)
    # A checksum covers every band of a chip: the copies hold the same pixels.
    theirs = geochips.record_checksums(index).column("checksum")
    assert geochips.record_checksums(local).column("checksum").tolist() == theirs.tolist()
    valid = geochips.estimate_valid(index).column("valid_fraction")
    assert geochips.estimate_valid(local).column("valid_fraction").tolist() == valid.tolist()
