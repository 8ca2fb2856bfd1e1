"""Progress of long steps: a tqdm bar when tqdm is installed, else a plain counter.

Every long step (``ChipIndex.build``'s header reads, ``estimate_valid``, ``band_stats``,
``spatial_split``, ``check_leakage``, ``ChipIndex.save``, ``Stitcher``) takes
``progress=``: ``None`` (the default: progress on stderr when it is a terminal and the
work is large enough to take seconds, a threshold each step documents), ``True``
(always), ``False`` (never) or a callable ``progress(done, total)``, called with ``done``
increasing up to ``total`` (the last call has ``done == total``).

With ``pip install geochips[progress]`` (tqdm) the bar shows the rate and the time left
(:class:`TqdmProgress`); without it, a one-line counter (:class:`StderrProgress`) shows
them too and keeps the core dependencies as they are. Steps count through a
:class:`Counter` (:func:`start_progress`), which costs one integer addition per update
when progress is off.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any, TextIO, TypeAlias, TypeVar

Progress: TypeAlias = Callable[[int, int], None]
ProgressSpec: TypeAlias = Progress | bool | None
"""What ``progress=`` takes: ``None`` (auto), ``True``, ``False`` or a callable."""
AUTO_MIN_SCENES = 20
"""Header reads of at least this many scenes show progress on a terminal by default."""

T = TypeVar("T")


class StderrProgress:
    """Print ``"<label>: <done>/<total> <unit>s, <rate>/s, ETA m:ss"`` on one line.

    The rate is measured from the first count drawn; the last line shows the time taken
    instead of the time left, e.g. ``valid fractions: 120/500 scenes, 35.2/s, ETA 0:11``.

    Args:
        label: what the step does or counts.
        stream: where to write (default ``sys.stderr``).
        every: seconds between redraws; the last count is always drawn.
        unit: what one count is (a singular noun).
    """

    def __init__(
        self,
        label: str = "scene headers",
        stream: TextIO | None = None,
        every: float = 0.2,
        unit: str = "scene",
    ) -> None:
        self.label = label
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.every = every
        self._last = 0.0
        self._start: tuple[float, int] | None = None

    def __call__(self, done: int, total: int) -> None:
        """Draw the count if enough time has passed, or if it is the last one."""
        now = time.monotonic()
        if self._start is None:
            self._start = (now, done)
        elif done < total and now - self._last < self.every:
            return
        self._last = now
        end = "\n" if done >= total else ""
        self.stream.write(
            f"\r{self.label}: {done}/{total} {self.unit}s{self._timing(now, done, total)}{end}"
        )
        self.stream.flush()
        if done >= total:
            self._start = None

    def _timing(self, now: float, done: int, total: int) -> str:
        """``", <rate>/s, ETA m:ss"`` (or the time taken at the end); empty before a rate."""
        assert self._start is not None
        since, first = self._start
        elapsed = now - since
        if elapsed <= 0 or done <= first:
            return ""
        rate = (done - first) / elapsed
        if done >= total:
            return f", {rate:.1f}/s, {_clock(elapsed)}"
        return f", {rate:.1f}/s, ETA {_clock((total - done) / rate)}"


def _clock(seconds: float) -> str:
    """``h:mm:ss`` or ``m:ss``."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class TqdmProgress:
    """Draw a tqdm bar on ``stream``: the count, the rate and the time left.

    **Usage**::

        index = geochips.ChipIndex.build(hrefs, size=256, progress=TqdmProgress())

    Args:
        label: what the step does or counts.
        stream: where to draw (default ``sys.stderr``).
        unit: what one count is (a singular noun).

    Raises:
        ImportError: if tqdm is not installed (``pip install geochips[progress]``).
    """

    def __init__(
        self, label: str = "scene headers", stream: TextIO | None = None, unit: str = "scene"
    ) -> None:
        bar = _tqdm()
        if bar is None:
            raise ImportError(
                "TqdmProgress needs tqdm: pip install geochips[progress], or pass "
                "progress=True for the plain counter"
            )
        self.label = label
        self.unit = unit
        self.stream = stream
        self._tqdm = bar
        self._bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        """Move the bar to ``done`` of ``total``; the last call closes it."""
        if self._bar is None:
            self._bar = self._tqdm(
                total=total,
                desc=self.label,
                unit=self.unit,
                file=self.stream if self.stream is not None else sys.stderr,
                dynamic_ncols=True,
            )
        self._bar.update(done - self._bar.n)
        if done >= total:
            self._bar.close()
            self._bar = None


