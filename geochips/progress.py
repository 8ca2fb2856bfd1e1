"""Progress of long index builds: a tqdm bar when tqdm is installed, else a plain counter.

``ChipIndex.build(progress=...)`` takes ``None`` (the default: progress on stderr when it
is a terminal and there are at least :data:`AUTO_MIN_SCENES` scenes), ``True`` (always),
``False`` (never) or a callable ``progress(done, total)``.

With ``pip install geochips[progress]`` (tqdm) the bar shows the rate and the time left
(:class:`TqdmProgress`); without it, a one-line counter (:class:`StderrProgress`) keeps the
core dependencies as they are.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO, TypeAlias

Progress: TypeAlias = Callable[[int, int], None]
AUTO_MIN_SCENES = 20


class StderrProgress:
    """Print ``"<label>: <done>/<total>"`` on one line of ``stream``, at most every ``every`` s.

    Args:
        label: what is counted.
        stream: where to write (default ``sys.stderr``).
        every: seconds between redraws; the last count is always drawn.
    """

    def __init__(
        self, label: str = "scene headers", stream: TextIO | None = None, every: float = 0.2
    ) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.every = every
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        """Draw the count if enough time has passed, or if it is the last one."""
        now = time.monotonic()
        if done < total and now - self._last < self.every:
            return
        self._last = now
        end = "\n" if done >= total else ""
        self.stream.write(f"\r{self.label}: {done}/{total}{end}")
        self.stream.flush()


class TqdmProgress:
    """Draw a tqdm bar on ``stream``: the count, the rate and the time left.

    **Usage**::

        index = geochips.ChipIndex.build(hrefs, size=256, progress=TqdmProgress())

    Args:
        label: what is counted.
        stream: where to draw (default ``sys.stderr``).

    Raises:
        ImportError: if tqdm is not installed (``pip install geochips[progress]``).
    """

    def __init__(self, label: str = "scene headers", stream: TextIO | None = None) -> None:
        bar = _tqdm()
        if bar is None:
            raise ImportError(
                "TqdmProgress needs tqdm: pip install geochips[progress], or pass "
                "progress=True for the plain counter"
            )
        self.label = label
        self.stream = stream
        self._tqdm = bar
        self._bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        """Move the bar to ``done`` of ``total``; the last call closes it."""
        if self._bar is None:
            self._bar = self._tqdm(
                total=total,
                desc=self.label,
                unit="scene",
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


def default_progress() -> Progress:
    """Return the progress display of ``progress=True``: tqdm's bar if installed."""
    return TqdmProgress() if _tqdm() is not None else StderrProgress()


def resolve_progress(progress: Progress | bool | None, total: int) -> Progress | None:
    """Return the callable that ``progress=`` names for a build of ``total`` scenes."""
    if progress is None:
        interactive = getattr(sys.stderr, "isatty", lambda: False)()
        return default_progress() if interactive and total >= AUTO_MIN_SCENES else None
    if progress is True:
        return default_progress()
    if progress is False:
        return None
    return progress
