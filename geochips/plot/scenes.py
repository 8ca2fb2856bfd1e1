"""Pictures of an index in each scene's pixel grid: the chips over the scene, read coarse.

**Usage**::

    splits = geochips.spatial_split(index, {"train": 0.8, "val": 0.2}, seed=0)
    plot.plot_index(splits, aoi="fields.geojson")   # splits over each scene, dropped hatched

``x`` is the column and ``y`` the row of the grid the index reads; the background is a
coarse read of the scene from its overviews (:func:`geochips.io.coarse.read_coarse`, within
``max_pixels``), never its full resolution. This is the picture that shows a split is
leak-free: no chip of one split overlaps a chip of another.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely

from geochips.coordinates import has_ground
from geochips.errors import InvalidParameterError
from geochips.index import ChipIndex
from geochips.io.coarse import read_coarse
from geochips.plot.figures import COLORS, axes_grid, boxes, new_figure
from geochips.plot.samples import Stretch, as_array, overlay, pick_bands, to_rgb
from geochips.plot.splits import AOI_COLOR, DROPPED, Parts, add_legend, dropped_by, split_parts
from geochips.scene import Scene
from geochips.select.aoi import AoiLike, aoi_in_scene, read_aoi

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

SceneKey = tuple[str, int | None]  # scene id and overview level, as in chip ids

CHIP_ALPHA = 0.35
"""Opacity of chip fills."""


def plot_index(
    index_or_splits: ChipIndex | Mapping[str, ChipIndex],
    scene: int | str | None = None,
    *,
    aoi: AoiLike | None = None,
    crs: str | None = None,
    max_scenes: int = 6,
    max_pixels: int = 2**18,
    bands: Sequence[int] | None = None,
    stretch: Stretch = "percentile",
    db: bool = False,
    alpha: float = CHIP_ALPHA,
) -> Figure:
    """Draw the chip grid over each scene's coarse image, coloured by split.

    Args:
        index_or_splits: a :class:`~geochips.ChipIndex`, or the :class:`~geochips.Splits`
            of :func:`geochips.spatial_split` (chips coloured by split in
            :data:`~geochips.plot.figures.COLORS` order, the chips it dropped hatched by
            reason: :data:`DROPPED`).
        scene: one scene only, by id or by position in the index's ``scenes``; default:
            the first ``max_scenes`` scenes the chips lie on, one subplot each.
        aoi: an area of interest to outline (anything :func:`geochips.filter_aoi` takes).
        crs: the AOI's CRS, as in :func:`geochips.filter_aoi`.
        max_scenes: how many scenes at most, by default.
        max_pixels: pixels per band of each scene's background read.
        bands: 1-based band positions of the background, as in
            :func:`~geochips.plot.plot_sample`.
        stretch: ``"percentile"`` or ``"minmax"``, as in :func:`~geochips.plot.plot_sample`.
        db: draw the background in decibels, as in :func:`~geochips.plot.plot_sample`.
        alpha: opacity of the chips' fill.

    Returns:
        A new figure, one subplot per scene; titles say how each scene was read.

    Raises:
        InvalidParameterError: on bad input, an unknown ``scene``, or an AOI with a scene
            that has no CRS (nor GCPs) to place it on.
    """
    parts, dropped = split_parts(index_or_splits)
    if not isinstance(max_scenes, int) or max_scenes < 1:
        raise InvalidParameterError(f"max_scenes must be a positive int, got {max_scenes!r}")
    scenes = _scenes([*parts, (None, dropped)] if dropped is not None else parts)
    chosen = _choose(scenes, parts[0][1], scene, max_scenes)
    area = read_aoi(aoi, crs) if aoi is not None else None
    fig = new_figure(1.0, 1.0)
    for ax, key in zip(axes_grid(fig, len(chosen), 4.0), chosen, strict=True):
        found, index = scenes[key]
        how = _background(ax, index, found, pick_bands(found.count, bands), max_pixels, stretch, db)
        for k, (_, part) in enumerate(parts):
            color = COLORS[k % len(COLORS)]
            _draw_chips(ax, part, key, facecolor=(color, alpha), edgecolor=color, linewidth=0.6)
        for reason, (hatch, color) in DROPPED.items():
            if dropped is not None:
                style = {"facecolor": "none", "edgecolor": color, "hatch": hatch}
                _draw_chips(ax, dropped_by(dropped, reason), key, **style)
        if area is not None:
            _draw_aoi(ax, found, *area)
        ax.set(xlim=(0, found.width), ylim=(found.height, 0), aspect="equal")
        ax.set_title(f"{found.id}\n{how}", fontsize=8)
    total = sum(len(p) for _, p in parts)
    fig.suptitle(f"{total} chips on {len(scenes)} scene(s), {len(chosen)} shown", fontsize=9)
    add_legend(fig, parts, dropped, aoi=area is not None)
    return fig


def _key(scene: Scene) -> SceneKey:
    return scene.id, scene.overview_level


def _scenes(parts: Parts) -> dict[SceneKey, tuple[Scene, ChipIndex]]:
    """Each scene chips lie on, in order of position in its index, with that index."""
    found: dict[SceneKey, tuple[int, Scene, ChipIndex]] = {}
    for _, part in parts:
        for s in np.unique(as_array(part.column("scene"))).tolist():
            scene = part.scenes[s]
            found.setdefault(_key(scene), (s, scene, part))
    ordered = sorted(found.items(), key=lambda item: item[1][0])
    return {key: (scene, part) for key, (_, scene, part) in ordered}


def _choose(
    scenes: Mapping[SceneKey, tuple[Scene, ChipIndex]],
    index: ChipIndex,
    scene: int | str | None,
    max_scenes: int,
) -> list[SceneKey]:
    if scene is None:
        return list(scenes)[:max_scenes]
    if isinstance(scene, int) and -len(index.scenes) <= scene < len(index.scenes):
        key = _key(index.scenes[scene])
        if key in scenes:
            return [key]
    matches = [key for key in scenes if key[0] == scene]
    if isinstance(scene, str) and matches:
        return matches[:1]
    ids = ", ".join(repr(key[0]) for key in list(scenes)[:5])
    raise InvalidParameterError(
        f"scene={scene!r} is no scene the chips lie on; give a scene id or a position in "
        f"index.scenes, e.g. one of {ids}{' ...' if len(scenes) > 5 else ''}"
    )


def _rows(part: ChipIndex, key: SceneKey) -> np.ndarray:
    on = [s for s, scene in enumerate(part.scenes) if _key(scene) == key]
    return np.flatnonzero(np.isin(as_array(part.column("scene")), on))


def _background(
    ax: Axes,
    index: ChipIndex,
    scene: Scene,
    bands: list[int],
    max_pixels: int,
    stretch: Stretch,
    db: bool,
) -> str:
    """Draw the scene read coarse (in its pixel grid) and return how it was read."""
    if any(scene.is_warped(f) for f in range(len(scene.hrefs))):
        ax.set_facecolor("0.85")
        return "no background (files resampled onto the scene's grid)"
    area = (0, 0, scene.height, scene.width)
    picked = [b + 1 for b in bands]
    coarse = read_coarse(scene, index.signer, area, picked, max_pixels, index.gdal_options)
    data, nodata = coarse.data, scene.nodata
    if nodata is None:
        valid = np.ones(data.shape[1:], dtype=bool)
    else:
        valid = ~np.isnan(data).all(axis=0) if np.isnan(nodata) else (data != nodata).any(axis=0)
    rgb, drawn = to_rgb(data, valid, stretch=stretch, db=db)
    ax.imshow(
        overlay(rgb, drawn, None), extent=(0, scene.width, scene.height, 0), interpolation="nearest"
    )
    return coarse.how


def _draw_chips(ax: Axes, part: ChipIndex, key: SceneKey, **style: Any) -> None:
    rows = _rows(part, key)
    if len(rows):
        r, c, h, w = (
            as_array(part.column(k))[rows] for k in ("row_off", "col_off", "height", "width")
        )
        ax.add_collection(boxes(c, r, c + w, r + h, **style))


def _draw_aoi(ax: Axes, scene: Scene, geometry: shapely.Geometry, crs: str) -> None:
    """Outline the AOI in the scene's pixel grid, brought there as filter_aoi brings it."""
    from matplotlib.collections import LineCollection

    if not has_ground(scene):
        raise InvalidParameterError(
            f"scene {scene.name} has no CRS (nor GCPs), so the AOI cannot be drawn on it; "
            "pass scene= a georeferenced scene, or aoi=None"
        )
    whole = {"row_off": np.array([0]), "col_off": np.array([0])}
    whole |= {"height": np.array([scene.height]), "width": np.array([scene.width])}
    pixels = aoi_in_scene(geometry, crs, scene, whole, frame="pixel")
    lines = [
        shapely.get_coordinates(ring)
        for part in shapely.get_parts(pixels)
        for ring in (shapely.get_rings(part) if isinstance(part, shapely.Polygon) else [part])
    ]
    ax.add_collection(LineCollection(lines, colors=AOI_COLOR, linewidths=1.5))
