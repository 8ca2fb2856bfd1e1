"""How long the command line takes to answer, against starting Python itself.

python benchmarks/bench_cli.py      # prints JSON: best wall time of each command, in s

Each command runs as a user runs it (``python -m geochips ...``, a new interpreter each
time), best of ``--repeat``; the ratio is against ``python -c pass`` in the same run. The
target (issue 13) is ``--help`` well under a second: no torch, no rasterio for help.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SAMPLE = HERE.parent / "geochips" / "sample_data" / "RGB.byte.tif"


def best(argv: list[str], repeat: int) -> float:
    """Best wall time of ``argv`` over ``repeat`` runs, in seconds (it must succeed)."""
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}  # this checkout's geochips
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, env=env)
        times.append(time.perf_counter() - started)
    return min(times)


def measure(repeat: int) -> list[dict[str, object]]:
    """Time each command; the first row, ``python -c pass``, is the unit of the ratios."""
    python = [sys.executable]
    geochips = [*python, "-m", "geochips"]
    with tempfile.TemporaryDirectory() as folder:
        saved = str(Path(folder) / "chips.parquet")
        subprocess.run([*geochips, "index", str(SAMPLE), "--size", "256", "-o", saved],
                       check=True, capture_output=True, cwd=HERE.parent)  # fmt: skip
        commands = {
            "python -c pass": [*python, "-c", "pass"],
            "python -c 'import geochips'": [*python, "-c", "import geochips"],
            "geochips --version": [*geochips, "--version"],
            "geochips --help": [*geochips, "--help"],
            "geochips index --help": [*geochips, "index", "--help"],
            "geochips info chips.parquet": [*geochips, "info", saved],
            "geochips index RGB.byte.tif --size 256": [
                *geochips, "index", str(SAMPLE), "--size", "256"
            ],
        }  # fmt: skip
        rows = [{"command": name, "s": best(argv, repeat)} for name, argv in commands.items()]
    unit = float(rows[0]["s"])  # type: ignore[arg-type]
    for row in rows:
        row["ratio"] = float(row["s"]) / unit  # type: ignore[arg-type]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs of each command")
    args = parser.parse_args()
    print(json.dumps(measure(args.repeat)))


if __name__ == "__main__":
    main()