def _tqdm() -> Any:
    """Return ``tqdm.tqdm``, or ``None`` when tqdm is not installed."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


def default_progress(label: str = "scene headers", unit: str = "scene") -> Progress:
    """Return the progress display of ``progress=True``: tqdm's bar if installed."""
    if _tqdm() is not None:
        return TqdmProgress(label, unit=unit)
    return StderrProgress(label, unit=unit)


def resolve_progress(
    progress: ProgressSpec,
    total: int,
    *,
    label: str = "scene headers",
    unit: str = "scene",
    auto_min: int = AUTO_MIN_SCENES,
    size: int | None = None,
) -> Progress | None:
    """Return the callable that ``progress=`` names for a step of ``total`` ``unit`` s.

    ``None`` shows progress only when stderr is a terminal and the step's ``size``
    (default ``total``) is at least ``auto_min``.
    """
    if progress is None:
        interactive = getattr(sys.stderr, "isatty", lambda: False)()
        large = (total if size is None else size) >= auto_min
        return default_progress(label, unit) if interactive and large else None
    if progress is True:
        return default_progress(label, unit)
    if progress is False:
        return None
    return progress


class Counter:
    """Count the work of one step and report it to a progress callable (or to nothing).

    Args:
        report: the callable :func:`resolve_progress` returned, or ``None``.
        total: the work of the step, in its unit.
    """

    def __init__(self, report: Progress | None, total: int) -> None:
        self.report = report
        self.total = total
        self.done = 0

    def add(self, count: int = 1) -> None:
        """Count ``count`` more units done (never beyond ``total``) and report them."""
        self.done = min(self.done + count, self.total)
        if self.report is not None and count:
            self.report(self.done, self.total)

    def finish(self) -> None:
        """Count the rest of the work done, so that a bar is closed."""
        self.add(self.total - self.done)

    def track(self, items: Iterable[T]) -> Iterator[T]:
        """Yield ``items``, counting one unit after each (a completed future, a scene...)."""
        for item in items:
            yield item
            self.add()


def start_progress(
    progress: ProgressSpec,
    total: int,
    *,
    label: str,
    unit: str,
    auto_min: int,
    size: int | None = None,
) -> Counter:
    """Return a :class:`Counter` for a step of ``total`` ``unit`` s named ``label``.

    **Usage**::

        counter = start_progress(progress, len(jobs), label="valid fractions",
                                 unit="scene", auto_min=20)
        for future in counter.track(as_completed(futures)):
            future.result()

    Args:
        progress: what the step's ``progress=`` was given (see the module docstring).
        total: the work of the step.
        label: the bar's label.
        unit: what one count is (a singular noun).
        auto_min: the least ``size`` shown by default (``progress=None``) on a terminal.
        size: what ``auto_min`` is compared to, when not ``total`` (e.g. chips, where a
            chip counts more than once).
    """
    report = resolve_progress(progress, total, label=label, unit=unit, auto_min=auto_min, size=size)
    return Counter(report, total)


R = TypeVar("R")


def run_counted(
    run: Callable[[T], R], jobs: Sequence[T], workers: int, counter: Counter
) -> list[R]:
    """``run(job)`` for every job on up to ``workers`` threads, each counted as it completes.

    Returns the results in the order of ``jobs``; the first failure raises as it happens
    (the jobs already started finish first).
    """
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(jobs) or 1))) as pool:
        futures = [pool.submit(run, job) for job in jobs]
        for future in counter.track(as_completed(futures)):
            future.result()
    return [future.result() for future in futures]
