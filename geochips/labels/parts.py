"""A scene's part of the vector labels: its geometries in its pixel grid, made once.

For each scene, in each process that reads it, the geometries that may touch the scene are
reprojected to its CRS (edges densified first, so they bend as the projection does), mapped
to its pixel grid (through the GCPs for Sentinel-1 GRD scenes) and put in an STRtree, and
the polygons' edges are taken out once for :mod:`.rasterize`; a chip then only queries the
tree and burns the geometries whose envelope meets it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from geochips.coordinates import (
    pixel_to_scene_crs,
    reproject_points,
    same_crs,
    scene_crs_to_pixel,
    window_rings,
)
from geochips.errors import InvalidParameterError
from geochips.labels.rasterize import Edges, polygon_arrays, polygonal, ragged_edges
from geochips.scene import Scene
from geochips.windows import ChipWindow


@dataclass
class ScenePart:
    """The geometries of one scene, in its pixel grid, with their values and a tree."""

    pixels: np.ndarray
    """The geometries as mapped onto the pixel grid (see :attr:`geometries`)."""
    values: np.ndarray
    tree: shapely.STRtree
    """The envelopes of :attr:`pixels`."""
    edges: Edges | None
    """The polygons' edges, when every geometry is a (multi)polygon, which NumPy burns
    (:mod:`.rasterize`); ``None`` otherwise (GDAL burns them)."""
    burnt: np.ndarray
    """``values`` in the dtype NumPy burns them in: ``uint8`` when they fit (0..255)."""
    _valid: np.ndarray | None = None

    @property
    def geometries(self) -> np.ndarray:
        """:attr:`pixels`, made valid (a projection may fold a ring) for GEOS to cut them.

        Burning needs no validity, so the check is made on first use, by boxes and
        :func:`geochips.filter_labels`, not for every scene a dataset reads.
        """
        if self._valid is None:
            self._valid = made_valid(self.pixels)
        return self._valid

    def hits(self, window: ChipWindow) -> np.ndarray:
        """The geometries whose envelope meets ``window``, in file order (the burning order)."""
        box = shapely.box(
            window.col_off,
            window.row_off,
            window.col_off + window.width,
            window.row_off + window.height,
        )
        return np.sort(self.tree.query(box))  # later geometries burn over earlier ones


def made_valid(geometries: np.ndarray) -> np.ndarray:
    """``geometries``, with those GEOS finds invalid made valid (a new array if any is)."""
    invalid = ~shapely.is_valid(geometries)
    if not invalid.any():
        return geometries
    geometries = geometries.copy()
    geometries[invalid] = shapely.make_valid(geometries[invalid])
    return geometries


def make_part(
    scene: Scene,
    geometries: np.ndarray,
    values: np.ndarray,
    tree: shapely.STRtree,
    crs: str,
    where: str,
) -> ScenePart:
    """The part of ``geometries`` (in ``crs``, indexed by ``tree``) that may touch ``scene``.

    Raises:
        InvalidParameterError: the scene has no CRS; ``where`` names the labels.
    """
    if scene.crs is None or scene.georef == "none":
        raise InvalidParameterError(
            f"scene {scene.name} has no CRS, so the labels of {where} cannot be placed on "
            "it; georeference the scene (or give its CRS)"
        )
    # The scene's outline in the labels' CRS picks the geometries that may touch it.
    cols, rows = window_rings(
        np.array([0]), np.array([0]), np.array([scene.height]), np.array([scene.width]), 16
    )
    xs, ys = reproject_points(scene.crs, crs, *pixel_to_scene_crs(scene, cols, rows))
    outline = shapely.polygons(np.stack([xs[0], ys[0]], axis=-1))
    hits = np.sort(tree.query(outline.envelope))
    near = geometries[hits]
    if len(hits) and (scene.georef == "gcps" or not same_crs(crs, scene.crs)):
        # About 4 pixels of the scene in the labels' units: edges follow the projection.
        x0, y0, x1, y1 = outline.bounds
        step = 4 * min((x1 - x0) / scene.width, (y1 - y0) / scene.height)
        near = shapely.segmentize(near, step) if step > 0 else near
    scene_crs = scene.crs

    def to_pixels(coords: np.ndarray) -> np.ndarray:
        x, y = reproject_points(crs, scene_crs, coords[:, 0], coords[:, 1])
        c, r = scene_crs_to_pixel(scene, x, y)
        return np.stack([c, r], axis=-1)

    values = values[hits]
    edges = None
    if not len(hits):
        pixels = near
    elif polygonal(near):
        # The vertices as arrays, mapped, and their edges read from the same arrays.
        coords, offsets = polygon_arrays(near)
        coords = to_pixels(coords)
        pixels = shapely.set_coordinates(near, coords)  # near is this part's own array
        edges = ragged_edges(coords, offsets)
    else:
        pixels = shapely.transform(near, to_pixels)
    small = not len(values) or (values.min() >= 0 and values.max() <= 255)
    burnt = values.astype(np.uint8) if small else values
    return ScenePart(pixels, values, shapely.STRtree(pixels), edges, burnt)
