"""The examples run offline, as the README says (the --online path needs the network)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_seed_tutorial_runs_offline_against_a_local_catalog():
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "seed_tutorial.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    out = result.stdout
    assert "no overlap: 15 chips of 128 x 128 px" in out
    assert "64 px overlap: 45 chips of 128 x 128 px" in out
    assert out.count("first batch: image (10, 1, 128, 128)") == 2
    assert "Warning" not in result.stderr
