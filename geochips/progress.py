"""Progress of long index builds: a one-line counter on stderr, no dependency.

``ChipIndex.build(progress=...)`` takes ``None`` (the default: a counter on stderr when it
is a terminal and there are at least :data:`AUTO_MIN_SCENES` scenes), ``True`` (always),
``False`` (never) or a callable ``progress(done, total)``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO, TypeAlias

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


def resolve_progress(progress: Progress | bool | None, total: int) -> Progress | None:
    """Return the callable that ``progress=`` names for a build of ``total`` scenes."""
    if progress is None:
        interactive = getattr(sys.stderr, "isatty", lambda: False)()
        return StderrProgress() if interactive and total >= AUTO_MIN_SCENES else None
    if progress is True:
        return StderrProgress()
    if progress is False:
        return None
    return progress
