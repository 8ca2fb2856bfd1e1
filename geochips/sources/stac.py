"""STAC Items as scene sources: one scene per item, its chosen assets stacked as bands.

Accepted: a ``pystac.Item``, a ``pystac.ItemCollection``, the result of a pystac-client
search (anything with an ``items()`` method), a STAC Item or ItemCollection as a dict, and
the path or URL of STAC Item / ItemCollection JSON, and STAC-GeoParquet catalogs
(:mod:`geochips.sources.geoparquet`). ``assets=["vv", "vh"]`` names the
assets read, stacked as bands in that order; the scene id is
``"<item id>/<asset>+<asset>..."``. Relative asset hrefs resolve against the item's self
href (or the file it was read from).

Assets that carry ``proj:shape`` / ``proj:transform`` (Sentinel-2 on Planetary Computer)
are checked for a common grid here, before any file is opened; other assets are checked
when their headers are read (:func:`geochips.io.headers.read_header`).

Each asset's STAC ``raster:bands`` ``scale``, ``offset`` and ``nodata`` (Earth Search's
Sentinel-2 C1 ``offset: -0.1``, Landsat C2's ``scale: 2.75e-05``) apply where the file's own
header has none (:func:`with_catalog_bands`): ``ChipDataset(scale=True)`` then returns
reflectance, and ``valid`` marks the catalog's nodata.

Item properties named in ``properties=`` (``"datetime"``, ``"platform"``,
``"sat:relative_orbit"``...) become index columns; ``"id"`` and ``"collection"`` are the
item's id and collection.
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import pystac
import pystac.utils

from geochips import hrefs
from geochips.errors import GeochipsWarning, IncompatibleScenesError, InvalidParameterError
from geochips.scene import Scene, SceneSource
from geochips.sources.geoparquet import geoparquet_items, is_stac_geoparquet


def _read_json(href: str) -> dict[str, Any]:
    data: dict[str, Any] = pystac.StacIO.default().read_json(href)
    return data


def _items(obj: object) -> Iterator[tuple[pystac.Item, str | None]]:
    """Yield each item with the href its relative asset hrefs resolve against."""
    if is_stac_geoparquet(obj):
        base = hrefs.normalize(obj) if isinstance(obj, (str, os.PathLike)) else None
        for data in geoparquet_items(obj):
            yield from _dict_items(data, base)
    elif isinstance(obj, pystac.Item):
        yield obj, obj.get_self_href()
    elif isinstance(obj, pystac.ItemCollection):
        for item in obj:
            yield item, item.get_self_href()
    elif isinstance(obj, (str, os.PathLike)):
        href = hrefs.normalize(obj)
        try:
            data = _read_json(href)
        except Exception as exc:  # urllib, OS and JSON errors: all mean "not readable"
            raise InvalidParameterError(
                f"cannot read STAC JSON at {hrefs.redact(href)}: "
                f"{hrefs.redact_text(f'{type(exc).__name__}: {exc}')}. Give the path or URL "
                "of a STAC Item (or ItemCollection) JSON file"
            ) from None
        yield from _dict_items(data, href)
    elif isinstance(obj, Mapping):
        yield from _dict_items(dict(obj), None)
    elif hasattr(obj, "items") and callable(obj.items):  # pystac_client.ItemSearch
        for item in obj.items():
            yield item, item.get_self_href()
    else:
        raise InvalidParameterError(
            f"cannot read STAC items from {type(obj).__name__}: give pystac Items, an "
            "ItemCollection, a pystac-client search, or STAC Item JSON paths/URLs"
        )


def _dict_items(data: dict[str, Any], href: str | None) -> Iterator[tuple[pystac.Item, str | None]]:
    if data.get("type") == "FeatureCollection":
        for feature in data.get("features", []):
            item = pystac.Item.from_dict(feature, preserve_dict=False)
            yield item, item.get_self_href() or href
    elif data.get("type") == "Feature":
        item = pystac.Item.from_dict(data, href=href, preserve_dict=False)
        yield item, item.get_self_href() or href
    else:
        where = f" at {hrefs.redact(href)}" if href else ""
        raise InvalidParameterError(
            f"the JSON{where} is a STAC {data.get('type', 'object')!r}, not an Item or "
            "ItemCollection; search the catalog for items (pystac-client) and pass those"
        )


def _absolute(item: pystac.Item, key: str, base: str | None) -> str:
    """Return the absolute href of asset ``key``, resolved by pystac against ``base``.

    ``base`` is the item's self href, or the ItemCollection file an item without one came
    from; ``file://`` URLs become plain paths, as GDAL and the index want them.
    """
    asset = item.assets[key]
    href = asset.get_absolute_href()
    if href is None and base is not None:
        href = pystac.utils.make_absolute_href(asset.href, base)
    if href is None:
        raise InvalidParameterError(
            f"asset {key!r} of STAC item {item.id!r} has the relative href {asset.href!r} "
            "and the item has no self link to resolve it against; read the item with "
            "pystac.Item.from_file(...) or pass the path/URL of its JSON"
        )
    return hrefs.normalize(
        href.removeprefix("file://") if urlsplit(href).scheme == "file" else href
    )


def _grid(item: pystac.Item, key: str) -> tuple[Any, Any]:
    """Return the ``proj:shape`` and ``proj:transform`` of an asset (``None`` if unknown)."""
    asset = item.assets[key]
    shape = asset.extra_fields.get("proj:shape", item.properties.get("proj:shape"))
    transform = asset.extra_fields.get("proj:transform", item.properties.get("proj:transform"))
    return (
        tuple(shape) if shape is not None else None,
        tuple(transform[:6]) if transform is not None else None,
    )


def _check_grids(item: pystac.Item, assets: Sequence[str]) -> None:
    grids = {key: _grid(item, key) for key in assets}
    first = assets[0]
    for key in assets[1:]:
        (shape_a, tf_a), (shape_b, tf_b) = grids[first], grids[key]
        if None in (shape_a, shape_b):
            continue  # unknown here: the header check decides
        if shape_a != shape_b or (tf_a is not None and tf_b is not None and tf_a != tf_b):
            listing = ", ".join(
                f"{k!r} {'x'.join(map(str, grids[k][0] or ('?',)))}"
                + (f" at {abs(grids[k][1][0]):g} m" if grids[k][1] else "")
                for k in assets
            )
            raise IncompatibleScenesError(
                f"assets of STAC item {item.id!r} are on different grids ({listing}), so "
                f"{first!r} and {key!r} cannot be stacked as bands. Choose assets of one "
                "resolution (e.g. the 10 m bands B02, B03, B04, B08 of Sentinel-2), "
                f"resample onto one asset's grid with grid={first!r}, resampling='bilinear', "
                "or index each resolution separately"
            )


BAND_FIELDS = ("scale", "offset", "nodata")


def _bands(item: pystac.Item, key: str) -> tuple[Mapping[str, float | None], ...]:
    """The ``raster:bands`` scale, offset and nodata of an asset (``()`` if it has none)."""
    listed = item.assets[key].extra_fields.get("raster:bands")
    if not isinstance(listed, list):
        return ()
    out = []
    for band in listed:
        band = band if isinstance(band, Mapping) else {}
        values: dict[str, float | None] = {}
        for name in BAND_FIELDS:
            value = band.get(name)
            if value is not None and not isinstance(value, (int, float, str)):
                value = None
            values[name] = _number(value)
        out.append(values)
    return tuple(out)


def _number(value: Any) -> float | None:
    """A STAC number (``"nan"`` allowed for nodata), else None."""
    try:
        return None if value is None or isinstance(value, bool) else float(value)
    except ValueError:
        return None


def with_catalog_bands(scene: Scene, source: SceneSource) -> Scene:
    """``scene`` with the scale, offset and nodata its STAC item gives where its files do not.

    A file's own non-trivial scale/offset or nodata is kept; where the catalog disagrees
    with it, a :class:`~geochips.errors.GeochipsWarning` names the scene and both values.
    """
    if not source.bands or all(not b for b in source.bands):
        return scene
    catalog = [b for file_bands in _per_band(scene, source) for b in file_bands]
    scales, offsets = list(scene.scales), list(scene.offsets)
    nodatas: set[float] = set()
    disagree: list[str] = []
    for i, band in enumerate(catalog):
        if band.get("nodata") is not None:
            nodatas.add(band["nodata"])  # type: ignore[arg-type]
        stac = (band.get("scale"), band.get("offset"))
        if stac == (None, None) or i >= len(scales):
            continue
        stac_scale = 1.0 if stac[0] is None else stac[0]
        stac_offset = 0.0 if stac[1] is None else stac[1]
        if (scales[i], offsets[i]) == (1.0, 0.0):
            scales[i], offsets[i] = stac_scale, stac_offset
        elif (scales[i], offsets[i]) != (stac_scale, stac_offset):
            disagree.append(
                f"band {i + 1} scale/offset is {(scales[i], offsets[i])} in the file, "
                f"{(stac_scale, stac_offset)} in the item"
            )
    nodata = scene.nodata
    if len(nodatas) == 1:
        stac_nodata = nodatas.pop()
        if nodata is None:
            nodata = stac_nodata
        elif not (nodata == stac_nodata or (math.isnan(nodata) and math.isnan(stac_nodata))):
            disagree.append(f"nodata is {nodata} in the file, {stac_nodata} in the item")
    if disagree:
        warnings.warn(
            f"scene {scene.name} and its STAC item disagree: {'; '.join(disagree)}. geochips "
            "keeps the file's values; fix the file or the item if they are wrong",
            GeochipsWarning,
            stacklevel=3,
        )
    return dataclasses.replace(scene, scales=tuple(scales), offsets=tuple(offsets), nodata=nodata)


def _per_band(scene: Scene, source: SceneSource) -> list[list[Mapping[str, float | None]]]:
    """Catalog entries per file, padded to each file's band count."""
    out = []
    for f, count in enumerate(scene.band_counts):
        listed = list(source.bands[f]) if f < len(source.bands) else []
        out.append((listed + [{}] * count)[:count])
    return out


