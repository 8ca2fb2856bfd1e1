"""geochips: chips of satellite scenes (COGs, local or remote, found through STAC) for PyTorch.

**Usage**::

    import geochips
    from torch.utils.data import DataLoader

    index = geochips.ChipIndex.build(["a.tif", "b.tif"], size=512, overlap=256)  # headers only
    ds = geochips.ChipDataset(index)                 # reads each window lazily
    loader = DataLoader(ds, batch_size=16, shuffle=True, num_workers=2,
                        collate_fn=geochips.collate)  # batch["image"]: (16, C, 512, 512)

The index layer (build, select, split, save, load) never imports torch: the names of the
loading layer (:mod:`geochips.loading`) are imported on first use (PEP 562), so
``import geochips`` stays light where no model runs (an index server, the CLI's ``index``).
"""

import importlib
import warnings
from typing import TYPE_CHECKING, Any

from geochips.bandstats import BandStats
from geochips.errors import (
    ChipNotFoundError,
    CollateError,
    DtypeConversionError,
    GeochipsError,
    GeochipsWarning,
    IncompatibleScenesError,
    IndexFileError,
    InvalidParameterError,
    LeakageError,
    OverviewWarning,
    SceneChangedError,
    SceneHeaderError,
    SceneReadError,
    SmallSceneWarning,
    TileAlignmentWarning,
    TransformError,
)
from geochips.index import Chip, ChipIndex
from geochips.labels import RasterLabels, VectorLabels
from geochips.predict.stitcher import Stitcher
from geochips.scene import Scene
from geochips.select.aoi import filter_aoi
from geochips.select.checksums import record_checksums
from geochips.select.labels import filter_labels
from geochips.select.leakage import LeakageReport, check_leakage
from geochips.select.splits import SplitReport, Splits, spatial_split
from geochips.select.stats import band_stats, record_band_stats
from geochips.select.valid import estimate_valid
from geochips.tiles import AlignmentReport, check_alignment
from geochips.windows import ChipWindow

if TYPE_CHECKING:
    from geochips.loading.collate import collate
    from geochips.loading.dataset import ChipDataset
    from geochips.loading.samplers import BlockShuffleSampler
    from geochips.loading.samples import Sample

__version__ = "0.1.0"

# Names of the loading layer: importing them imports torch.
_LOADING = {
    "BlockShuffleSampler": "geochips.loading.samplers",
    "ChipDataset": "geochips.loading.dataset",
    "Sample": "geochips.loading.samples",
    "collate": "geochips.loading.collate",
}
# Internals exported by earlier versions, still reachable from their modules.
_MOVED = {
    "SceneSource": "geochips.scene",
    "find_sources": "geochips.sources",
    "read_header": "geochips.io.headers",
    "read_headers": "geochips.io.headers",
}


def __getattr__(name: str) -> Any:
    """Import the loading layer's names (and torch) on first use."""
    if name == "transforms":  # the module geochips.transforms, which imports torch
        return importlib.import_module("geochips.transforms")
    if name in _LOADING:
        value = getattr(importlib.import_module(_LOADING[name]), name)
        globals()[name] = value
        return value
    if name in _MOVED:
        warnings.warn(
            f"geochips.{name} is internal now; import it from {_MOVED[name]}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module 'geochips' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LOADING))


__all__ = [
    "AlignmentReport",
    "BandStats",
    "BlockShuffleSampler",
    "Chip",
    "ChipDataset",
    "ChipIndex",
    "ChipNotFoundError",
    "ChipWindow",
    "CollateError",
    "DtypeConversionError",
    "GeochipsError",
    "GeochipsWarning",
    "IncompatibleScenesError",
    "IndexFileError",
    "InvalidParameterError",
    "LeakageError",
    "LeakageReport",
    "OverviewWarning",
    "RasterLabels",
    "Sample",
    "Scene",
    "SceneChangedError",
    "SceneHeaderError",
    "SceneReadError",
    "SmallSceneWarning",
    "SplitReport",
    "Splits",
    "Stitcher",
    "TileAlignmentWarning",
    "TransformError",
    "VectorLabels",
    "band_stats",
    "check_alignment",
    "check_leakage",
    "collate",
    "estimate_valid",
    "filter_aoi",
    "filter_labels",
    "record_band_stats",
    "record_checksums",
    "spatial_split",
]
