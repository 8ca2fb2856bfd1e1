"""Exceptions and warnings raised by geochips.

Every error geochips raises on purpose derives from :class:`GeochipsError` and also from
the builtin that a caller would catch without knowing geochips, so ``except ValueError``
keeps working::

    GeochipsError
    ├── InvalidParameterError (ValueError)     size, stride, overlap, edge, bands, ...
    ├── SceneReadError (OSError)                a scene could not be opened or read
    │   ├── SceneHeaderError                    headers of one or more scenes were unusable
    │   └── SceneChangedError                   a file no longer matches its indexed header
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


class GeochipsError(Exception):
    """Base class for all geochips errors."""


class InvalidParameterError(GeochipsError, ValueError):
    """A parameter is out of range or contradicts another one."""


class SceneReadError(GeochipsError, OSError):
    """A scene could not be opened or read."""


class SceneHeaderError(SceneReadError):
    """The headers of one or more scenes could not be read or are unusable."""


class SceneChangedError(SceneReadError):
    """A file differs from the header the index holds (replaced or rewritten since)."""


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
