"""From what the user points at to scene headers: what :meth:`ChipIndex.build` reads.

Sources (paths, URLs, STAC; :mod:`geochips.sources`) -> the signer their hrefs need, and
the hrefs without tokens (:mod:`geochips.io.signing`) -> each scene's header, read
concurrently, never pixels (:mod:`geochips.io.headers`) -> the band names and scales a
STAC item declares (:mod:`geochips.sources.stac`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from geochips.errors import InvalidParameterError
from geochips.io.headers import read_headers
from geochips.io.signing import Signer, SignSpec, resolve_signer, unsigned_all
from geochips.progress import ProgressSpec, resolve_progress
from geochips.scene import Scene
from geochips.sources import find_sources
from geochips.sources.stac import with_catalog_bands


def scan_scenes(
    sources: object,
    *,
    overview_level: int | None,
    assets: Sequence[str] | None,
    properties: Sequence[str],
    sign: SignSpec,
    workers: int,
    progress: ProgressSpec,
    gdal_options: Mapping[str, Any] | None,
    grid: str | int | None,
    resampling: str,
) -> tuple[list[Scene], Signer | None]:
    """The headers of every scene ``sources`` name, and the signer that reads them.

    The parameters are :meth:`ChipIndex.build`'s. The scenes hold no signed token.
    """
    if overview_level is not None and (
        isinstance(overview_level, bool)
        or not isinstance(overview_level, (int, np.integer))
        or overview_level < 0
    ):
        raise InvalidParameterError(
            f"overview_level must be None (full resolution) or an int >= 0, "
            f"got overview_level={overview_level!r}"
        )
    scene_sources = find_sources(
        sources, assets=assets, properties=properties, check_grids=grid is None
    )
    signer = resolve_signer(sign, (h for s in scene_sources for h in s.hrefs))
    scene_sources = unsigned_all(signer, scene_sources)  # the index keeps no token
    scenes = read_headers(
        scene_sources,
        overview_level,
        signer=signer,
        workers=workers,
        progress=resolve_progress(progress, len(scene_sources)),
        grid=grid,
        resampling=resampling,
        gdal_options=gdal_options,
    )
    return [
        with_catalog_bands(s, src) for s, src in zip(scenes, scene_sources, strict=True)
    ], signer
