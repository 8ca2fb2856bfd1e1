"""ChipDataset(normalize=...): exact float output against NumPy oracles, through every path.

The oracle reads the whole scene with rasterio, cuts the window (padding outside the
scene), and computes ``(x - mean) / std`` in the output dtype with NumPy; invalid pixels
(outside the scene, or nodata in every band read) must be exactly 0.0 and False in
``valid``.
"""

import multiprocessing

import numpy as np
import pytest
import rasterio
import torch
from torch.utils.data import DataLoader

import geochips
from geochips.errors import InvalidParameterError

MEAN, STD = (1000.0, 20000.0, 40000.0), (250.0, 3000.0, 500.0)


def window_oracle(path, window, bands, pad_value=0):
    with rasterio.open(path) as src:
        data = src.read(bands)
        nodata = src.nodata
    out = np.full((len(bands), window.height, window.width), pad_value, dtype=data.dtype)
    inside = np.zeros((window.height, window.width), dtype=bool)
    for r in range(window.height):
        for c in range(window.width):
            rr, cc = window.row_off + r, window.col_off + c
            if 0 <= rr < data.shape[1] and 0 <= cc < data.shape[2]:
                out[:, r, c] = data[:, rr, cc]
                inside[r, c] = True
    if nodata is None:
        valid = inside
    elif np.isnan(nodata):
        valid = inside & ~np.isnan(out).all(axis=0)
    else:
        valid = inside & (out != nodata).any(axis=0)
    return out, valid, nodata


def expected(path, window, bands, mean, std, dtype=np.float32, scale=(1.0, 0.0)):
    raw, valid, _ = window_oracle(path, window, bands)
    x = raw.astype(dtype)
    if scale != (1.0, 0.0):
        x = x * dtype(scale[0]) + dtype(scale[1])
    m = np.asarray(mean, dtype=dtype)[:, None, None]
    s = np.asarray(std, dtype=dtype)[:, None, None]
    out = (x - m) / s
    out[:, ~valid] = 0.0
    return out, valid


@pytest.fixture
def padded(make_scene):
    """A 3-band uint16 scene with a nodata block, chipped with edge="pad"."""
    data = geochips.testing.position_values(3, 45, 52, "uint16")
    data[:, 5:12, 8:20] = 0  # nodata in every band
    data[1, 30:33, 30:40] = 0  # nodata in one band only: still valid
    path = make_scene(data=data, nodata=0)
    return path, geochips.ChipIndex.build([path], size=16, edge="pad")


def test_mean_std_tuples_give_exact_float32_with_invalid_pixels_at_zero(padded):
    path, index = padded
    ds = geochips.ChipDataset(index, normalize=(MEAN, STD))
    seen_pad = seen_nodata = False
    for i in range(len(ds)):
        sample = ds[i]
        want, valid = expected(path, sample["window"], [1, 2, 3], MEAN, STD)
        assert sample["image"].dtype == torch.float32
        np.testing.assert_array_equal(sample["image"].numpy(), want)
        np.testing.assert_array_equal(sample["valid"].numpy()[0], valid)
        seen_pad |= not valid.all() and sample["window"].row_off + 16 > 45
        seen_nodata |= bool((sample["image"].numpy() == 0).all(axis=0).any())
    assert seen_pad and seen_nodata


def test_getitems_collate_and_dataloader_workers_match_single_reads(padded):
    _, index = padded
    ds = geochips.ChipDataset(index, normalize=(MEAN, STD), threads=2)
    singles = [ds[i] for i in range(len(ds))]
    batch = geochips.collate(ds.__getitems__(list(range(len(ds)))))
    assert torch.equal(batch["image"], torch.stack([s["image"] for s in singles]))
    assert torch.equal(batch["valid"], torch.stack([s["valid"] for s in singles]))


@pytest.mark.slow
@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_dataloader_workers_give_the_same_normalised_batches(padded, context):
    _, index = padded
    ds = geochips.ChipDataset(index, normalize=(MEAN, STD))
    loader = DataLoader(
        ds, batch_size=5, num_workers=2, collate_fn=geochips.collate,
        multiprocessing_context=multiprocessing.get_context(context),
    )  # fmt: skip
    images, valids = [], []
    for batch in loader:
        images.append(batch["image"].clone())
        valids.append(batch["valid"].clone())
    assert torch.equal(torch.cat(images), torch.stack([ds[i]["image"] for i in range(len(ds))]))
    assert torch.equal(torch.cat(valids), torch.stack([ds[i]["valid"] for i in range(len(ds))]))


