"""``geochips index``: sources to a saved, optionally filtered and split, chip index."""

from __future__ import annotations

import argparse
import glob
import os
import warnings
from pathlib import Path

import numpy as np

from geochips import hrefs
from geochips.errors import (
    GeochipsError,
    InvalidParameterError,
    SceneHeaderError,
    SmallSceneWarning,
)
from geochips.index import ChipIndex
from geochips.labels import RasterLabels, VectorLabels
from geochips.select.aoi import filter_aoi
from geochips.select.leakage import check_leakage
from geochips.select.splits import Splits, spatial_split
from geochips.select.valid import estimate_valid
from geochips.sources import RASTER_EXTENSIONS


class CommandError(GeochipsError):
    """A command cannot go on; the text says why and what to change."""


def index_command(args: argparse.Namespace) -> int:
    """Build, filter, split and save an index; print what was done at each step."""
    out = check_out(args.out)
    paths = expand_sources(args.sources)
    sources: list[str] | dict[str, list[str]] = {_stack_id(paths): paths} if args.stack else paths
    try:
        with warnings.catch_warnings(record=True) as caught:
            index = ChipIndex.build(
                sources,
                size=args.size,
                stride=args.stride,
                overlap=args.overlap,
                edge=args.edge,
                overview_level=args.overview_level,
                assets=args.assets,
                properties=args.properties,
                sign=None if args.sign == "none" else args.sign,
                workers=args.workers,
                gdal_options=dict(args.gdal_option),
                grid=args.grid,
                resampling=args.resampling,
            )
    except SceneHeaderError as exc:
        _write_failures(args.errors, getattr(exc, "failures", None) or [exc])
        raise
    for warning in caught:  # an empty index is an error below, not also a warning
        if len(index) or not issubclass(warning.category, SmallSceneWarning):
            warnings.showwarning(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    if not len(index):
        raise CommandError(
            f"no chip of {_size_text(args.size)} fits in the {len(index.scenes)} scene(s): "
            + _no_chip_advice(index)
        )
    if args.bands:
        index = index.with_bands(args.bands)
    if args.labels:
        index = index.with_labels(_labels(args))
    print(index.describe())
    if args.aoi:
        before = len(index)
        index = filter_aoi(index, args.aoi)
        print(f"--aoi: kept {len(index)} of {before} chips meeting {args.aoi}")
    if args.min_valid is not None:
        before = len(index)
        index = estimate_valid(index, min_valid=args.min_valid)
        print(f"--min-valid {args.min_valid:g}: kept {len(index)} of {before} chips")
    if not len(index):
        raise CommandError("no chip is left after --aoi/--min-valid: loosen them")
    if args.split:
        splits = spatial_split(
            index, args.split, block=args.block, buffer=args.buffer, seed=args.seed
        )
        print(splits.report)
        report = check_leakage(splits, buffer=args.buffer)
        print(
            f"leak-free: {report.pairs_checked} candidate pairs across splits checked, no two "
            "chips of different splits share ground"
        )
        index = joined(index, splits)
    if out is not None:
        index.save(out)
        print(f"saved {len(index)} chips to {out}")
        print(f"next: geochips info {out}; geochips preview {out} -o preview.png")
    return 0


def _labels(args: argparse.Namespace) -> VectorLabels | RasterLabels:
    """The label spec of ``--labels`` (a raster by its extension, else vector data)."""
    if Path(args.labels).suffix.lower() in RASTER_EXTENSIONS:
        if args.label_value or args.classes:
            raise CommandError("--label-value and --classes are for vector labels, not rasters")
        return RasterLabels(args.labels)
    value: str | int = 1
    if args.label_value:
        value = int(args.label_value) if args.label_value.isdigit() else args.label_value
    return VectorLabels(args.labels, value=value, classes=args.classes)


def joined(index: ChipIndex, splits: Splits) -> ChipIndex:
    """The chips of every split, in the order of ``index``, with a ``split`` column."""
    names = np.full(len(index), "", dtype=object)
    for name, part in splits.items():
        names[[index.position(c) for c in part.chip_ids]] = name
    kept = np.flatnonzero(names != "")
    return index.select(kept).with_columns(split=names[kept].astype(str))


def expand_sources(sources: list[str]) -> list[str]:
    """Files, folders (their rasters, sorted) and globs as a list of paths and URLs.

    Raises:
        CommandError: for a folder without rasters or a glob that matches nothing.
    """
    found: list[str] = []
    for source in sources:
        if hrefs.is_remote(source) or "://" in source:
            found.append(source)
        elif os.path.isdir(source):
            files = sorted(
                str(p) for p in Path(source).iterdir() if p.suffix.lower() in RASTER_EXTENSIONS
            )
            if not files:
                raise CommandError(
                    f"folder {source} holds no raster ({', '.join(RASTER_EXTENSIONS)})"
                )
            found.extend(files)
        elif glob.has_magic(source):
            files = sorted(glob.glob(source, recursive=True))
            if not files:
                raise CommandError(f"{source!r} matches no file")
            found.extend(files)
        else:
            found.append(source)
    return found


def _stack_id(sources: list[str]) -> str:
    """The id of files stacked as one scene: their folder's name, else the first file's."""
    parents = {Path(s).parent for s in sources}
    if len(parents) == 1 and (name := next(iter(parents)).name):
        return name
    return Path(sources[0]).stem


def check_out(out: str | None) -> str | None:
    """Refuse an output the save would fail on, before any header is read."""
    if out is None:
        return None
    folder = Path(out).parent
    if not folder.is_dir():
        raise CommandError(f"cannot save to {out}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise CommandError(f"cannot save to {out}: folder {folder} is not writable")
    if Path(out).is_dir():
        raise CommandError(f"cannot save to {out}: it is a folder; give a file name")
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise CommandError(
            "saving an index needs pyarrow: pip install 'geochips[parquet]'"
        ) from None
    return out


def _size_text(size: int | tuple[int, int]) -> str:
    h, w = (size, size) if isinstance(size, int) else size
    return f"{h}x{w} px"


def _no_chip_advice(index: ChipIndex) -> str:
    smallest = min(index.scenes, key=lambda s: s.height * s.width)
    levels = sorted({s.overview_level for s in index.scenes if s.overview_level is not None})
    finer = ""
    if levels:
        finer = (
            f"--overview-level {levels[0] - 1} (finer) or full, "
            if levels[0] > 0
            else "--overview-level full, "
        )
    return (
        f"the smallest is {smallest.name} at {smallest.height}x{smallest.width} px. "
        f"Use {finer}a smaller --size, or --edge pad"
    )


def _write_failures(path: str | None, failures: list[BaseException]) -> None:
    if path is None:
        return
    try:
        with open(path, "w", encoding="utf-8") as out:
            for failure in failures:
                out.write(" ".join(str(failure).split()) + "\n")
    except OSError as exc:
        raise InvalidParameterError(f"cannot write --errors {path}: {exc.strerror}") from None
