"""Real sample scenes shipped with geochips (provenance and licences in README.md here)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

SCENES = ("cog_gcps.tif", "scene_band1.tif", "scene_band2.tif", "RGB.byte.tif")
"""The scenes of the demo."""
LABELLED = ("spacenet_atlanta.tif", "spacenet_atlanta_buildings.geojson")
"""A scene and its vector labels: a WorldView-2 image with 43 building footprints."""


def path(name: str) -> Path:
    """Return the path of the sample file ``name`` (in :data:`SCENES` or :data:`LABELLED`)."""
    if name not in SCENES + LABELLED:
        raise FileNotFoundError(
            f"no sample file {name!r}; there are {', '.join(SCENES + LABELLED)}"
        )
    return Path(str(files(__name__).joinpath(name)))
