"""``geochips info``, ``preview`` and ``show``: what a saved index holds, in words and pictures."""

from __future__ import annotations

import argparse
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from geochips.cli.build import CommandError
from geochips.index import ChipIndex
from geochips.tiles import check_alignment

LISTED = 5
"""Groups (of scenes, of columns) listed before "and N more"."""
MAP_PAST = 6
"""Scenes past which ``preview`` draws a map of footprints rather than each scene."""


def load(path: str) -> ChipIndex:
    """Load a saved index without signing: looking at it reads no pixel."""
    return ChipIndex.load(path, sign=None)


def info_command(args: argparse.Namespace) -> int:
    """Print a summary of a saved index, a few lines whatever its size."""
    index = load(args.index)
    print("\n".join(summary(index, args.index)))
    return 0


def summary(index: ChipIndex, name: str) -> list[str]:
    """Lines on the chips, scenes, splits, valid fractions, columns and tiles of ``index``."""
    grid = f"{index.size[0]}x{index.size[1]}" if index.size else "mixed sizes"
    stride = f", stride {index.stride[0]}x{index.stride[1]}" if index.stride else ""
    lines = [
        f"{name}: {len(index)} chips of {grid}{stride} (edge {index.edge}) from "
        f"{len(index.scenes)} scene(s)"
    ]
    lines.append("scenes: " + _scene_groups(index))
    sides = np.array([(s.height, s.width) for s in index.scenes])
    if len(sides):
        lines.append(
            f"scene sizes: {sides[:, 0].min()}..{sides[:, 0].max()} rows x "
            f"{sides[:, 1].min()}..{sides[:, 1].max()} columns"
        )
    if "split" in index.column_names:
        counts = Counter(np.asarray(index.column("split")).tolist())
        parts = ", ".join(
            f"{name} {n} ({n / len(index):.1%})" for name, n in sorted(counts.items())
        )
        lines.append(f"splits: {parts}")
    if "valid_fraction" in index.column_names and len(index):
        valid = np.asarray(index.column("valid_fraction"), dtype=float)
        lines.append(
            f"valid fraction: min {valid.min():.2f}, median {np.median(valid):.2f}, "
            f"mean {valid.mean():.2f}"
        )
    if index.bands:
        lines.append(f"bands read: {','.join(map(str, index.bands))}")
    if index.labels is not None:
        lines.append(f"labels: {_labels_text(index.labels)}")
    lines.append("columns: " + _listed(list(index.column_names), 12))
    if index.size is not None:
        lines.append(f"tiles: {check_alignment(index)}")
    return lines


def _labels_text(labels: Any) -> str:
    """``vector buildings.geojson, value 1`` rather than the whole spec."""
    kind = "raster" if type(labels).__name__ == "RasterLabels" else "vector"
    source = labels.source
    name = Path(source).name if isinstance(source, (str, os.PathLike)) else type(source).__name__
    details = [f"value {labels.value!r}"] if hasattr(labels, "value") else []
    if getattr(labels, "classes", None):
        details.append(f"classes {list(labels.classes)}")
    return f"{kind} {name}" + (f", {', '.join(details)}" if details else "")


def _scene_groups(index: ChipIndex) -> str:
    groups = Counter(
        ("GCPs" if s.georef == "gcps" else (s.crs or "no CRS"), s.dtype, s.count)
        for s in index.scenes
    )
    parts = [
        f"{n} {crs} {dtype} {count} band(s)" for (crs, dtype, count), n in groups.most_common()
    ]
    return _listed(parts, LISTED)


def _listed(items: list[str], limit: int) -> str:
    more = f", and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def preview_command(args: argparse.Namespace) -> int:
    """Draw the chip grid over the scenes (or the footprints on a map) into ``--out``."""
    import geochips.plot as plot

    index = load(args.index)
    what = by_split(index)
    many = len(index.scenes) > MAP_PAST
    if args.map or (many and args.scene is None):
        figure = plot.plot_map(what, column=args.column)
    else:
        figure = plot.plot_index(what, scene=args.scene, aoi=args.aoi)
    figure.savefig(args.out, dpi=args.dpi)
    print(f"wrote {args.out}")
    return 0


USUAL = ("train", "training", "val", "valid", "validation", "test")
"""Split names drawn in this order (so train keeps the first colour); others follow, sorted."""


def by_split(index: ChipIndex) -> ChipIndex | dict[str, ChipIndex]:
    """The index as ``{split: chips}`` when it has a ``split`` column, else itself."""
    if "split" not in index.column_names:
        return index
    names = np.asarray(index.column("split"))
    found = sorted(set(names.tolist()), key=lambda n: (USUAL.index(n) if n in USUAL else 9, n))
    return {str(n): index[names == n] for n in found}


def show_command(args: argparse.Namespace) -> int:
    """Draw ``-n`` chips (with their labels when the index has some) into ``--out``."""
    import geochips.plot as plot
    from geochips.loading.dataset import ChipDataset

    index = load(args.index)
    if args.split is not None:
        if "split" not in index.column_names:
            raise CommandError(f"{args.index} has no split; drop --split or make one (--split)")
        index = index[np.asarray(index.column("split")) == args.split]
        if not len(index):
            raise CommandError(f"{args.index} has no chip in split {args.split!r}")
    if args.n < 1:
        raise CommandError(f"-n must be at least 1, got {args.n}")
    count = min(args.n, len(index))
    if args.seed is None:
        picked = list(range(count))
    else:
        picked = np.random.default_rng(args.seed).choice(len(index), count, replace=False)
    dataset = ChipDataset(index, sign="auto")
    samples = [dataset[int(i)] for i in picked]  # scenes may differ in shape: no stacking
    figure = plot.plot_batch(samples, n=count, bands=args.bands, db=args.db)
    figure.savefig(args.out, dpi=args.dpi)
    print(f"wrote {args.out} ({count} chips)")
    return 0
