"""Files stacked as the bands of one scene: checked against each other, then one Scene.

:mod:`geochips.io.headers` reads what each file of a scene is (shape, dtype, CRS, transform,
GCPs, tiles); here the files are checked to share a grid (or to be resampled onto one, with
the overview level each is read at) and made into a :class:`~geochips.scene.Scene`. No file
is opened here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import rasterio.control
import rasterio.crs
from rasterio.transform import from_gcps

from geochips import hrefs
from geochips.errors import IncompatibleScenesError, InvalidParameterError
from geochips.scene import RESAMPLINGS, Georef, Scene, SceneSource


def _crs_string(crs: rasterio.crs.CRS | None) -> str | None:
    if crs is None:
        return None
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg is not None else crs.to_wkt()


def stack_scene(
    source: SceneSource,
    infos: Sequence[dict[str, Any]],
    ref: int,
    overview_level: int | None,
    resampling: str,
    warped: Sequence[bool],
    levels: Sequence[int | None],
) -> Scene:
    """Return the scene whose bands are the files of ``infos``, on the grid of file ``ref``.

    Args:
        source: the scene's id, hrefs, assets and properties.
        infos: what was read of each file (see :mod:`geochips.io.headers`).
        ref: the file whose grid the scene has.
        overview_level: the level read.
        resampling: how ``warped`` files are resampled onto the grid.
        warped: whether each file is resampled (it is on another grid).
        levels: the overview level each file is read at.

    Raises:
        IncompatibleScenesError: if the files cannot be stacked as bands of one scene.
    """
    files = range(len(infos))
    first = infos[ref]
    labels = source.assets or tuple(hrefs.redact(h) for h in source.hrefs)
    for f in files:
        info, name = infos[f], labels[f]
        if f == ref:
            continue
        # A resampled file only has to agree on what the warp cannot change.
        keys = (
            ["dtypes", "nodata"] if warped[f] else ["shape", "crs", "transform", "dtypes", "nodata"]
        )
        problems = [f"{key} {info[key]} vs {first[key]}" for key in keys if info[key] != first[key]]
        if problems:
            fix = (
                "Resampling needs one dtype and nodata in every file"
                if warped[f]
                else "Index them as separate scenes, choose assets on one grid, or resample "
                "them onto one with grid=<asset>, resampling='bilinear'"
            )
            raise IncompatibleScenesError(
                f"cannot stack {labels[ref]!r} and {name!r} of scene {source.id!r} as "
                f"bands: {'; '.join(problems)}. {fix}"
            )
    dtypes = first["dtypes"]
    if len(dtypes) != 1:
        raise IncompatibleScenesError(
            f"scene {source.id!r} mixes band dtypes {sorted(dtypes)}; geochips reads one "
            "dtype per scene: select bands of one dtype"
        )
    height, width = first["shape"]
    gcps_list, gcps_crs = first["gcps"]
    gcps: tuple[tuple[float, float, float, float], ...] = ()
    if first["crs"] is not None or not (gcps_list or first["transform"].is_identity):
        # A geotransform without a CRS still places chips relative to each other.
        georef: Georef = "transform"
        crs, transform = first["crs"], first["transform"]
    elif gcps_list:
        georef, crs = "gcps", gcps_crs
        full_h, full_w = first["full_shape"]
        sy, sx = height / full_h, width / full_w
        scaled = [
            rasterio.control.GroundControlPoint(row=g.row * sy, col=g.col * sx, x=g.x, y=g.y)
            for g in gcps_list
        ]
        gcps = tuple((g.row, g.col, g.x, g.y) for g in scaled)
        transform = from_gcps(scaled)
    else:
        georef, crs, transform = "none", None, None
    any_warped = any(warped)
    return Scene(
        id=source.id,
        hrefs=source.hrefs,
        assets=source.assets,
        overview_level=overview_level,
        height=height,
        width=width,
        band_counts=tuple(i["count"] for i in infos),
        dtype=next(iter(dtypes)),
        nodata=first["nodata"],
        crs=_crs_string(crs),
        transform=transform,
        georef=georef,
        gcps=gcps,
        tile_shape=tuple(first["tile_shape"]),
        scales=tuple(s for i in infos for s in i["scales"]),
        offsets=tuple(o for i in infos for o in i["offsets"]),
        full_shape=first["full_shape"],
        properties=dict(source.properties),
        resampling=resampling if any_warped else None,
        warped=tuple(warped) if any_warped else (),
        file_levels=tuple(levels) if any_warped else (),
    )


def grid_position(source: SceneSource, grid: str | int, resampling: str) -> int:
    """Return the position of the file that ``grid=`` names (an asset key or a position).

    Raises:
        InvalidParameterError: if ``grid`` or ``resampling`` names nothing of the scene.
    """
    if resampling not in RESAMPLINGS:
        raise InvalidParameterError(
            f"resampling must be one of {', '.join(RESAMPLINGS)}, got {resampling!r}"
        )
    if isinstance(grid, str):
        if grid in source.assets:
            return source.assets.index(grid)
        raise InvalidParameterError(
            f"grid={grid!r} is not an asset of scene {source.id!r}, whose assets are "
            f"{', '.join(map(repr, source.assets)) or 'none (plain files: give a position)'}"
        )
    if isinstance(grid, int) and not isinstance(grid, bool) and 0 <= grid < len(source.hrefs):
        return grid
    raise InvalidParameterError(
        f"grid must be an asset key or a file position 0..{len(source.hrefs) - 1} of scene "
        f"{source.id!r}, got grid={grid!r}"
    )


def warp_level(
    source: SceneSource, file: int, full: dict[str, Any], target: dict[str, Any]
) -> int | None:
    """Return the coarsest overview of a resampled file still as fine as the target grid.

    Reading a 10 m band onto a 160 m grid from full resolution would decode 256 times the
    pixels needed; GDAL's warper does not pick overviews by itself here.
    """
    label = source.assets[file] if source.assets else hrefs.redact(source.hrefs[file])
    if target["crs"] is None or target["gcps"][0] or target["transform"].is_identity:
        raise IncompatibleScenesError(
            f"grid of scene {source.id!r} must be georeferenced by a CRS and a transform to "
            "resample other files onto it; choose another grid="
        )
    if full["crs"] is None or full["transform"].is_identity:
        raise IncompatibleScenesError(
            f"{label!r} of scene {source.id!r} has no CRS and transform (GCP-only or not "
            "georeferenced), so it cannot be resampled onto the scene's grid"
        )
    if full["crs"] != target["crs"]:
        return None
    factor = abs(target["transform"].a) / abs(full["transform"].a)
    level = None
    for position, overview in enumerate(full["overviews"]):
        if overview <= factor * (1 + 1e-6):
            level = position
    return level
