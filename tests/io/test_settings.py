"""Which GDAL options are in force while geochips reads: all of them, or the local ones."""

from pathlib import Path

import pytest
from rasterio.env import get_gdal_config

from geochips import ChipIndex
from geochips.io.reader import Reader
from geochips.io.settings import reads_network

SEEN: list[tuple[object, object]] = []


def probe(href):
    """A signer: called while a file is opened and read, it notes the options then."""
    SEEN.append((get_gdal_config("GDAL_HTTP_MAX_RETRY"), get_gdal_config("GDAL_CACHEMAX")))
    return href


def vrt_of(path: str, size: int) -> str:
    """A VRT over ``path`` (a local file that could as well name a URL)."""
    vrt = Path(path).with_suffix(".vrt")
    vrt.write_text(
        f'<VRTDataset rasterXSize="{size}" rasterYSize="{size}">'
        '<VRTRasterBand dataType="UInt16" band="1"><SimpleSource>'
        f'<SourceFilename relativeToVRT="0">{path}</SourceFilename><SourceBand>1</SourceBand>'
        "</SimpleSource></VRTRasterBand></VRTDataset>"
    )
    return str(vrt)


def test_only_local_geotiffs_are_read_without_the_network_options():
    assert not reads_network(["/data/a.tif", "/data/b.TIFF"])
    for href in ["/data/a.vrt", "/vsizip//vsicurl/https://x/a.zip/a.tif", "https://x/a.tif"]:
        assert reads_network(["/data/a.tif", href]), href


@pytest.mark.parametrize(
    ("options", "kind", "http"),
    [
        ({}, "tif", None),  # a local GeoTIFF reads nothing over the network
        ({}, "vrt", 3),  # a VRT may name URLs: every default is set
        ({"GDAL_HTTP_MAX_RETRY": 5}, "tif", 5),  # what the user sets is always set
    ],
)
def test_reads_set_the_network_options_only_where_they_can_matter(make_scene, options, kind, http):
    tif = make_scene(height=32, width=32, count=1, crs=None)
    path = tif if kind == "tif" else vrt_of(tif, 32)
    scene = ChipIndex.build([path], size=16).scenes[0]
    reader = Reader(gdal_options=options, signer=probe)
    SEEN.clear()
    reader.read(scene, ChipIndex.from_scenes([scene], size=16).window(0))
    assert SEEN and all(seen == (http, 128 * 1024 * 1024) for seen in SEEN), SEEN
    assert get_gdal_config("GDAL_HTTP_MAX_RETRY") is None  # undone after the read


def test_a_local_scope_gains_the_network_options_for_a_read_that_needs_them(make_scene):
    tif = make_scene(height=32, width=32, count=1, crs=None)
    local, vrt = (ChipIndex.build([p], size=16).scenes[0] for p in (tif, vrt_of(tif, 32)))
    window = ChipIndex.from_scenes([local], size=16).window(0)
    reader = Reader(signer=probe)
    SEEN.clear()
    with reader.scope(network=False):  # as ds[i] over local GeoTIFFs, which then reads
        reader.read(local, window)  # (raster labels, say) a VRT through the same reader
        reader.read(vrt, window)
        back_to_local = get_gdal_config("GDAL_HTTP_MAX_RETRY")
    # The signer is called as each file is first opened (then its signature is reused).
    assert [http for http, _ in SEEN] == [None, 3]
    assert back_to_local is None and get_gdal_config("GDAL_HTTP_MAX_RETRY") is None