def test_stats_come_from_the_index_and_travel_through_save_and_load(make_scene, tmp_path):
    path = make_scene(height=64, width=64, count=2, nodata=0, overviews=(2,))
    index = geochips.record_band_stats(geochips.ChipIndex.build([path], size=16))
    index.save(tmp_path / "chips.parquet")
    loaded = geochips.ChipIndex.load(tmp_path / "chips.parquet")
    ds = geochips.ChipDataset(loaded, normalize="stats")
    stats = index.band_stats
    sample = ds[3]
    want, _ = expected(path, sample["window"], [1, 2], stats.mean, stats.std)
    np.testing.assert_array_equal(sample["image"].numpy(), want)
    # Another index (a validation split) normalised with these statistics.
    other = geochips.ChipDataset(index[:4], normalize=stats, bands=[2])
    want, _ = expected(path, other[1]["window"], [2], stats.mean[1:], stats.std[1:])
    np.testing.assert_array_equal(other[1]["image"].numpy(), want)


def test_float64_and_scale_are_respected(make_scene):
    path = make_scene(height=32, width=32, count=1, overviews=(2,))
    with rasterio.open(path, "r+") as dst:
        dst.scales, dst.offsets = (0.5,), (-10.0,)
    index = geochips.ChipIndex.build([path], size=16)
    ds = geochips.ChipDataset(index, normalize=(100.0, 7.0), dtype="float64", scale=True)
    sample = ds[1]
    want, _ = expected(path, sample["window"], [1], [100.0], [7.0], np.float64, (0.5, -10.0))
    assert sample["image"].dtype == torch.float64 and "valid" not in sample
    np.testing.assert_array_equal(sample["image"].numpy(), want)
    scaled = geochips.record_band_stats(index, scale=True)
    assert geochips.ChipDataset(scaled, normalize="stats", scale=True)[0]["image"].abs().max() < 5
    with pytest.raises(InvalidParameterError, match=r"scaled values but .* scale=False"):
        geochips.ChipDataset(scaled, normalize="stats")


def test_float32_scenes_read_straight_into_the_batch_are_normalised_too(make_scene):
    data = geochips.testing.position_values(1, 32, 32, "float32")
    data[0, :3] = np.nan
    path = make_scene(data=data, nodata=np.nan)
    index = geochips.ChipIndex.build([path], size=16)
    ds = geochips.ChipDataset(index, normalize=(800.0, 400.0))
    assert ds._out_dtypes[0] == np.dtype(index.scenes[0].dtype)  # GDAL reads into the batch
    batch = geochips.collate(ds.__getitems__([0, 1, 2, 3]))
    for i in range(4):
        want, _ = expected(path, ds[i]["window"], [1], [800.0], [400.0])
        np.testing.assert_array_equal(batch["image"][i].numpy(), want)
    assert not batch["valid"][0, 0, :3].any() and (batch["image"][0, 0, :3] == 0).all()


CONTRADICTIONS = [
    ({"normalize": "stats"}, "needs an index with band statistics.*record_band_stats"),
    ({"normalize": (MEAN, STD), "dtype": "uint16"}, "dtype='uint16' cannot hold"),
    ({"normalize": (MEAN, STD), "dtype": "int32"}, "dtype='int32' cannot hold"),
    ({"normalize": (MEAN, (1.0, 0.0, 1.0))}, "finite, positive stds"),
    ({"normalize": ((1.0, 2.0), STD)}, "mean must be a number or 3 numbers"),
    ({"normalize": "mean"}, "normalize must be None, 'stats'"),
    ({"normalize": [MEAN, STD]}, "normalize must be None, 'stats'"),
]


@pytest.mark.parametrize(("kwargs", "message"), CONTRADICTIONS)
def test_contradictions_are_refused_with_the_fix(padded, kwargs, message):
    _, index = padded
    with pytest.raises(InvalidParameterError, match=message):
        geochips.ChipDataset(index, **kwargs)


def test_statistics_of_other_bands_are_refused(make_scene):
    path = make_scene(height=32, width=32, count=3, overviews=(2,))
    index = geochips.record_band_stats(geochips.ChipIndex.build([path], size=16), bands=[1])
    with pytest.raises(InvalidParameterError, match=r"cover bands \[1\], not bands \[2, 3\]"):
        geochips.ChipDataset(index, normalize="stats")
    assert geochips.ChipDataset(index, normalize="stats", bands=[1])[0]["image"].shape[0] == 1
