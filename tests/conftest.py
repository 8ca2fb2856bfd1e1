from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from geochips.testing import write_scene


@pytest.fixture
def make_scene(tmp_path: Path):
    """Factory: write a position-encoded GeoTIFF under tmp_path and return its path."""
    counter = itertools.count()

    def make(name: str | None = None, **kwargs: Any) -> str:
        path = tmp_path / (name or f"scene{next(counter)}.tif")
        return write_scene(path, **kwargs)

    return make
