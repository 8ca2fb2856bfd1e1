"""geochips: chips of satellite scenes (COGs, local or remote, found through STAC) for PyTorch.

**Usage**::

    import geochips
    from torch.utils.data import DataLoader

    index = geochips.ChipIndex.build(["a.tif", "b.tif"], size=512, overlap=256)  # headers only
    ds = geochips.ChipDataset(index)                 # reads each window lazily
    loader = DataLoader(ds, batch_size=16, shuffle=True, num_workers=2,
                        collate_fn=geochips.collate)  # batch["image"]: (16, C, 512, 512)
"""

from geochips.checksums import record_checksums
from geochips.collate import collate
from geochips.dataset import ChipDataset, Sample
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
    SceneChangedError,
    SceneHeaderError,
    SceneReadError,
    SmallSceneWarning,
    TileAlignmentWarning,
    TransformError,
)
from geochips.filters import estimate_valid, filter_aoi
from geochips.index import Chip, ChipIndex
from geochips.leakage import LeakageReport, check_leakage
from geochips.samplers import BlockShuffleSampler
from geochips.scenes import Scene, read_header, read_headers
from geochips.sources import SceneSource, find_sources
from geochips.splits import SplitReport, Splits, spatial_split
from geochips.windows import ChipWindow

__version__ = "0.1.0"

__all__ = [
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
    "Sample",
    "Scene",
    "SceneChangedError",
    "SceneHeaderError",
    "SceneReadError",
    "SceneSource",
    "SmallSceneWarning",
    "SplitReport",
    "Splits",
    "TileAlignmentWarning",
    "TransformError",
    "check_leakage",
    "collate",
    "estimate_valid",
    "filter_aoi",
    "find_sources",
    "read_header",
    "read_headers",
    "record_checksums",
    "spatial_split",
]
