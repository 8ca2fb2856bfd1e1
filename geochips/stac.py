"""STAC Items as scene sources: one scene per item, its chosen assets stacked as bands."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import pystac

from geochips.errors import InvalidParameterError
from geochips.sources import SceneSource


def _items(obj: object) -> Iterator[pystac.Item]:
    if isinstance(obj, pystac.Item):
        yield obj
    elif isinstance(obj, pystac.ItemCollection):
        yield from obj
    elif isinstance(obj, (str, os.PathLike)):
        yield pystac.Item.from_file(os.fspath(obj))
    elif hasattr(obj, "items") and callable(obj.items):  # pystac_client.ItemSearch
        yield from obj.items()
    else:
        raise InvalidParameterError(f"cannot read STAC items from {type(obj).__name__}")


def stac_sources(
    obj: object, *, assets: Sequence[str] | None, properties: Sequence[str] = ()
) -> list[SceneSource]:
    """Return one scene source per STAC item, stacking ``assets`` in order.

    Raises:
        InvalidParameterError: if ``assets`` is not given or an item lacks one of them.
    """
    if not assets:
        raise InvalidParameterError(
            "STAC items need assets=[...] naming the asset keys to read, e.g. assets=['vv']"
        )
    sources = []
    for item in _items(obj):
        missing = [key for key in assets if key not in item.assets]
        if missing:
            raise InvalidParameterError(
                f"STAC item {item.id!r} has no asset {missing}; its assets are "
                f"{sorted(item.assets)}"
            )
        props: dict[str, Any] = {p: item.properties.get(p) for p in properties}
        sources.append(
            SceneSource(
                id=f"{item.id}/{'+'.join(assets)}",
                hrefs=tuple(
                    item.assets[key].get_absolute_href() or item.assets[key].href for key in assets
                ),
                assets=tuple(assets),
                properties=props,
            )
        )
    return sources
