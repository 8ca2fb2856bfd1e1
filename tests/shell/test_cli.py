"""The command line, run as users run it: ``python -m geochips`` in a subprocess."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import geochips
from geochips import sample_data
from geochips.testing import write_scene

RGB = str(sample_data.path("RGB.byte.tif"))
ATLANTA = str(sample_data.path("spacenet_atlanta.tif"))


def run(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "geochips", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, code: int = 1) -> str:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("geochips: error")]
    assert len(errors) == 1 and result.stderr.strip().splitlines()[-1] == errors[0], result.stderr
    return errors[0]


@pytest.mark.slow
def test_demo_runs_offline_and_prints_batches():
    result = run("demo", "--workers", "2")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "overview_level=None: 837x1280 px -> 15 chips of 256, 45 with overlap 128" in out
    assert "ChipIndex(74 chips from 3 scene(s)" in out
    assert "no chip shares ground across splits" in out
    assert "saved and reloaded" in out and "ids identical: True" in out
    assert "reading band 1 of every scene (bands=[1])" in out
    assert "image (10, 1, 256, 256) torch.float32" in out
    train = int(re.search(r"train (\d+) ", out).group(1))
    assert f"read {train} of {train} chips with 2 worker(s)" in out
    assert "next, on your own scenes:" in out and "geochips index" in out


def test_version_and_help_import_neither_torch_nor_the_library():
    code = (
        "import sys\n"
        "from geochips.cli import main\n"
        "for argv in (['--version'], ['--help'], ['index', '--help'], ['show', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = [m for m in ('torch', 'rasterio', 'numpy', 'geochips.index')\n"
        "         if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert f"geochips {geochips.__version__}" in result.stdout
    assert "HEAVY []" in result.stdout


@pytest.mark.parametrize("command", ["index", "info", "localize", "preview", "show", "demo"])
def test_every_flag_has_help(command):
    result = run(command, "--help")
    assert result.returncode == 0
    # argparse puts a flag's help after it on the same line or on the next, indented.
    lines = result.stdout.splitlines()
    for position, line in enumerate(lines):
        flag = re.match(r"^  (?:-\w(?: [A-Z_]+)?, )?(--?[\w-]+)(.*)$", line)
        if flag and flag[1] not in ("-h", "--help"):
            following = lines[position + 1] if position + 1 < len(lines) else ""
            described = re.search(r"\s{2,}\S", flag[2]) or following.startswith(" " * 10)
            assert described, f"{command} {flag[1]} has no help: {line!r}"


def test_index_info_and_the_saved_split_match_the_library(tmp_path):
    out = tmp_path / "chips.parquet"
    result = run(
        "index", ATLANTA, "--size", "128", "--overlap", "64", "--min-valid", "0.5",
        "--split", "train=0.7,val=0.15,test=0.15", "--seed", "3", "-o", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "leak-free:" in result.stdout and "saved" in result.stdout
    saved = geochips.ChipIndex.load(out)
    # The same steps in Python give the same chips in the same splits.
    index = geochips.ChipIndex.build([ATLANTA], size=128, overlap=64)
    index = geochips.estimate_valid(index, min_valid=0.5)
    splits = geochips.spatial_split(index, {"train": 0.7, "val": 0.15, "test": 0.15}, seed=3)
    by_id = dict(zip(saved.chip_ids, np.asarray(saved.column("split")).tolist(), strict=True))
    assert by_id == {c: name for name, part in splits.items() for c in part.chip_ids}
    info = run("info", str(out))
    assert info.returncode == 0, info.stderr
    counts = {name: len(part) for name, part in splits.items()}
    assert f"{len(saved)} chips of 128x128, stride 64x64 (edge drop) from 1 scene(s)" in info.stdout
    assert f"train {counts['train']} (" in info.stdout
    assert "valid fraction: min" in info.stdout
    assert "1 EPSG:32616 uint16 1 band(s)" in info.stdout
    assert len(info.stdout.splitlines()) < 12


def test_stacked_files_and_bands_travel_with_the_saved_index(tmp_path):
    folder = tmp_path / "S2_tile"
    folder.mkdir()
    for band in (1, 2):
        write_scene(folder / f"B0{band}.tif", height=64, width=64, count=1, blocksize=32)
    out = tmp_path / "s2.parquet"
    result = run(
        "index", str(folder / "B0*.tif"), "--stack", "--bands", "2", "--size", "32", "-o", str(out)
    )
    assert result.returncode == 0, result.stderr
    saved = geochips.ChipIndex.load(out)
    assert [s.id for s in saved.scenes] == ["S2_tile"] and saved.scenes[0].count == 2
    assert saved.bands == [2]
    image = geochips.ChipDataset(saved)[0]["image"]
    assert image.shape == (1, 32, 32)


def test_a_folder_is_its_rasters(tmp_path):
    for name in ("a", "b"):
        write_scene(tmp_path / f"{name}.tif", height=32, width=32, blocksize=16)
    (tmp_path / "notes.txt").write_text("not a raster")
    result = run("index", str(tmp_path), "--size", "16")
    assert result.returncode == 0, result.stderr
    assert "ChipIndex(8 chips from 2 scene(s)" in result.stdout


def test_a_missing_file_is_one_line_and_exit_1(tmp_path):
    line = assert_one_line_error(run("index", str(tmp_path / "missing.tif")))
    assert "cannot open scene 'missing'" in line


def test_a_chip_larger_than_the_scene_is_an_error_with_the_right_advice(tmp_path):
    path = write_scene(tmp_path / "small.tif", height=300, width=300, layout="cog",
                       blocksize=128, overviews=[2, 4])  # fmt: skip
    line = assert_one_line_error(run("index", path, "--size", "512"))
    assert "smaller --size" in line and "--edge pad" in line and "warning" not in line
    # At an overview the advice is a finer level, never a coarser one.
    line = assert_one_line_error(run("index", path, "--size", "128", "--overview-level", "1"))
    assert "--overview-level 0 (finer) or full" in line
    assert "coarser" not in line


def test_a_bad_output_folder_fails_before_any_header_is_read(tmp_path):
    line = assert_one_line_error(
        run("index", str(tmp_path / "missing.tif"), "-o", str(tmp_path / "no" / "x.parquet"))
    )
    assert "folder" in line and "does not exist" in line  # not the missing scene


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["index", RGB, "--size", "big"], "expected pixels as 512 or 512,256"),
        (["index", RGB, "--stride", "8", "--overlap", "8"], "not allowed with argument"),
        (["index", RGB, "--split", "train=0.5,val=0.2"], "fractions"),
        (["index", "nothing/*.tif"], "matches no file"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_wrong_commands_are_one_line_and_exit_2_or_1(args, words):
    result = run(*args)
    line = assert_one_line_error(result, code=result.returncode)
    assert result.returncode in (1, 2)
    assert words in line


def test_many_failures_are_summarised_and_listed_in_a_file(tmp_path):
    missing = [str(tmp_path / f"gone{i}.tif") for i in range(15)]
    errors = tmp_path / "errors.txt"
    line = assert_one_line_error(run("index", *missing, RGB, "--errors", str(errors)))
    assert "15 of 16 scenes failed (15 not found)" in line
    assert f"all of them in {errors}" in line
    listed = errors.read_text().splitlines()
    assert len(listed) == 15 and all("gone" in entry for entry in listed)


def test_warnings_are_one_line_in_flags(tmp_path):
    path = write_scene(tmp_path / "tiled.tif", height=512, width=512, layout="cog", blocksize=256)
    result = run("index", path, "--size", "200")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1, result.stderr
    assert warnings[0].startswith("geochips: warning: ")
    assert "--size 256" in warnings[0] and "size=(" not in warnings[0]


def test_debug_shows_the_traceback(tmp_path):
    result = run("--debug", "index", str(tmp_path / "missing.tif"))
    assert result.returncode != 0 and "Traceback" in result.stderr


def colour_share(png: Path, colour: tuple[float, float, float], tolerance: float = 0.08) -> float:
    """The share of a picture's pixels within ``tolerance`` of an RGB ``colour`` (0..1)."""
    from matplotlib.image import imread

    pixels = imread(png)[..., :3]
    return float((np.abs(pixels - np.array(colour)).max(axis=-1) <= tolerance).mean())


