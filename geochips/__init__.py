"""geochips: chips of satellite scenes (COGs, local or remote, found through STAC) for PyTorch.

**Usage**::

    import geochips
    from torch.utils.data import DataLoader

    index = geochips.ChipIndex.build(["a.tif", "b.tif"], size=512, overlap=256)  # headers only
    ds = geochips.ChipDataset(index)                 # reads each window lazily
    loader = DataLoader(ds, batch_size=16, shuffle=True, num_workers=2,
                        collate_fn=geochips.collate)  # batch["image"]: (16, C, 512, 512)

Every name is imported on first use (PEP 562): ``import geochips`` itself costs nothing,
and the index layer (build, select, split, save, load) never imports torch; only the
loading layer (:mod:`geochips.loading`) does, when one of its names is first used.
"""

import importlib
import warnings
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from geochips.bandstats import BandStats
    from geochips.errors import (
        ChipNotFoundError,
        CollateError,
        DiskSpaceError,
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
    from geochips.loading.collate import collate
    from geochips.loading.dataset import ChipDataset
    from geochips.loading.samplers import BlockShuffleSampler
    from geochips.loading.samples import Sample
    from geochips.predict.stitcher import Stitcher
    from geochips.scene import Scene
    from geochips.select.aoi import filter_aoi
    from geochips.select.checksums import record_checksums
    from geochips.select.labels import filter_labels
    from geochips.select.leakage import LeakageReport, check_leakage
    from geochips.select.localize import localize
    from geochips.select.splits import SplitReport, Splits, spatial_split
    from geochips.select.stats import band_stats, record_band_stats
    from geochips.select.valid import estimate_valid
    from geochips.tiles import AlignmentReport, check_alignment
    from geochips.windows import ChipWindow

__version__ = "0.1.0"

# Every public name and the module that defines it, imported on first use: `import
# geochips` costs nothing (the CLI's --help), and the loading layer's names import torch
# only when asked for.
_ERRORS = (
    "ChipNotFoundError CollateError DiskSpaceError DtypeConversionError GeochipsError "
    "GeochipsWarning "
    "IncompatibleScenesError IndexFileError InvalidParameterError LeakageError "
    "OverviewWarning SceneChangedError SceneHeaderError SceneReadError SmallSceneWarning "
    "TileAlignmentWarning TransformError"
)
_HOMES = {
    **dict.fromkeys(_ERRORS.split(), "geochips.errors"),
    "AlignmentReport": "geochips.tiles",
    "BandStats": "geochips.bandstats",
    "BlockShuffleSampler": "geochips.loading.samplers",
    "Chip": "geochips.index",
    "ChipDataset": "geochips.loading.dataset",
    "ChipIndex": "geochips.index",
    "ChipWindow": "geochips.windows",
    "LeakageReport": "geochips.select.leakage",
    "RasterLabels": "geochips.labels",
    "Sample": "geochips.loading.samples",
    "Scene": "geochips.scene",
    "SplitReport": "geochips.select.splits",
    "Splits": "geochips.select.splits",
    "Stitcher": "geochips.predict.stitcher",
    "VectorLabels": "geochips.labels",
    "band_stats": "geochips.select.stats",
    "check_alignment": "geochips.tiles",
    "check_leakage": "geochips.select.leakage",
    "collate": "geochips.loading.collate",
    "estimate_valid": "geochips.select.valid",
    "filter_aoi": "geochips.select.aoi",
    "filter_labels": "geochips.select.labels",
    "localize": "geochips.select.localize",
    "record_band_stats": "geochips.select.stats",
    "record_checksums": "geochips.select.checksums",
    "spatial_split": "geochips.select.splits",
}
# Internals exported by earlier versions, still reachable from their modules.
_MOVED = {
    "SceneSource": "geochips.scene",
    "find_sources": "geochips.sources",
    "read_header": "geochips.io.headers",
    "read_headers": "geochips.io.headers",
}


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (the loading layer's import torch)."""
    if name in ("transforms", "plot"):  # modules of their own (torch, matplotlib)
        return importlib.import_module(f"geochips.{name}")
    if name in _HOMES:
        value = getattr(importlib.import_module(_HOMES[name]), name)
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
    return sorted(set(globals()) | set(_HOMES))


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
    "DiskSpaceError",
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
    "localize",
    "record_band_stats",
    "record_checksums",
    "spatial_split",
]