def _property(item: pystac.Item, name: str) -> Any:
    if name == "id":
        return item.id
    if name == "collection":
        return item.collection_id
    return item.properties.get(name)


def asset_hrefs(obj: object, asset: str) -> dict[str, str]:
    """``{item id: absolute href}`` of asset ``asset`` of every STAC item in ``obj``.

    ``obj`` is anything :func:`stac_sources` reads (Items, an ItemCollection, a search,
    Item JSON paths or URLs, stac-geoparquet).

    Raises:
        InvalidParameterError: if an item lacks the asset (naming the item and its assets)
            or ``obj`` holds no item.
    """
    out = {}
    for item, base in _items(obj):
        if asset not in item.assets:
            raise InvalidParameterError(
                f"STAC item {item.id!r} has no asset {asset!r}; its assets are "
                f"{', '.join(sorted(item.assets))}"
            )
        out[item.id] = _absolute(item, asset, base)
    if not out:
        raise InvalidParameterError(f"no STAC item to take asset {asset!r} from")
    return out


def stac_sources(
    obj: object,
    *,
    assets: Sequence[str] | None,
    properties: Sequence[str] = (),
    check_grids: bool = True,
) -> list[SceneSource]:
    """Return one scene source per STAC item, stacking ``assets`` in order.

    Raises:
        InvalidParameterError: if ``assets`` is not given, an item lacks one of them, a
            relative asset href cannot be resolved, or no item has a named property.
        IncompatibleScenesError: if the items say (``proj:shape``/``proj:transform``) that
            the assets are on different grids.
    """
    if not assets:
        raise InvalidParameterError(
            "STAC items need assets=[...] naming the asset keys to read, e.g. assets=['vv']"
        )
    if isinstance(assets, str):
        assets = [assets]
    if len(set(assets)) < len(assets):
        raise InvalidParameterError(f"assets={list(assets)} names an asset twice")
    if isinstance(properties, str):
        properties = [properties]
    sources = []
    seen_properties: set[str] = {"id", "collection"}
    for item, base in _items(obj):
        missing = [key for key in assets if key not in item.assets]
        if missing:
            raise InvalidParameterError(
                f"STAC item {item.id!r} has no asset {', '.join(map(repr, missing))}; its "
                f"assets are {', '.join(sorted(item.assets))}. Choose assets=[...] from those"
            )
        if check_grids:
            _check_grids(item, assets)
        seen_properties.update(item.properties)
        sources.append(
            SceneSource(
                id=f"{item.id}/{'+'.join(assets)}",
                hrefs=tuple(_absolute(item, k, base) for k in assets),
                assets=tuple(assets),
                properties={p: _property(item, p) for p in properties},
                bands=tuple(_bands(item, k) for k in assets),
            )
        )
    unknown = [p for p in properties if p not in seen_properties]
    if unknown and sources:
        raise InvalidParameterError(
            f"no STAC item has the propert{'y' if len(unknown) == 1 else 'ies'} "
            f"{', '.join(map(repr, unknown))}; items have {', '.join(sorted(seen_properties))}"
        )
    return sources
