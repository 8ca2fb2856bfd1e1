"""What the pictures of an index share: the parts of a split, their colours and legend.

A :class:`~geochips.Splits` is drawn as its splits, coloured in
:data:`~geochips.plot.figures.COLORS` order, and the chips it dropped
(``splits.report.dropped_chips``), hatched by ``drop_reason`` (:data:`DROPPED`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from geochips.errors import InvalidParameterError
from geochips.index import ChipIndex
from geochips.plot.figures import COLORS
from geochips.plot.samples import as_array
from geochips.select.conflicts import REASONS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Parts = list[tuple[str | None, ChipIndex]]

DROPPED = {"overlap": ("//", "red"), "buffer": ("\\\\", "magenta")}
"""Hatch and colour of chips dropped by a split, by ``drop_reason``."""
AOI_COLOR = "cyan"


def split_parts(obj: Any) -> tuple[Parts, ChipIndex | None]:
    """``(name, index)`` of each split (name None for an index), and the dropped chips.

    Raises:
        InvalidParameterError: unless ``obj`` is a ChipIndex or a dict of them (Splits).
    """
    if isinstance(obj, ChipIndex):
        return [(None, obj)], None
    if isinstance(obj, Mapping) and obj and all(isinstance(v, ChipIndex) for v in obj.values()):
        report = getattr(obj, "report", None)
        return [(str(k), v) for k, v in obj.items()], getattr(report, "dropped_chips", None)
    raise InvalidParameterError(
        "geochips.plot draws a ChipIndex or the Splits of geochips.spatial_split (a dict "
        f"of split names to ChipIndex), got {type(obj).__name__}"
    )


def dropped_by(dropped: ChipIndex, reason: str) -> ChipIndex:
    """The dropped chips of one ``drop_reason``."""
    return dropped.select(as_array(dropped.column("drop_reason")) == reason)


def add_legend(fig: Figure, parts: Parts, dropped: ChipIndex | None, *, aoi: bool) -> None:
    """Name each split (and its chip count), each reason chips were dropped, and the AOI."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[Any] = [
        Patch(color=COLORS[k % len(COLORS)], label=f"{name} ({len(part)})")
        for k, (name, part) in enumerate(parts)
        if name is not None
    ]
    if dropped is not None:
        reasons = as_array(dropped.column("drop_reason"))
        handles += [
            Patch(
                facecolor="none",
                edgecolor=color,
                hatch=hatch,
                label=f"dropped: {REASONS.get(reason, reason)} ({int(np.sum(reasons == reason))})",
            )
            for reason, (hatch, color) in DROPPED.items()
            if np.any(reasons == reason)
        ]
    if aoi:
        handles.append(Line2D([], [], color=AOI_COLOR, label="AOI"))
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=8)
