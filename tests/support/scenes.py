"""Scene headers without files, for tests of code that never reads pixels."""

from __future__ import annotations

from typing import Any

from affine import Affine

from geochips.scene import Scene


def scene_header(
    id: str = "scene",
    height: int = 100,
    width: int = 120,
    *,
    crs: str | None = None,
    transform: Affine | None = None,
    **fields: Any,
) -> Scene:
    """Return a scene header without a file, for code that never reads pixels.

    Grids, splits, filters and saved indexes need headers only. ``transform`` makes the
    scene georeferenced (``georef="transform"``); any other :class:`Scene` field can be
    given by name.
    """
    values: dict[str, Any] = {
        "id": id,
        "hrefs": (f"/nowhere/{id}.tif",),
        "assets": (),
        "overview_level": None,
        "height": height,
        "width": width,
        "band_counts": (1,),
        "dtype": "uint16",
        "nodata": None,
        "crs": crs,
        "transform": transform,
        "georef": "none" if transform is None else "transform",
        "full_shape": (height, width),
    }
    values.update(fields)
    return Scene(**values)
