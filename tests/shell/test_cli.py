import re
import subprocess
import sys

import pytest

from geochips import sample_data
from geochips.cli import main


@pytest.mark.slow
def test_demo_runs_offline_and_prints_batches():
    result = subprocess.run(
        [sys.executable, "-m", "geochips", "demo", "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "overview_level=None: 837x1280 px -> 15 chips of 256, 45 with overlap 128" in out
    assert "ChipIndex(74 chips from 3 scene(s)" in out
    assert "no chip shares ground across splits" in out
    assert "saved and reloaded" in out and "ids identical: True" in out
    assert "image (10, 1, 256, 256) torch.float32" in out
    train = int(re.search(r"train (\d+) ", out).group(1))
    assert f"read {train} of {train} chips with 2 worker(s)" in out


def test_index_command_summarises(capsys):
    assert main(["index", str(sample_data.path("RGB.byte.tif")), "--size", "256"]) == 0
    out = capsys.readouterr().out
    assert "ChipIndex(6 chips from 1 scene(s)" in out
    assert "RGB.byte: 6 chips, 718x791 px (full), 3 band(s) uint8, EPSG:32618" in out


def test_index_command_reports_errors_without_a_traceback(capsys, tmp_path):
    assert main(["index", str(tmp_path / "missing.tif")]) == 2
    assert "geochips: error: cannot open scene 'missing'" in capsys.readouterr().err
