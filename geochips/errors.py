"""Exceptions and warnings raised by geochips.

Every error geochips raises on purpose derives from :class:`GeochipsError` and also from
the builtin that a caller would catch without knowing geochips, so ``except ValueError``
keeps working::

    GeochipsError
    ├── InvalidParameterError (ValueError)     size, stride, overlap, edge, bands, ...
    ├── SceneReadError (OSError)                a scene could not be opened or read
    │   ├── SceneHeaderError                    headers of one or more scenes were unusable
    │   └── SceneChangedError                   a file no longer matches its indexed header
    ├── DiskSpaceError (OSError)                a folder lacks the space for local copies
    ├── IncompatibleScenesError (ValueError)    assets of one scene are not co-registered
    ├── DtypeConversionError (TypeError)        a requested cast could wrap or truncate
    ├── ChipNotFoundError (KeyError)            no chip has this id
    ├── CollateError (ValueError)               samples of a batch cannot be stacked
    ├── TransformError (RuntimeError)           a sample transform raised on a chip
    ├── LeakageError (ValueError)               chips of different splits share ground
    └── IndexFileError (ValueError)             a saved index is malformed

    GeochipsWarning (UserWarning)
    ├── SmallSceneWarning                       a scene yields no chip under the edge policy
    ├── TileAlignmentWarning                    chips straddle the tiles of their COGs
    └── OverviewWarning                         a scene has no overview to read coarse

Messages name the scene by its href with any query string removed (signed URLs carry
their token there), the window when there is one, and what to do about it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

LISTED_FAILURES = 10
"""Failures listed one by one in a :class:`SceneHeaderError`; past them it summarises."""


class GeochipsError(Exception):
    """Base class for all geochips errors."""


class InvalidParameterError(GeochipsError, ValueError):
    """A parameter is out of range or contradicts another one."""


class SceneReadError(GeochipsError, OSError):
    """A scene could not be opened or read."""


class SceneHeaderError(SceneReadError):
    """The headers of one or more scenes could not be read or are unusable.

    Args:
        message: what went wrong, naming the scene(s).
        failures: the individual errors of several scenes (default: this error alone).
        reason: a short cause of a single failure (``"not found"``, ``"HTTP 404"``,
            ``"not a raster"``...), which :meth:`of_many` counts failures by.
        total: scenes read, failed or not (default: the failures).
    """

    def __init__(
        self,
        message: str,
        failures: Sequence[Exception] | None = None,
        reason: str | None = None,
        total: int | None = None,
    ) -> None:
        super().__init__(message)
        self.failures: list[Exception] = list(failures) if failures is not None else [self]
        """Every scene's error, each naming its scene id and href."""
        self.total = total if total is not None else len(self.failures)
        """Scenes whose headers were read (the failed ones and the others)."""
        self.reason = reason
        """The short cause of a single failure, when known."""

    @classmethod
    def of_many(cls, failures: Sequence[Exception], total: int) -> SceneHeaderError:
        """Return one error for the ``failures`` of ``total`` scenes (two or more).

        Up to :data:`LISTED_FAILURES` are listed whole; past that the message counts them
        by cause and lists the first few, and :attr:`failures` has them all.
        """
        head = f"{len(failures)} of {total} scenes failed"
        if len(failures) <= LISTED_FAILURES:
            listing = "\n  - ".join(map(str, failures))
            return cls(f"{head}:\n  - {listing}", failures, total=total)
        by_cause = "; ".join(f"{n} x {cause}" for cause, n in count_causes(failures))
        shown = 3
        listing = "\n  - ".join(str(exc).split("\n")[0] for exc in failures[:shown])
        return cls(
            f"{head}, by cause: {by_cause}. The first {shown}:\n  - {listing}\n"
            f"  ... and {len(failures) - shown} more (SceneHeaderError.failures has them all)",
            failures,
            total=total,
        )


def count_causes(failures: Sequence[BaseException]) -> list[tuple[str, int]]:
    """``(cause, count)`` of ``failures``, commonest first.

    A cause is a failure's ``reason`` (``"not found"``, ``"HTTP 403"``...) if it has one,
    else its exception type.
    """
    return Counter(getattr(f, "reason", None) or type(f).__name__ for f in failures).most_common()


class SceneChangedError(SceneReadError):
    """A file differs from the header the index holds (replaced or rewritten since)."""


class DiskSpaceError(GeochipsError, OSError):
    """A folder lacks the disk space that local copies of scenes need."""


class IncompatibleScenesError(GeochipsError, ValueError):
    """Assets stacked into one scene disagree on their grid."""


class DtypeConversionError(GeochipsError, TypeError):
    """A requested dtype conversion could wrap around or truncate values."""


class ChipNotFoundError(GeochipsError, KeyError):
    """No chip of the index has the requested chip id."""

    def __str__(self) -> str:
        # KeyError.__str__ repr()s its argument, which would quote the whole sentence.
        return str(self.args[0]) if self.args else ""


class CollateError(GeochipsError, ValueError):
    """Samples of one batch cannot be stacked into a tensor."""


class TransformError(GeochipsError, RuntimeError):
    """A :class:`~geochips.ChipDataset` ``transform`` raised on a chip (see ``__cause__``)."""


class LeakageError(GeochipsError, ValueError):
    """Chips of different splits share ground or pixels (see ``.report.leaks``)."""

    def __init__(self, message: str, report: object = None) -> None:
        super().__init__(message)
        self.report = report
        """The :class:`~geochips.select.leakage.LeakageReport` with every offending pair."""


class IndexFileError(GeochipsError, ValueError):
    """A saved chip index is missing, malformed or of an unknown version."""


class GeochipsWarning(UserWarning):
    """Base class for all geochips warnings."""


class SmallSceneWarning(GeochipsWarning):
    """A scene is smaller than one chip and yields no chip under the edge policy."""


class TileAlignmentWarning(GeochipsWarning):
    """The chip grid is not aligned to the scenes' internal tiles: chips decode extra tiles."""


class OverviewWarning(GeochipsWarning):
    """A scene has no overview where one was wanted, so it was read decimated at its level."""
