"""Turn what the user points at into scene sources: ids and hrefs, no raster I/O.

Accepted, alone or in any iterable:

* a local path or URL of a raster (``"scene.tif"``, ``"https://host/scene.tif"``,
  ``"s3://bucket/key.tif"``);
* a mapping ``{scene_id: href}`` (or ``{scene_id: [href, ...]}`` to stack files as bands);
* a STAC Item, ItemCollection, pystac-client search, or the path/URL of STAC Item JSON
  (see :mod:`geochips.sources.stac`), combined with ``assets=``;
* a STAC-GeoParquet catalog: a ``.parquet`` path or a pyarrow table
  (:mod:`geochips.sources.geoparquet`, ``pip install geochips[stac-geoparquet]``);
* a :class:`SceneSource`.

A plain path's scene id is its file name without extension; where two files share a name
(``a/B04.tif``, ``b/B04.tif``), their paths relative to the common folder are used.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TypeAlias

from geochips import hrefs
from geochips.errors import InvalidParameterError
from geochips.scene import SceneSource
from geochips.sources.geoparquet import is_stac_geoparquet
from geochips.sources.stac import stac_sources

PathLike: TypeAlias = str | os.PathLike[str]


RASTER_EXTENSIONS = (".tif", ".tiff", ".vrt", ".jp2", ".img", ".nc", ".hdf", ".h5")


def _is_stac(obj: object, assets: Sequence[str] | None = None) -> bool:
    """Return whether ``obj`` is STAC rather than a raster.

    STAC: pystac objects, STAC dicts, ``.json`` paths/URLs and, when ``assets=`` is given,
    any path/URL that is not a raster file (STAC API item URLs such as
    ``.../collections/<c>/items/<id>`` have no extension).
    """
    if is_stac_geoparquet(obj):
        return True
    module = type(obj).__module__
    if module.startswith(("pystac", "pystac_client")):
        return True
    if isinstance(obj, Mapping):
        return "stac_version" in obj and obj.get("type") in ("Feature", "FeatureCollection")
    if not isinstance(obj, (str, os.PathLike)):
        return False
    path = os.fspath(obj).split("?")[0].lower()
    if path.endswith(".json"):
        return True
    return assets is not None and not path.endswith(RASTER_EXTENSIONS)


def find_sources(
    sources: object,
    *,
    assets: Sequence[str] | None = None,
    properties: Sequence[str] = (),
    check_grids: bool = True,
) -> list[SceneSource]:
    """Return the scene sources named by ``sources``, in order.

    ``check_grids=False`` skips the STAC ``proj:`` check that assets share a grid (for
    assets that will be resampled onto one).

    Raises:
        InvalidParameterError: on an unknown kind of source, no source at all, or two
            scenes with the same id.
    """
    found: list[SceneSource] = []
    plain: list[str] = []

    def flush() -> None:
        found.extend(_path_sources(plain))
        plain.clear()

    def visit(obj: object) -> None:
        if isinstance(obj, SceneSource):
            flush()
            found.append(obj)
        elif _is_stac(obj, assets):
            flush()
            found.extend(
                stac_sources(obj, assets=assets, properties=properties, check_grids=check_grids)
            )
        elif isinstance(obj, (str, os.PathLike)):
            plain.append(hrefs.normalize(obj))
        elif isinstance(obj, Mapping):
            flush()
            for scene_id, value in obj.items():
                files = (value,) if isinstance(value, (str, os.PathLike)) else tuple(value)
                found.append(SceneSource(str(scene_id), tuple(hrefs.normalize(f) for f in files)))
        elif isinstance(obj, Iterable):
            for item in obj:
                visit(item)
        else:
            raise InvalidParameterError(
                f"cannot index {type(obj).__name__} {obj!r}: give raster paths or URLs, a "
                "{scene_id: href} mapping, or STAC items with assets=[...]"
            )

    visit(sources)
    flush()
    if not found:
        raise InvalidParameterError(f"no scene to index in {sources!r}")
    if assets is not None and not any(s.assets for s in found):
        raise InvalidParameterError(
            "assets= selects STAC assets, but no source is a STAC item; "
            "pass pystac Items or STAC Item JSON, or drop assets="
        )
    seen: dict[str, SceneSource] = {}
    for source in found:
        if source.id in seen:
            raise InvalidParameterError(
                f"two scenes have the id {source.id!r} ({hrefs.redact(seen[source.id].hrefs[0])} "
                f"and {hrefs.redact(source.hrefs[0])}); pass a {{scene_id: href}} mapping to "
                "name them"
            )
        seen[source.id] = source
    return found


def _path_sources(paths: list[str]) -> list[SceneSource]:
    ids = [hrefs.stem(hrefs.redact(p)) for p in paths]
    if len(set(ids)) < len(ids):
        clean = [hrefs.redact(p).split("://", 1)[-1] for p in paths]
        prefix = os.path.commonpath(clean) if len(clean) > 1 else os.path.dirname(clean[0])
        ids = [os.path.splitext(os.path.relpath(p, prefix))[0] for p in clean]
    return [SceneSource(i, (p,)) for i, p in zip(ids, paths, strict=True)]
