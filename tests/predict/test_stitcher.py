"""Stitching: an identity model's predictions must give back the scene, as a valid COG."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import rasterio
import torch
from torch.utils.data import DataLoader

import geochips
from geochips import sample_data
from geochips.errors import InvalidParameterError
from geochips.predict.stitcher import BLENDS
from geochips.testing import write_scene

pytestmark = pytest.mark.filterwarnings("ignore::geochips.TileAlignmentWarning")


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """A 1100x900 two-band scene: 3x2 output tiles, edges that do not fall on them."""
    path = tmp_path_factory.mktemp("scenes") / "big.tif"
    return write_scene(path, height=1100, width=900, count=2, blocksize=256, overviews=[2])


def identity(batch):
    return batch["image"].float()


def stitch(index, path, model=identity, order=None, **kwargs):
    ds = geochips.ChipDataset(index, dtype="float32")
    positions = list(range(len(ds))) if order is None else order
    with geochips.Stitcher(index, path, **kwargs) as out:
        for start in range(0, len(positions), 5):
            batch = geochips.collate([ds[i] for i in positions[start : start + 5]])
            out.add(batch, model(batch))
    return out


def read(path, **kwargs):
    """Pixels and what the file says of itself."""
    with rasterio.open(path, **kwargs) as src:
        header = SimpleNamespace(crs=src.crs, transform=src.transform, shape=src.shape,
                                 gcps=src.gcps, dtypes=src.dtypes, nodata=src.nodata,
                                 scales=src.scales)  # fmt: skip
        return src.read(), header


def is_cog(path):
    with rasterio.open(path) as src:
        return (
            src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
            and src.profile["tiled"]
            and src.overviews(1)
        )


@pytest.mark.parametrize("blend", BLENDS)
@pytest.mark.parametrize("edge", ["shift", "pad"])
def test_an_identity_model_gives_back_the_scene(big, tmp_path, blend, edge):
    index = geochips.ChipIndex.build([big], size=300, stride=220, edge=edge)
    out = stitch(index, tmp_path / "out.tif", bands=2, blend=blend)
    assert out.paths == [str(tmp_path / "out.tif")] and out.missing == []
    got, dst = read(out.paths[0])
    expected, src = read(big)
    np.testing.assert_allclose(got, expected.astype(np.float32), rtol=1e-5)
    assert dst.crs == src.crs and dst.transform == src.transform and dst.shape == src.shape
    assert is_cog(out.paths[0])
    assert not list(tmp_path.glob("*.partial-*")) and not list(tmp_path.glob(".geochips-*"))


def test_an_overview_level_and_several_scenes(big, tmp_path):
    other = write_scene(tmp_path / "small.tif", height=300, width=520, count=2, blocksize=128)
    index = geochips.ChipIndex.build([big, other], size=128, stride=100, edge="shift",
                                     overview_level=None)  # fmt: skip
    level0 = geochips.ChipIndex.build([big], size=128, edge="shift", overview_level=0)
    out = stitch(index, tmp_path / "preds" / "{scene}.tif", bands=2, blend="mean")
    assert sorted(out.paths) == sorted(
        str(tmp_path / "preds" / f"{n}.tif") for n in ("big", "small")
    )
    for name, source in (("big", big), ("small", other)):
        np.testing.assert_array_equal(read(tmp_path / "preds" / f"{name}.tif")[0], read(source)[0])
    ov = stitch(level0, tmp_path / "ov.tif", bands=2, blend="center", compress="zstd")
    got, dst = read(ov.paths[0])
    expected, src = read(big, overview_level=0)
    np.testing.assert_array_equal(got, expected)
    assert dst.transform == src.transform


def test_a_gcp_scene_keeps_its_gcps(tmp_path):
    path = sample_data.path("cog_gcps.tif")
    index = geochips.ChipIndex.build([path], size=256, stride=200, edge="shift", overview_level=0)
    out = stitch(index, tmp_path / "s1.tif", bands=1, blend="cosine")
    got, dst = read(out.paths[0])
    expected, src = read(path, overview_level=0)
    np.testing.assert_allclose(got, expected.astype(np.float32), rtol=1e-5)
    (gcps, crs) = dst.gcps
    scene = index.scenes[0]
    assert crs == src.gcps[1] and len(gcps) == len(scene.gcps)
    np.testing.assert_allclose([(g.row, g.col, g.x, g.y) for g in gcps], scene.gcps, rtol=1e-12)


def chip_value(chip_id):
    """A value of its own for each chip, from its window: 1 + col_off + 7 * row_off."""
    row_off, col_off = (int(v) for v in chip_id.split("/")[-3:-1])
    return float(1 + col_off + 7 * row_off)


def constant(batch):
    """Each chip predicts its own value everywhere."""
    values = torch.tensor([chip_value(c) for c in batch["chip_id"]])
    return values[:, None, None, None].expand(-1, 1, *batch["image"].shape[2:]).clone()


def window_weight(blend, n):
    """The documented 1-D weight of pixel i of a chip n pixels long."""
    t = (np.arange(n) + 0.5) / n
    return {"mean": np.ones(n), "linear": 1 - np.abs(2 * t - 1), "cosine": np.sin(np.pi * t) ** 2}[
        blend
    ]


@pytest.mark.parametrize("blend", ["mean", "linear", "cosine"])
def test_two_overlapping_chips_blend_with_the_documented_weights(tmp_path, blend):
    path = write_scene(tmp_path / "row.tif", height=64, width=112, count=1, blocksize=16)
    index = geochips.ChipIndex.build([path], size=64, stride=48)  # chips at cols 0 and 48
    out = stitch(index, tmp_path / "out.tif", model=constant, bands=1, blend=blend)
    got = read(out.paths[0])[0][0]
    a, b = (chip_value(c) for c in index.chip_ids)
    w = window_weight(blend, 64)
    wr = w[:, None]
    wa, wb = wr * w[None, 48:], wr * w[None, :16]  # the 16 shared columns, as each sees them
    expected = (a * wa + b * wb) / (wa + wb)
    np.testing.assert_allclose(got[:, 48:64], expected, rtol=1e-5)
    np.testing.assert_allclose(got[:, :48], a, rtol=1e-6)  # one chip: its own value
    np.testing.assert_allclose(got[:, 64:], b, rtol=1e-6)


def test_center_takes_the_nearest_chip_centre_and_max_the_largest(tmp_path):
    path = write_scene(tmp_path / "row.tif", height=64, width=112, count=1, blocksize=16)
    index = geochips.ChipIndex.build([path], size=64, stride=48)
    a, b = (chip_value(c) for c in index.chip_ids)
    center = read(
        stitch(index, tmp_path / "c.tif", model=constant, bands=1, blend="center").paths[0]
    )[0][0]
    # Centres at x = 32 and 80: pixel 55 (centre 55.5) is nearer the first, 56 the second.
    assert (center[:, :56] == a).all() and (center[:, 56:] == b).all()
    highest = read(
        stitch(index, tmp_path / "m.tif", model=constant, bands=1, blend="max").paths[0]
    )[0][0]
    assert (highest[:, 48:64] == max(a, b)).all() and (highest[:, :48] == a).all()


@pytest.mark.parametrize("reverse", [False, True])
def test_a_tie_between_centres_goes_to_the_chip_first_in_the_index(tmp_path, reverse):
    path = write_scene(tmp_path / "row.tif", height=64, width=113, count=1, blocksize=16)
    index = geochips.ChipIndex.build([path], size=64, stride=49)  # centres at x = 32 and 81
    a, b = (chip_value(c) for c in index.chip_ids)
    order = [1, 0] if reverse else [0, 1]
    out = stitch(index, tmp_path / "c.tif", model=constant, order=order, bands=1, blend="center")
    center = read(out.paths[0])[0][0]
    assert (center[:, 56] == a).all()  # pixel 56's centre (56.5) is 24.5 from both
    assert (center[:, :56] == a).all() and (center[:, 57:] == b).all()


@pytest.mark.parametrize("blend", BLENDS)
def test_the_order_of_chips_does_not_matter(big, tmp_path, blend):
    index = geochips.ChipIndex.build([big], size=200, stride=150, edge="shift")
    order = np.random.default_rng(3).permutation(len(index)).tolist()
    noisy = lambda batch: batch["image"].float() * 0.5 + constant(batch)  # noqa: E731
    sorted_ = read(stitch(index, tmp_path / "a.tif", model=noisy, bands=2, blend=blend).paths[0])[0]
    shuffled = stitch(index, tmp_path / "b.tif", model=noisy, order=order, bands=2, blend=blend,
                      cache_mb=1)  # fmt: skip   # tiny: most tiles spill to disk and back
    got = read(shuffled.paths[0])[0]
    assert shuffled.spills > 0
    if blend in ("center", "max"):
        np.testing.assert_array_equal(got, sorted_)
    else:
        np.testing.assert_allclose(got, sorted_, rtol=1e-5)


@pytest.mark.slow
def test_batches_from_dataloader_workers(big, tmp_path):
    index = geochips.ChipIndex.build([big], size=256, stride=200, edge="pad")
    ds = geochips.ChipDataset(index, dtype="float32")
    loader = DataLoader(ds, batch_size=4, shuffle=True, num_workers=2, collate_fn=geochips.collate)
    with geochips.Stitcher(index, tmp_path / "w.tif", bands=2, blend="cosine") as out:
        for batch in loader:
            out.add(batch, batch["image"])
    np.testing.assert_allclose(read(out.paths[0])[0], read(big)[0].astype(np.float32), rtol=1e-5)


def test_argmax_and_quantized_outputs(tmp_path):
    path = write_scene(tmp_path / "s.tif", height=100, width=100, count=1, blocksize=16)
    index = geochips.ChipIndex.build([path], size=50, stride=50)

    def scores(batch):
        image = batch["image"].float()
        return torch.cat([image, 1000 - image, torch.full_like(image, 500)], dim=1)

    classes = stitch(
        index, tmp_path / "cls.tif", model=scores, bands=3, blend="mean", output="argmax"
    )
    got, dst = read(classes.paths[0])
    image = read(path)[0].astype(np.float64)
    expected = np.argmax(np.stack([image[0], 1000 - image[0], np.full_like(image[0], 500)]), axis=0)
    assert dst.dtypes == ("uint8",) and dst.nodata == 255
    np.testing.assert_array_equal(got[0], expected)
    probabilities = lambda batch: batch["image"].float() / 65535  # noqa: E731
    q = stitch(
        index, tmp_path / "q.tif", model=probabilities, bands=1, blend="mean", output="quantized"
    )
    got, dst = read(q.paths[0])
    np.testing.assert_array_equal(got[0], np.rint(image[0] / 65535 * 254).astype(np.uint8))
    assert dst.scales == pytest.approx((1 / 254,))


def test_invalid_pixels_and_missing_chips_are_nodata(tmp_path):
    path = write_scene(tmp_path / "s.tif", height=64, width=128, count=1, blocksize=16, nodata=0)
    index = geochips.ChipIndex.build([path], size=64)  # two chips side by side
    ds = geochips.ChipDataset(index, dtype="float32")
    with pytest.warns(geochips.GeochipsWarning, match="1 of 2 chips were never added"):
        with geochips.Stitcher(index, tmp_path / "o.tif", bands=1, blend="mean") as out:
            batch = geochips.collate([ds[0]])
            batch["valid"][0, 0, :10] = False
            out.add(batch, batch["image"])
    got = read(out.paths[0])[0][0]
    assert np.isnan(got[:10, :64]).all() and np.isnan(got[:, 64:]).all()
    assert not np.isnan(got[10:, :64]).any()
    assert out.missing == [index.chip_ids[1]]


def test_a_crash_leaves_no_file_that_looks_complete(big, tmp_path):
    index = geochips.ChipIndex.build([big], size=300, stride=300, edge="shift")
    ds = geochips.ChipDataset(index, dtype="float32")
    with pytest.raises(RuntimeError, match="the model fell over"):
        with geochips.Stitcher(index, tmp_path / "out.tif", bands=2) as out:
            for i in range(len(ds)):
                batch = geochips.collate([ds[i]])
                out.add(batch, batch["image"])
                if i == len(ds) - 2:
                    raise RuntimeError("the model fell over")
    assert list(tmp_path.iterdir()) == []


def test_repeated_chips_count_once(big, tmp_path):
    index = geochips.ChipIndex.build([big], size=300, stride=200, edge="shift")
    ds = geochips.ChipDataset(index, dtype="float32")
    with geochips.Stitcher(index, tmp_path / "out.tif", bands=2, blend="mean") as out:
        for k, i in enumerate([*range(len(ds)), 0, 1]):  # as DistributedSampler pads a shard
            batch = geochips.collate([ds[i]])
            out.add(batch, batch["image"] + (1000 if k >= len(ds) else 0))  # repeats: ignored
    np.testing.assert_allclose(read(out.paths[0])[0], read(big)[0].astype(np.float32), rtol=1e-5)


def test_bad_calls_are_clear_errors(big, tmp_path):
    index = geochips.ChipIndex.build([big], size=300, stride=300, edge="shift")
    ds = geochips.ChipDataset(index, dtype="float32")
    batch = geochips.collate([ds[0], ds[1]])
    with pytest.raises(InvalidParameterError, match="blend must be one of"):
        geochips.Stitcher(index, tmp_path / "o.tif", bands=2, blend="median")
    with pytest.raises(InvalidParameterError, match="compress must be one of"):
        geochips.Stitcher(index, tmp_path / "o.tif", bands=2, compress="jpeg")
    with geochips.Stitcher(index, tmp_path / "o.tif", bands=2) as out:
        with pytest.raises(
            InvalidParameterError, match=r"do not match a batch of 2 chips with bands=2"
        ):
            out.add(batch, batch["image"][:, :1])
        with pytest.raises(InvalidParameterError, match="needs the batch's chip ids"):
            out.add({"image": batch["image"]}, batch["image"])
        with pytest.raises(InvalidParameterError, match=r"is 300x200 pixels, its window 300x300"):
            out.add(batch, batch["image"][..., :200])
        out.abort()
    (tmp_path / "o.tif").write_bytes(b"")
    with pytest.raises(InvalidParameterError, match="exists"):
        geochips.Stitcher(index, tmp_path / "o.tif", bands=2)
    two = geochips.ChipIndex.build([big, sample_data.path("RGB.byte.tif")], size=300, edge="shift")
    with pytest.raises(InvalidParameterError, match=r"has no \{scene\}"):
        geochips.Stitcher(two, tmp_path / "one.tif", bands=2)
