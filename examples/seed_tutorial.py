"""The seed tutorial (zen3geo's "Chipping and batching data"), written with geochips.

Sentinel-1 GRD STAC items from Planetary Computer -> the ``vv`` asset at overview level 3
-> 512 x 512 chips, without and with 256 px of overlap -> batches of 10 -> tensors of shape
``(10, 1, 512, 512)``. Nothing is signed up front: hrefs are signed in the process that
reads them, and signed again before the token expires.

    python examples/seed_tutorial.py            # offline: a local STAC catalog + HTTP server
    python examples/seed_tutorial.py --online   # the tutorial's items, on Planetary Computer

Offline, a real Sentinel-1 GRD item (examples/data) is served from 127.0.0.1 with its
``vv``/``vh`` hrefs pointing at a copy of ``geochips/sample_data/cog_gcps.tif``, a real but
downsampled GRD swath (1280 x 837 px): chips are smaller (128 px at overview 0) so that it
yields as many chips as a full scene does. The code that chips and batches is the same.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pystac
from torch.utils.data import DataLoader

import geochips

# The loopback servers are test infrastructure (tests/support), not part of the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.localserver import ServerProcess  # noqa: E402

from geochips import sample_data

# The two scenes of the tutorial (Osaka and Tokyo, June 2022).
ITEM_URLS = [
    "https://planetarycomputer.microsoft.com/api/stac/v1/collections/sentinel-1-grd/items/"
    "S1A_IW_GRDH_1SDV_20220614T210034_20220614T210059_043664_05368A",
    "https://planetarycomputer.microsoft.com/api/stac/v1/collections/sentinel-1-grd/items/"
    "S1A_IW_GRDH_1SDV_20220616T204349_20220616T204414_043693_053764",
]
ONLINE = {"overview_level": 3, "size": 512, "overlap": 256}
OFFLINE = {"overview_level": 0, "size": 128, "overlap": 64}
ITEM = Path(__file__).parent / "data" / "s1-grd-item.json"


def chip_and_batch(
    items: list[pystac.Item], *, overview_level: int, size: int, overlap: int
) -> None:
    """The tutorial: chips of ``vv`` without and with overlap, in batches of 10."""
    for label, grid in (("no overlap", {}), (f"{overlap} px overlap", {"overlap": overlap})):
        index = geochips.ChipIndex.build(
            items,
            assets=["vv"],
            overview_level=overview_level,
            size=size,
            properties=["datetime", "sat:orbit_state"],
            **grid,
        )
        print(f"{label}: {len(index)} chips of {size} x {size} px")
        print(index.describe())
        dataset = geochips.ChipDataset(index, dtype="float32")
        loader = DataLoader(dataset, batch_size=10, num_workers=2, collate_fn=geochips.collate)
        batch = next(iter(loader))
        print(f"  first batch: image {tuple(batch['image'].shape)}, e.g. {batch['chip_id'][0]}")


@contextmanager
def local_catalog() -> Iterator[list[str]]:
    """Serve a static STAC catalog built from the sample data; yield its item URLs."""
    with tempfile.TemporaryDirectory() as folder, ServerProcess(folder) as server:
        root = Path(folder)
        item = json.loads(ITEM.read_text())
        for key in ("vv", "vh"):
            # Keep the blob path, served from the local server instead of Azure.
            path = item["assets"][key]["href"].split(".blob.core.windows.net/", 1)[1]
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(sample_data.path("cog_gcps.tif"), root / path)
            item["assets"][key]["href"] = f"{server.url}/{path}"
        (root / "items").mkdir()
        (root / "items" / f"{item['id']}.json").write_text(json.dumps(item))
        yield [f"{server.url}/items/{item['id']}.json"]


def main() -> None:
    """Run the tutorial offline, or against Planetary Computer with ``--online``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--online", action="store_true", help="read from Planetary Computer")
    args = parser.parse_args()
    if args.online:
        items = [pystac.Item.from_file(url) for url in ITEM_URLS]
        chip_and_batch(items, **ONLINE)
        return
    with local_catalog() as urls:
        items = [pystac.Item.from_file(url) for url in urls]
        chip_and_batch(items, **OFFLINE)


if __name__ == "__main__":
    main()
