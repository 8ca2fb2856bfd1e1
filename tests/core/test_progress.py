"""Build progress: tqdm's bar (rate, time left) when tqdm is installed, else the counter."""

import importlib.util
import io
import re
import subprocess
import sys
import time

import pytest

import geochips
from geochips.progress import StderrProgress, TqdmProgress, resolve_progress, start_progress

needs_tqdm = pytest.mark.skipif(
    importlib.util.find_spec("tqdm") is None, reason="tqdm is not installed"
)


@needs_tqdm
def test_a_build_draws_a_tqdm_bar_with_the_count_rate_and_time_left(make_scene):
    stream = io.StringIO()
    paths = [make_scene(name=f"s{i}.tif", height=32, width=32) for i in range(3)]
    index = geochips.ChipIndex.build(
        paths, size=16, workers=2, progress=TqdmProgress(stream=stream)
    )
    assert len(index) == 12
    last = stream.getvalue().rstrip("\n").split("\r")[-1]
    # "scene headers: 100%|##########| 3/3 [00:00<00:00, 41.2scene/s]"
    assert re.search(
        r"^scene headers: 100%.* 3/3 \[\d\d:\d\d<\d\d:\d\d, +[\d.]+(scene/s|s/scene)\]$", last
    ), last


@needs_tqdm
def test_the_bar_ends_at_the_last_count_and_a_later_build_gets_a_new_bar():
    stream = io.StringIO()
    progress = TqdmProgress("tiles", stream=stream)
    for done in (1, 3, 4):
        progress(done, 4)
    first = stream.getvalue()
    assert first.endswith("\n") and " 4/4 " in first.rstrip("\n").split("\r")[-1]
    progress(2, 2)
    later = stream.getvalue()[len(first) :]
    assert later.startswith("\rtiles:") and " 2/2 " in later


@needs_tqdm
def test_progress_true_is_tqdm_when_installed_and_auto_is_quiet_off_a_terminal():
    assert isinstance(resolve_progress(True, 3), TqdmProgress)
    assert resolve_progress(None, 1000) is None  # pytest's stderr is not a terminal
    assert resolve_progress(False, 1000) is None
    counter = StderrProgress()
    assert resolve_progress(counter, 3) is counter


def without_tqdm(code: str) -> str:
    """Run ``code`` in a fresh interpreter in which ``import tqdm`` fails, as if absent."""
    script = "import sys; sys.modules['tqdm'] = None\n" + code
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    return result.stdout + result.stderr


def test_without_tqdm_progress_true_is_the_plain_counter():
    out = without_tqdm(
        "from geochips.progress import resolve_progress\n"
        "progress = resolve_progress(True, 3)\n"
        "print(type(progress).__name__)\n"
        "for done in (1, 2, 3):\n"
        "    progress(done, 3)\n"
        "try:\n"
        "    from geochips.progress import TqdmProgress; TqdmProgress()\n"
        "except ImportError as exc:\n"
        "    print('refused:', exc)\n"
    )
    assert out.startswith("StderrProgress\n")
    assert re.search(r"scene headers: 3/3 scenes(, [\d.]+/s, 0:00)?\n", out), out
    assert "refused: TqdmProgress needs tqdm: pip install geochips[progress]" in out


def test_importing_geochips_does_not_import_tqdm():
    out = subprocess.run(
        [sys.executable, "-c", "import sys, geochips; print('tqdm' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out == "False\n"


def test_the_plain_counter_shows_the_rate_and_time_left_then_the_time_taken(monkeypatch):
    stream = io.StringIO()
    progress = StderrProgress("valid fractions", stream=stream, every=0, unit="scene")
    clock = iter([100.0, 102.0, 110.0])
    monkeypatch.setattr(time, "monotonic", lambda: next(clock))  # whole seconds
    for done in (100, 120, 500):
        progress(done, 500)
    first, middle, last = stream.getvalue().split("\r")[1:]
    assert first == "valid fractions: 100/500 scenes"
    assert middle == "valid fractions: 120/500 scenes, 10.0/s, ETA 0:38"
    assert last == "valid fractions: 500/500 scenes, 40.0/s, 0:10\n"


def test_a_counter_tracks_an_iterable_and_auto_compares_its_size():
    calls: list[tuple[int, int]] = []
    counter = start_progress(lambda d, t: calls.append((d, t)), 3, label="x", unit="y", auto_min=1)
    assert list(counter.track("abc")) == ["a", "b", "c"]
    counter.finish()  # nothing left: no call
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert start_progress(None, 10**6, label="x", unit="y", auto_min=1).report is None
    assert resolve_progress(True, 6, label="x", unit="y", size=2, auto_min=5) is not None
