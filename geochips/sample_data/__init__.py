"""Real sample scenes shipped with geochips (provenance and licences in README.md here)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

SCENES = ("cog_gcps.tif", "scene_band1.tif", "scene_band2.tif", "RGB.byte.tif")


def path(name: str) -> Path:
    """Return the path of the shipped sample file ``name`` (one of :data:`SCENES`)."""
    if name not in SCENES:
        raise FileNotFoundError(f"no sample scene {name!r}; there are {', '.join(SCENES)}")
    return Path(str(files(__name__).joinpath(name)))
