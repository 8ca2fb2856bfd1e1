"""STAC Items as scene sources: one scene per item, its chosen assets stacked as bands.

Accepted: a ``pystac.Item``, a ``pystac.ItemCollection``, the result of a pystac-client
search (anything with an ``items()`` method), a STAC Item or ItemCollection as a dict, and
the path or URL of STAC Item / ItemCollection JSON. ``assets=["vv", "vh"]`` names the
assets read, stacked as bands in that order; the scene id is
``"<item id>/<asset>+<asset>..."``. Relative asset hrefs resolve against the item's self
href (or the file it was read from).

Assets that carry ``proj:shape`` / ``proj:transform`` (Sentinel-2 on Planetary Computer)
are checked for a common grid here, before any file is opened; other assets are checked
when their headers are read (:func:`geochips.io.headers.read_header`).

Item properties named in ``properties=`` (``"datetime"``, ``"platform"``,
``"sat:relative_orbit"``...) become index columns; ``"id"`` and ``"collection"`` are the
item's id and collection.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import pystac
import pystac.utils

from geochips import hrefs
from geochips.errors import IncompatibleScenesError, InvalidParameterError
from geochips.scene import SceneSource


def _read_json(href: str) -> dict[str, Any]:
    data: dict[str, Any] = pystac.StacIO.default().read_json(href)
    return data


def _items(obj: object) -> Iterator[tuple[pystac.Item, str | None]]:
    """Yield each item with the href its relative asset hrefs resolve against."""
    if isinstance(obj, pystac.Item):
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


def _property(item: pystac.Item, name: str) -> Any:
    if name == "id":
        return item.id
    if name == "collection":
        return item.collection_id
    return item.properties.get(name)


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
            )
        )
    unknown = [p for p in properties if p not in seen_properties]
    if unknown and sources:
        raise InvalidParameterError(
            f"no STAC item has the propert{'y' if len(unknown) == 1 else 'ies'} "
            f"{', '.join(map(repr, unknown))}; items have {', '.join(sorted(seen_properties))}"
        )
    return sources
