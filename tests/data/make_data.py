"""Regenerate the derived files of tests/data from the shared data collection (run by hand).

``mosaic_cog1_ov0.tif`` and ``mosaic_cog2_ov0.tif`` are the first overview (factor 2, the
files' own overview pixels, not resampled again) of rio-tiler's ``mosaic_cog1.tif`` and
``mosaic_cog2.tif``, rewritten as COGs (``geochips.testing.write_scene``) with the transform
scaled to match, so the pair keeps its overlap, CRS and nodata border at a quarter of the
size. The other files are verbatim copies (see README.md).

Usage: ``python tests/data/make_data.py /path/to/shared/data``
"""

import shutil
import sys
from pathlib import Path

import rasterio

from geochips.testing import write_scene

HERE = Path(__file__).parent


def derive_overview(src_path: Path, dst_path: Path) -> None:
    with rasterio.open(src_path) as full:
        crs, nodata = full.crs, full.nodata
        with rasterio.open(src_path, overview_level=0) as ovr:
            data = ovr.read()
            transform = ovr.transform
    write_scene(
        dst_path,
        data=data,
        crs=crs.to_string(),
        transform=transform,
        nodata=nodata,
        layout="cog",
        blocksize=256,
        overviews=(2,),
    )


def main(shared: Path) -> None:
    tiler = shared / "rio-tiler"
    for name in ("cog_dateline.tif", "cog_nodata.tif"):
        shutil.copyfile(tiler / name, HERE / name)
    shutil.copyfile(shared / "solaris" / "geotiff_labels.geojson", HERE / "solaris_labels.geojson")
    for name in ("mosaic_cog1", "mosaic_cog2"):
        derive_overview(tiler / f"{name}.tif", HERE / f"{name}_ov0.tif")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