@pytest.fixture(scope="module")
def split_index(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    out = folder / "chips.parquet"
    result = run(
        "index", ATLANTA, "--size", "128", "--stride", "128",
        "--split", "train=0.7,val=0.3", "-o", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


def test_preview_draws_the_split_over_the_scene_and_on_a_map(split_index, tmp_path):
    from matplotlib.colors import to_rgb

    from geochips.plot.figures import COLORS

    for extra in ([], ["--map"]):
        png = tmp_path / f"preview{len(extra)}.png"
        result = run("preview", str(split_index), "-o", str(png), *extra)
        assert result.returncode == 0, result.stderr
        assert f"wrote {png}" in result.stdout
        # Chips of both splits are drawn in their colours (translucent over the scene on
        # the grid, opaque-ish on the map): each colour covers part of the picture.
        for colour in COLORS[:2]:
            assert colour_share(png, to_rgb(colour), tolerance=0.25) > 0.002, (extra, colour)


def test_show_draws_a_contact_sheet_and_refuses_an_unknown_split(split_index, tmp_path):
    from matplotlib.image import imread

    png = tmp_path / "chips.png"
    result = run("show", str(split_index), "-n", "4", "--split", "val", "-o", str(png))
    assert result.returncode == 0, result.stderr
    assert "(4 chips)" in result.stdout
    pixels = imread(png)[..., :3]
    assert pixels.shape[0] > 100 and pixels.std() > 0.05  # not blank
    line = assert_one_line_error(run("show", str(split_index), "--split", "nope", "-o", str(png)))
    assert "no chip in split 'nope'" in line


def test_a_missing_index_file_is_one_line(tmp_path):
    line = assert_one_line_error(run("info", str(tmp_path / "none.parquet")))
    assert "none.parquet" in line


def test_labels_saved_by_index_are_drawn_by_show(tmp_path):
    buildings = str(sample_data.path("spacenet_atlanta_buildings.geojson"))
    plain, labelled = tmp_path / "plain.parquet", tmp_path / "labelled.parquet"
    assert run("index", ATLANTA, "--size", "256", "-o", str(plain)).returncode == 0
    result = run("index", ATLANTA, "--size", "256", "--labels", buildings, "-o", str(labelled))
    assert result.returncode == 0, result.stderr
    assert geochips.ChipIndex.load(labelled).labels is not None
    info = run("info", str(labelled))
    assert "labels: vector spacenet_atlanta_buildings.geojson, value 1" in info.stdout
    pictures = []
    for index in (plain, labelled):
        png = tmp_path / f"{index.stem}.png"
        assert run("show", str(index), "-n", "4", "-o", str(png)).returncode == 0
        pictures.append(png)
    from matplotlib.colors import to_rgb

    from geochips.plot.figures import COLORS

    # The grey chips gain the label tint where buildings are, and only with labels.
    tint = to_rgb(COLORS[0])
    assert colour_share(pictures[0], tint, 0.25) < 0.001 < colour_share(pictures[1], tint, 0.25)
