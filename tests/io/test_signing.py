"""Signing: lazy, cached until near expiry, re-signed on refusal, never leaked.

The Planetary Computer path runs the real SDK against a token service on 127.0.0.1
(``PC_SDK_SAS_URL``) and a blob store that answers 403 to expired tokens
(tests/support/localserver.py);
blob hrefs keep their real ``*.blob.core.windows.net`` host and reach the local server
through ``GDAL_HTTP_PROXY``, so nothing here can reach the real endpoint.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
import pickle
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio._env import del_gdal_config
from rasterio.windows import Window
from support.localserver import ServerProcess
from torch.utils.data import DataLoader

import geochips
from geochips.errors import SceneReadError
from geochips.io.headers import read_header
from geochips.io.signing import (
    HrefSigner,
    PlanetaryComputerSigner,
    expiry,
    is_blob_href,
    planetary_computer_sas,
    resolve_signer,
    strip_sas,
)
from geochips.scene import SceneSource

DATA = Path(__file__).parents[1] / "data" / "stac"
SAMPLE = Path(geochips.__file__).parent / "sample_data"
BLOB = "https://sentinel1euwest.blob.core.windows.net/s1-grd/GRD/x/measurement/iw-vv.tiff"
SAS = "st=2026-01-01T00:00:00Z&se=2026-01-01T01:00:00Z&sp=rl&sv=2024-05-04&sr=c&sig=SECRETabc"


# -- pure functions -----------------------------------------------------------------------


def test_expiry_is_read_from_sas_and_presigned_s3_urls():
    assert expiry(f"{BLOB}?{SAS}") == pytest.approx(1767229200.0)  # 2026-01-01T01:00Z
    s3 = "https://b.s3.amazonaws.com/k.tif?X-Amz-Date=20260101T000000Z&X-Amz-Expires=600&X-Amz-Signature=s"
    assert expiry(s3) == pytest.approx(1767225600.0 + 600)
    assert expiry(BLOB) is None
    assert expiry("https://host/x.tif?token=abc") is None


def test_strip_sas_keeps_other_query_parameters():
    assert strip_sas(f"{BLOB}?{SAS}") == BLOB
    assert strip_sas(f"{BLOB}?version=3&{SAS}") == f"{BLOB}?version=3"
    assert strip_sas("/local/a.tif") == "/local/a.tif"


def test_blob_hrefs_are_recognised():
    assert is_blob_href(BLOB)
    assert not is_blob_href("https://planetarycomputer.microsoft.com/api/data/v1/item/x.png")
    assert not is_blob_href("/data/sentinel1euwest.blob.core.windows.net.tif")


def test_auto_signs_only_blob_hrefs():
    assert resolve_signer("auto", ["/a.tif", "https://host/b.tif"]) is None
    signer = resolve_signer("auto", ["/a.tif", BLOB])
    assert isinstance(signer, HrefSigner) and isinstance(signer.sign, PlanetaryComputerSigner)
    assert resolve_signer(None, [BLOB]) is None
    with pytest.raises(geochips.InvalidParameterError, match="sign must be"):
        resolve_signer("azure")


def test_a_dataset_can_replace_the_index_signer():
    scene = read_header(SceneSource("vv", (str(SAMPLE / "scene_band1.tif"),)))
    index = geochips.ChipIndex.from_scenes([dataclasses.replace(scene, hrefs=(BLOB,))], size=64)
    assert index.signer is None and geochips.ChipDataset(index).reader.signer is None
    auto = geochips.ChipDataset(index, sign="auto").reader.signer
    assert isinstance(auto, HrefSigner) and isinstance(auto.sign, PlanetaryComputerSigner)
    signed = geochips.ChipIndex.from_scenes([scene], size=64, signer=HrefSigner(str.upper))
    assert geochips.ChipDataset(signed, sign=None).reader.signer is None


def test_planetary_computer_signer_leaves_other_hrefs_alone_without_network():
    sign = PlanetaryComputerSigner()
    for href in (
        "/data/a.tif",
        "https://example.com/a.tif",
        "https://ai4edatasetspublicassets.blob.core.windows.net/assets/x.png",
    ):
        assert sign(href) == href


class CountingSigner:
    """A picklable signer issuing SAS-like tokens that last ``lifetime`` seconds."""

    def __init__(self, lifetime: float) -> None:
        self.lifetime = lifetime
        self.calls = 0

    def __call__(self, href: str) -> str:
        self.calls += 1
        now = time.time()
        stamp = "%Y-%m-%dT%H:%M:%SZ"
        st = time.strftime(stamp, time.gmtime(now))
        se = time.strftime(stamp, time.gmtime(now + self.lifetime))
        return f"{href}?st={st}&se={se}&sig=SECRET{self.calls}"


def test_signed_hrefs_are_reused_until_their_token_nears_expiry():
    sign = CountingSigner(lifetime=3600)
    signer = HrefSigner(sign)
    first = signer("https://host/a.tif")
    assert signer("https://host/a.tif") == first
    assert sign.calls == 1
    signer("https://host/b.tif")
    assert sign.calls == 2
    # An already-expired token is replaced at once.
    expired = HrefSigner(CountingSigner(lifetime=-10))
    expired("https://host/a.tif")
    expired("https://host/a.tif")
    assert expired.calls == 2


def test_refresh_signs_once_for_a_burst_of_failures():
    signer = HrefSigner(CountingSigner(lifetime=3600))
    failed = signer("https://host/a.tif")
    renewed = signer.refresh("https://host/a.tif", failed=failed)
    assert renewed != failed
    # Other threads that failed with the old signature get the new one, unsigned again.
    assert signer.refresh("https://host/a.tif", failed=failed) == renewed
    assert signer.calls == 2


def test_a_signer_pickles_without_its_signatures():
    signer = HrefSigner(CountingSigner(lifetime=3600))
    signed = signer("https://host/a.tif")
    clone = pickle.loads(pickle.dumps(signer))
    assert isinstance(clone.sign, CountingSigner) and clone.margin == signer.margin
    assert "SECRET" not in repr(clone) and not clone._cache
    assert "SECRET" in signed


def test_a_signer_must_return_a_string(make_scene):
    path = make_scene(height=32, width=32, count=1)
    with pytest.raises(geochips.InvalidParameterError, match="must return the signed href"):
        geochips.ChipIndex.build(path, size=16, sign=lambda href: None)


# -- Planetary Computer against a local token service and blob store ------------------------


@pytest.fixture
def pc_env(monkeypatch):
    """Point the Planetary Computer SDK at ``server.sas_url`` and forget cached tokens."""
    sas = planetary_computer_sas()
    Settings = sas.Settings

    def use(server: ServerProcess) -> None:
        monkeypatch.setenv("PC_SDK_SAS_URL", server.sas_url)
        monkeypatch.delenv("PC_SDK_SUBSCRIPTION_KEY", raising=False)
        Settings.get.cache_clear()
        sas.TOKEN_CACHE.clear()

    yield use
    Settings.get.cache_clear()
    sas.TOKEN_CACHE.clear()
    del_gdal_config("GDAL_HTTP_PROXY")  # the Reader sets options process-wide


def blob_catalog(root: Path, *, signed: str = "") -> tuple[Path, str]:
    """Lay out the real S1 GRD item's vv/vh COGs (cog_gcps.tif) as on blob storage.

    Hrefs keep their host and path; only ``https`` becomes ``http`` so that
    ``GDAL_HTTP_PROXY`` can carry them to the local server. Returns the item path and
    the vv href.
    """
    item = json.loads((DATA / "s1-grd.json").read_text())
    for key in ("vv", "vh"):
        href = item["assets"][key]["href"]
        path = href.split(".blob.core.windows.net/", 1)[1]
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SAMPLE / "cog_gcps.tif", root / path)
        item["assets"][key]["href"] = href.replace("https://", "http://") + signed
    item_path = root / "item.json"
    item_path.write_text(json.dumps(item))
    return item_path, item["assets"]["vv"]["href"]


def local_pixels(level: int | None, window: geochips.ChipWindow) -> np.ndarray:
    kwargs = {} if level is None else {"overview_level": level}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(SAMPLE / "cog_gcps.tif", **kwargs) as src:
            rows, cols = window.slices()
            return src.read(1, window=Window.from_slices(rows, cols))


def test_planetary_computer_items_are_signed_lazily_and_stored_unsigned(
    tmp_path, pc_env, caplog, capsys
):
    caplog.set_level(logging.DEBUG)
    with ServerProcess(tmp_path, lifetime=600) as server:
        pc_env(server)
        # A pystac-client search with modifier=sign_inplace hands over signed hrefs.
        item, _ = blob_catalog(tmp_path, signed=f"?{SAS}")
        options = {"GDAL_HTTP_PROXY": server.proxy}
        index = geochips.ChipIndex.build(
            item, assets=["vv", "vh"], overview_level=1, size=64, gdal_options=options
        )
        assert all("?" not in h for s in index.scenes for h in s.hrefs)  # unsigned
        assert server.token_calls() == 1  # one token per container, for both assets
        ds = geochips.ChipDataset(index, gdal_options=options)
        sample = ds[3]
        expected = local_pixels(1, sample["window"])
        assert np.array_equal(sample["image"][0].numpy(), expected)
        assert np.array_equal(sample["image"][1].numpy(), expected)
        assert server.token_calls() == 1  # the header reads' signature is reused
        # A spawned worker gets the dataset pickled: no signature travels, it signs anew.
        clone = pickle.loads(pickle.dumps(ds))
        assert np.array_equal(clone[3]["image"], sample["image"])
        assert clone.reader.signer.calls == 2  # the clone signed both assets itself
        secrets = server.tokens() + ["SECRETabc"]
        requests = server.take()
        assert all(r.status in (200, 206) for r in requests)
        saved = tmp_path / "index.parquet"
        if importlib.util.find_spec("pyarrow") is not None:
            index.save(saved)
            reloaded = geochips.ChipIndex.load(saved)
            assert reloaded.scenes[0].hrefs == index.scenes[0].hrefs
            assert isinstance(reloaded.signer, HrefSigner)  # "auto" signs blob hrefs again
            for secret in secrets:
                assert secret.encode() not in saved.read_bytes()
        text = "\n".join(
            [repr(index), index.describe(), repr(ds), repr(index.signer), str(pickle.dumps(index))]
            + [str(s) for s in index.scenes]
            + [r.getMessage() for r in caplog.records]
            + list(capsys.readouterr())
        )
        for secret in secrets:
            assert secret not in text


@pytest.fixture
def revoking(tmp_path, pc_env):
    """The S1 item on a blob store whose tokens say 10 minutes but are refused after 1 s.

    (Revoked, or skewed clocks): no renewal ahead of expiry helps, the blob store's 403
    must drive it. Yields the server, the item path and the GDAL options reaching it.
    """
    with ServerProcess(tmp_path, lifetime=600, refuse_after=1) as server:
        pc_env(server)
        item, _ = blob_catalog(tmp_path)
        yield server, item, {"GDAL_HTTP_PROXY": server.proxy}


def test_a_refused_signature_is_renewed_once_and_the_read_retried(revoking):
    server, item, options = revoking
    index = geochips.ChipIndex.build(item, assets=["vv"], size=256, gdal_options=options)
    ds = geochips.ChipDataset(index, gdal_options=options, threads=1)
    ds[0]  # opens the file with the first token
    first = server.token_calls()
    time.sleep(1.2)  # the open handle's next tiles get 403
    sample = ds[len(ds) - 1]
    assert np.array_equal(sample["image"][0].numpy(), local_pixels(None, sample["window"]))
    assert server.denied() >= 1
    assert server.token_calls() == first + 1


def test_a_refused_read_straight_into_a_batch_is_retried_into_the_same_slot(revoking):
    # dtype="uint16": GDAL writes each chip into the batch tensor; a 403 halfway through a
    # chip is retried with a fresh token into the same slot, with nothing stale left.
    server, item, options = revoking
    index = geochips.ChipIndex.build(item, assets=["vv"], size=128, gdal_options=options)
    ds = geochips.ChipDataset(index, gdal_options=options, dtype="uint16", threads=2)
    ds.__getitems__([0, 1])  # both threads open the file with the first token
    time.sleep(1.2)
    positions = list(range(len(ds)))[::-1]
    images = geochips.collate(ds.__getitems__(positions))["image"]
    assert images.dtype == torch.uint16 and server.denied() >= 1
    for image, position in zip(images, positions, strict=True):
        expected = local_pixels(None, ds.index.window(position))
        assert np.array_equal(image[0].numpy(), expected)


def test_a_signature_that_stays_refused_is_an_error_without_the_token(tmp_path, pc_env):
    def forged(href: str) -> str:  # a token the blob store never issued
        return f"{href}?{SAS}"

    with ServerProcess(tmp_path, lifetime=60) as server:
        pc_env(server)
        _, href = blob_catalog(tmp_path)
        with pytest.raises(geochips.SceneHeaderError) as header_error:
            geochips.ChipIndex.build(
                href, size=64, sign=forged, gdal_options={"GDAL_HTTP_PROXY": server.proxy}
            )
        message = str(header_error.value)
        assert "SECRETabc" not in message and "iw-vv.tiff" in message
        # Same at read time, after a retry with a fresh (equally forged) signature.
        scene = read_header(SceneSource("vv", (str(SAMPLE / "cog_gcps.tif"),)))
        scene = dataclasses.replace(scene, hrefs=(href,))
        index = geochips.ChipIndex.from_scenes([scene], size=64, signer=HrefSigner(forged))
        ds = geochips.ChipDataset(index, gdal_options={"GDAL_HTTP_PROXY": server.proxy})
        with pytest.raises(SceneReadError) as read_error:
            ds[0]
        message = str(read_error.value)
        assert "SECRETabc" not in message and "iw-vv.tiff" in message and "sign=" in message


@pytest.mark.slow
def test_dataloader_workers_run_across_token_expiry(tmp_path, pc_env):
    lifetime = 2  # whole seconds, as SAS expiries are: tokens last between 1 and 2 s
    with ServerProcess(tmp_path, lifetime=lifetime) as server:
        pc_env(server)
        item, _ = blob_catalog(tmp_path)
        options = {"GDAL_HTTP_PROXY": server.proxy}
        index = geochips.ChipIndex.build(
            item, assets=["vv"], size=64, stride=128, gdal_options=options
        )
        # Two threads per worker (as __getitems__ reads remote chips) share its signer.
        ds = geochips.ChipDataset(index, gdal_options=options, transform=_slow, threads=2)
        loader = DataLoader(
            ds,
            batch_size=4,
            num_workers=2,
            collate_fn=geochips.collate,
            multiprocessing_context="fork",
        )
        started = time.time()
        seen = 0
        for batch in loader:
            for image, window in zip(batch["image"], batch["window"], strict=True):
                assert np.array_equal(image[0].numpy(), local_pixels(None, window))
                seen += 1
        elapsed = time.time() - started
        assert seen == len(ds)
        assert elapsed > lifetime + 1  # the build's token expired during the run
        assert server.token_calls() >= 2
        # Signing calls grow with time and workers, not with chips: each worker renews
        # at most every (1 s of shortest life - 1/4 of the 2 s lifetime) = 0.5 s.
        assert server.token_calls() <= 1 + 2 * (elapsed / 0.5 + 1) < len(ds)


def _slow(sample):
    time.sleep(0.2)
    return sample


def _leaky_signer(href: str) -> str:
    return href + "?se=2099-01-01T00%3A00%3A00Z&sig=TOPSECRETTOKEN"


def test_no_exception_in_a_read_error_chain_holds_the_token(make_scene, tmp_path):
    # GDAL cannot open "scene.tif?sig=...", so the open fails and is retried once with a
    # fresh signature; the error raised must carry the token nowhere, not even in the
    # exception context that `raise ... from None` only hides.
    path = make_scene("scene.tif", height=16, width=16, count=1)
    index = geochips.ChipIndex.build([path], size=16)
    dataset = geochips.ChipDataset(index, sign=_leaky_signer)
    with pytest.raises(SceneReadError) as caught:
        dataset[0]
    chain, error = [], caught.value
    while error is not None:
        chain.append(error)
        error = error.__cause__ or error.__context__
    assert len(chain) == 1
    assert "TOPSECRETTOKEN" not in str(caught.value) + repr(caught.value.args)
