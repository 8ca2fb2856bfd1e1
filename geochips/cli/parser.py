"""The command line's arguments: every flag with its unit and an example.

Building the parser imports nothing but :mod:`argparse`, so ``geochips --help`` answers at
once; the commands import the library when they run.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from geochips.cli.values import bands, fractions, level, names, option, pair

DESCRIPTION = """\
Chips of large satellite scenes (COGs, local or remote, found through STAC) for PyTorch.

  geochips demo                                   the tour, on sample data shipped with geochips
  geochips index scenes/ --size 512 --overlap 256 --split train=0.8,val=0.2 -o chips.parquet
  geochips info chips.parquet                     what an index holds
  geochips preview chips.parquet -o preview.png   the chip grid over the scenes, by split
  geochips show chips.parquet -n 16 -o chips.png  a contact sheet of chips
"""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line naming the command's ``--help``."""

    def error(self, message: str) -> NoReturn:
        """Print ``message`` as one line and exit with status 2."""
        sys.stderr.write(f"geochips: error: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(2)


def build_parser() -> Parser:
    """Return the parser of every command."""
    parser = Parser(
        prog="geochips", description=DESCRIPTION, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    _demo(commands)
    _index(commands)
    _info(commands)
    _localize(commands)
    _preview(commands)
    _show(commands)
    return parser


def _demo(commands: argparse._SubParsersAction[Parser]) -> None:
    demo = commands.add_parser(
        "demo", help="chip the sample scenes shipped with geochips (no network)"
    )
    demo.add_argument(
        "--workers", type=int, default=2, help="DataLoader worker processes (default 2)"
    )


def _index(commands: argparse._SubParsersAction[Parser]) -> None:
    index = commands.add_parser(
        "index",
        help="build a chip index from scenes (headers only) and save it",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Read scene headers (never pixels), lay a grid of chips over each scene, "
        "optionally filter and split it, and save it as GeoParquet.",
        epilog="examples:\n"
        "  geochips index scene.tif --size 256 -o chips.parquet\n"
        "  geochips index 'tiles/*.tif' --size 512 --overlap 256 --min-valid 0.5 "
        "--split train=0.8,val=0.2 -o chips.parquet\n"
        "  geochips index items.json --assets vv,vh --overview-level 2 -o s1.parquet\n"
        "  geochips index B04.tif B08.tif --stack --size 512 -o s2.parquet",
    )
    index.add_argument(
        "sources",
        nargs="+",
        metavar="SOURCE",
        help="raster files, folders (their .tif/.tiff/.vrt/.jp2 files), quoted globs "
        "('tiles/*.tif'), URLs, STAC Item / ItemCollection JSON, or STAC-GeoParquet "
        "(items.parquet)",
    )
    index.add_argument("-o", "--out", help="save the index here (GeoParquet), e.g. chips.parquet")
    grid = index.add_argument_group("the grid")
    grid.add_argument(
        "--size", type=pair, default=512, help="chip size in pixels: 512, or 512,256 (default 512)"
    )
    spacing = grid.add_mutually_exclusive_group()
    spacing.add_argument(
        "--stride", type=pair, help="step between chips in pixels, e.g. 256 (default: --size)"
    )
    spacing.add_argument(
        "--overlap", type=pair, help="pixels shared by neighbouring chips, e.g. 256 (default 0)"
    )
    grid.add_argument(
        "--edge",
        choices=("drop", "pad", "shift"),
        default="drop",
        help="chips reaching past a scene's edge: drop them, pad them, or shift them "
        "inside (default drop)",
    )
    grid.add_argument(
        "--overview-level",
        type=level,
        default=None,
        help="read an overview: 0 is the first (half resolution), 'full' the scene itself "
        "(default full)",
    )
    scenes = index.add_argument_group("scenes")
    scenes.add_argument(
        "--assets", type=names, help="STAC asset keys stacked as bands, in order, e.g. vv,vh"
    )
    scenes.add_argument(
        "--stack", action="store_true", help="stack all the files given as the bands of one scene"
    )
    scenes.add_argument(
        "--grid",
        help="asset key whose grid the other assets are resampled onto, e.g. B04 "
        "(default: the assets must share a grid)",
    )
    scenes.add_argument(
        "--resampling",
        default="nearest",
        choices=("nearest", "bilinear", "cubic", "cubic_spline", "lanczos", "average", "mode"),
        help="how assets resampled by --grid are interpolated (default nearest)",
    )
    scenes.add_argument(
        "--bands", type=bands, help="1-based bands that the chips are read with, e.g. 1,2"
    )
    scenes.add_argument(
        "--properties",
        type=names,
        default=[],
        help="STAC item properties kept as columns, e.g. datetime,platform",
    )
    labels = index.add_argument_group("labels (saved with the index; `show` draws them)")
    labels.add_argument(
        "--labels",
        metavar="FILE",
        help="the chips' labels: a vector file (GeoJSON, GeoPackage, GeoParquet, ...) "
        "burnt per chip, or a label raster (.tif) read on each scene's grid",
    )
    labels.add_argument(
        "--label-value",
        help="the vector attribute holding each geometry's class, or one class for all (default 1)",
    )
    labels.add_argument(
        "--classes",
        type=names,
        help="names of the classes --label-value holds, numbered from 1, e.g. road,building",
    )
    select = index.add_argument_group("selection and splits")
    select.add_argument(
        "--aoi", help="keep chips that meet this area (GeoJSON, GeoPackage, GeoParquet, ...)"
    )
    select.add_argument(
        "--min-valid",
        type=float,
        help="keep chips with at least this fraction (0-1) of valid pixels, judged from "
        "overviews, e.g. 0.5",
    )
    select.add_argument(
        "--split",
        type=fractions,
        help="spatial split into named fractions, e.g. train=0.7,val=0.15,test=0.15; "
        "proved leak-free",
    )
    select.add_argument(
        "--block",
        type=float,
        help="edge of the split's ground blocks, in metres (pixels for scenes without a "
        "CRS); default 4 chips",
    )
    select.add_argument(
        "--buffer",
        type=float,
        default=0.0,
        help="minimum distance between chips of different splits, in --block units (default 0)",
    )
    select.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    access = _access(index)
    access.add_argument(
        "--workers", type=int, default=32, help="threads reading headers (default 32)"
    )
    access.add_argument(
        "--errors", metavar="FILE", help="write every failed scene here, one line each"
    )


def _access(command: Parser) -> argparse._ArgumentGroup:
    """The flags of how scenes are read: signing and GDAL options."""
    access = command.add_argument_group("access")
    access.add_argument(
        "--sign",
        choices=("auto", "none", "planetary-computer"),
        default="auto",
        help="sign hrefs for reading: auto signs Planetary Computer blobs (default auto)",
    )
    access.add_argument(
        "--gdal-option",
        type=option,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a GDAL configuration option, repeatable, e.g. AWS_NO_SIGN_REQUEST=YES",
    )
    return access


def _info(commands: argparse._SubParsersAction[Parser]) -> None:
    info = commands.add_parser(
        "info",
        help="summarise a saved index: scenes, chips per split, sizes, valid fractions",
        epilog="example:\n  geochips info chips.parquet",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    info.add_argument("index", help="a saved index, e.g. chips.parquet")


def _localize(commands: argparse._SubParsersAction[Parser]) -> None:
    local = commands.add_parser(
        "localize",
        help="copy what the chips of a saved index read into a folder, for fast epochs",
        epilog="examples:\n  geochips localize chips.parquet --to /scratch/chips -o local.parquet\n"
        "  geochips localize chips.parquet --to local/ --codec zstd -o local.parquet",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    local.add_argument("index", help="a saved index, e.g. chips.parquet")
    local.add_argument("--to", required=True, metavar="DIR", help="the folder of the copies")
    local.add_argument(
        "-o", "--out", required=True, help="save the index over the copies here (GeoParquet)"
    )
    local.add_argument(
        "--codec",
        choices=("none", "zstd", "lzw", "deflate"),
        default="none",
        help="compression of the copies: none reads fastest, zstd is smaller (default none)",
    )
    local.add_argument("--workers", type=int, default=4, help="scenes copied at once (default 4)")
    _access(local)


def _picture(
    commands: argparse._SubParsersAction[Parser], name: str, text: str, examples: list[str]
) -> Parser:
    """A command that draws a saved index into a picture: ``INDEX -o PICTURE``."""
    command = commands.add_parser(
        name,
        help=text,
        epilog="examples:\n" + "\n".join(f"  geochips {name} {e}" for e in examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    command.add_argument("index", help="a saved index, e.g. chips.parquet")
    command.add_argument(
        "-o", "--out", required=True, help=f"the picture (PNG, SVG, PDF), e.g. {name}.png"
    )
    command.add_argument(
        "--dpi", type=int, default=100, help="dots per inch of the picture (default 100)"
    )
    return command


def _preview(commands: argparse._SubParsersAction[Parser]) -> None:
    preview = _picture(
        commands,
        "preview",
        "draw the chip grid over the scenes (or on a map), coloured by split",
        ["chips.parquet -o preview.png", "chips.parquet --map -o map.png"],
    )
    preview.add_argument("--scene", help="draw only this scene (its id)")
    preview.add_argument(
        "--map",
        action="store_true",
        help="chip footprints in longitude/latitude on one map (default for many scenes)",
    )
    preview.add_argument("--column", help="colour the map by this column, e.g. valid_fraction")
    preview.add_argument("--aoi", help="outline this area (a vector file)")


def _show(commands: argparse._SubParsersAction[Parser]) -> None:
    show = _picture(
        commands,
        "show",
        "draw a contact sheet of chips (with label masks when the index has labels)",
        ["chips.parquet -n 16 -o chips.png", "chips.parquet --split val --bands 3,2,1 -o val.png"],
    )
    show.add_argument("-n", type=int, default=16, help="chips drawn (default 16)")
    show.add_argument("--split", help="draw chips of this split only, e.g. val")
    show.add_argument(
        "--bands", type=bands, help="1-based bands drawn as RGB (3) or grey (1), e.g. 3,2,1"
    )
    show.add_argument(
        "--seed", type=int, help="pick random chips with this seed (default: the first)"
    )
    show.add_argument("--db", action="store_true", help="draw SAR amplitude in decibels")
