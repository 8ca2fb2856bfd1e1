import numpy as np
import pytest
import rasterio

from geochips import ChipDataset, ChipIndex, sample_data
from geochips.errors import IncompatibleScenesError, SceneHeaderError
from geochips.io.headers import read_header, read_headers
from geochips.sources import SceneSource


def source(*paths, id="s"):
    return SceneSource(id, tuple(str(p) for p in paths))


def test_header_of_a_cog(make_scene):
    path = make_scene(height=70, width=90, count=2, dtype="int16", nodata=-9, blocksize=32)
    scene = read_header(source(path))
    assert (scene.height, scene.width, scene.count, scene.dtype) == (70, 90, 2, "int16")
    assert scene.nodata == -9
    assert scene.crs == "EPSG:32618"
    assert scene.georef == "transform"
    assert tuple(scene.transform)[:6] == (10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0)
    assert scene.tile_shape == (32, 32)
    assert scene.scales == (1.0, 1.0) and scene.offsets == (0.0, 0.0)


def test_overview_levels_follow_gdal(make_scene):
    path = make_scene(height=256, width=192, count=1, blocksize=32, overviews=(2, 4))
    with rasterio.open(path) as src:
        factors = src.overviews(1)
    for level, factor in enumerate(factors):
        scene = read_header(source(path), overview_level=level)
        with rasterio.open(path, overview_level=level) as ovr:
            assert (scene.height, scene.width) == (ovr.height, ovr.width)
            assert scene.transform == ovr.transform
        assert scene.height == -(-256 // factor)
        assert scene.full_shape == (256, 192)


def test_missing_overview_level_is_a_clear_error(make_scene):
    path = make_scene(height=64, width=64, count=1, blocksize=16, overviews=(2,))
    with rasterio.open(path) as src:
        count = len(src.overviews(1))
    with pytest.raises(SceneHeaderError, match=f"has {count} overview level.*overview_level=5"):
        read_header(source(path), overview_level=5)


def test_gcp_only_scene_keeps_scaled_gcps_and_a_fitted_transform():
    path = sample_data.path("cog_gcps.tif")
    full = read_header(source(path))
    ovr = read_header(source(path), overview_level=1)
    assert full.georef == ovr.georef == "gcps"
    assert full.crs == "EPSG:4326"
    assert not full.transform.is_identity and not ovr.transform.is_identity
    with rasterio.open(path) as src:
        gcps = src.gcps[0]
    # The fitted transform maps each GCP's pixel to within ~2 km of its ground position.
    errors = [np.hypot(*np.subtract(full.transform @ (g.col, g.row), (g.x, g.y))) for g in gcps]
    assert max(errors) < 0.02
    # At overview level 1 (factor 4), the GCPs are scaled to the smaller grid.
    sy, sx = ovr.height / full.height, ovr.width / full.width
    assert ovr.gcps[5][:2] == pytest.approx((gcps[5].row * sy, gcps[5].col * sx))
    corner = np.array(ovr.transform @ (ovr.width, ovr.height))
    assert corner == pytest.approx(np.array(full.transform @ (full.width, full.height)), abs=1e-6)


def test_scene_without_any_georeferencing(make_scene):
    path = make_scene(height=20, width=20, count=1, crs=None)
    scene = read_header(source(path))
    assert (scene.georef, scene.crs, scene.transform) == ("none", None, None)


def test_stacked_files_must_share_a_grid(make_scene):
    a = make_scene(height=30, width=30, count=1)
    b = make_scene(height=30, width=31, count=1)
    with pytest.raises(IncompatibleScenesError, match=r"shape \(30, 31\) vs \(30, 30\)"):
        read_header(source(a, b))
    c = make_scene(height=30, width=30, count=2)
    stacked = read_header(source(a, c))
    assert stacked.count == 3 and stacked.band_counts == (1, 2)


def test_missing_and_non_raster_files_are_reported_together(tmp_path, make_scene):
    good = make_scene()
    text = tmp_path / "notes.tif"
    text.write_text("not a raster")
    sources = [
        source(good, id="good"),
        source(tmp_path / "gone.tif", id="gone"),
        source(text, id="notes"),
    ]
    with pytest.raises(SceneHeaderError) as caught:
        read_headers(sources)
    message = str(caught.value)
    assert "2 of 3 scenes failed" in message
    assert "'gone'" in message and "gone.tif" in message
    assert "'notes'" in message and "notes.tif" in message
    assert isinstance(caught.value, OSError)


def test_reading_headers_never_reads_pixels(make_scene, monkeypatch):
    paths = [make_scene(height=64, width=64, overviews=(2,)) for _ in range(3)]

    def refuse(*args, **kwargs):
        raise AssertionError("pixels were read while building the index")

    monkeypatch.setattr(rasterio.io.DatasetReader, "read", refuse)
    monkeypatch.setattr(rasterio.io.DatasetReader, "read_masks", refuse)
    monkeypatch.setattr(rasterio.io.DatasetReader, "dataset_mask", refuse)
    index = ChipIndex.build(paths, size=16, overview_level=0)
    assert len(index) == 3 * 2 * 2  # 32x32 at overview 0
    with pytest.raises(AssertionError, match="pixels were read"):
        rasterio.open(paths[0]).read(1)  # the guard works


def test_a_geotransform_without_crs_is_kept(make_scene):
    from affine import Affine

    path = make_scene(height=20, width=20, count=1, crs=None)
    with pytest.warns(rasterio.errors.NotGeoreferencedWarning):
        with rasterio.open(path, "r+") as dst:  # rasterio warns before the transform is set
            dst.transform = Affine(2.0, 0.0, 100.0, 0.0, -2.0, 50.0)
    scene = read_header(source(path))
    assert (scene.georef, scene.crs) == ("transform", None)
    assert scene.transform == Affine(2.0, 0.0, 100.0, 0.0, -2.0, 50.0)


def _refusing_signer(href: str) -> str:
    from geochips.errors import SceneReadError

    raise SceneReadError(f"the token service refused to sign {href}")


def test_signing_failures_are_collected_with_the_other_failures(make_scene):
    paths = [make_scene(), make_scene()]
    sources = [source(p, id=f"s{i}") for i, p in enumerate(paths)]
    with pytest.raises(SceneHeaderError, match="2 of 2 scenes failed") as caught:
        read_headers(sources, signer=_refusing_signer)
    assert str(caught.value).count("the token service refused") == 2


@pytest.fixture
def external_sidecars(make_scene, tmp_path):
    """A GeoTIFF whose overviews (.ovr) and scale/offset (.aux.xml) live beside it."""
    from rasterio.enums import Resampling

    path = make_scene("sidecars.tif", height=64, width=64, count=1, dtype="int16")
    with rasterio.Env(TIFF_USE_OVR=True), rasterio.open(path, "r+") as dst:
        dst.build_overviews([2, 4], Resampling.nearest)
    (tmp_path / "sidecars.tif.aux.xml").write_text(
        '<PAMDataset><PAMRasterBand band="1"><Offset>5</Offset><Scale>0.5</Scale>'
        "</PAMRasterBand></PAMDataset>"
    )
    assert (tmp_path / "sidecars.tif.ovr").exists()
    return path


def test_local_side_car_files_are_found(external_sidecars):
    # Remote opens skip side-car probes (GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR); local
    # opens must not, or external overviews and .aux.xml metadata silently vanish.
    scene = read_header(source(external_sidecars), overview_level=1)
    assert (scene.height, scene.width) == (16, 16)
    assert scene.scales == (0.5,) and scene.offsets == (5.0,)
    dataset = ChipDataset(ChipIndex.build([external_sidecars], size=8, overview_level=1))
    with rasterio.open(external_sidecars, overview_level=1) as src:
        np.testing.assert_array_equal(
            dataset[3]["image"].numpy(),
            src.read(window=rasterio.windows.Window(col_off=8, row_off=8, width=8, height=8)),
        )


def test_gdal_options_reach_header_threads_from_any_thread(external_sidecars):
    import threading

    outcome = {}

    def build():
        try:
            ChipIndex.build(
                [external_sidecars],
                size=8,
                overview_level=1,
                workers=2,
                gdal_options={"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"},
            )
        except SceneHeaderError as exc:
            outcome["error"] = str(exc)

    thread = threading.Thread(target=build)
    thread.start()
    thread.join()
    # The user's option hid the .ovr file: the level is missing, as asked.
    assert "has 0 overview level(s)" in outcome["error"]
