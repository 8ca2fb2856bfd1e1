"""Labels per chip: vector data burnt into the chip's grid, or label rasters read onto it.

``ChipDataset(index, labels=...)`` takes a :class:`VectorLabels`, a :class:`RasterLabels`,
or anything :class:`VectorLabels` reads (a path, a GeoDataFrame, a GeoJSON mapping), which
then burns 1 into every geometry's pixels and 0 elsewhere. Labels need no torch: the
loading layer turns their arrays into tensors.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any, TypeAlias

from geochips import hrefs
from geochips.errors import IndexFileError, InvalidParameterError
from geochips.io.signing import strip_sas
from geochips.labels.raster import RasterLabeller, RasterLabels
from geochips.labels.vector import MASK_DTYPES, VectorLabeller, VectorLabels

Labels: TypeAlias = VectorLabels | RasterLabels
Labeller: TypeAlias = VectorLabeller | RasterLabeller

__all__ = [
    "MASK_DTYPES",
    "Labeller",
    "Labels",
    "RasterLabels",
    "VectorLabels",
    "as_labels",
    "labeller",
]


def as_labels(labels: Any) -> Labels | None:
    """The label spec ``labels`` names: vector data not wrapped becomes ``VectorLabels``."""
    if labels is None or isinstance(labels, (VectorLabels, RasterLabels)):
        return labels
    return VectorLabels(labels)


def labeller(spec: Labels) -> Labeller:
    """What reads the labels of ``spec`` chip by chip (vector data is read here, once)."""
    if isinstance(spec, VectorLabels):
        return VectorLabeller(spec)
    return RasterLabeller(spec)


def to_json(spec: Labels | None) -> tuple[dict[str, Any] | None, str | None]:
    """``(what a saved index keeps of spec, why it cannot keep it)``; hrefs lose their tokens.

    Labels in memory (a GeoDataFrame, geometries, a callable) cannot be saved: the reason
    says so, and the index is saved without them.
    """
    if spec is None:
        return None, None
    fields = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}
    source = fields.pop("source")
    if isinstance(source, (str, os.PathLike)):
        saved: Any = _saved_href(os.fspath(source))
    elif isinstance(spec, RasterLabels) and isinstance(source, Mapping):
        saved = {str(k): _saved_href(str(v)) for k, v in source.items()}
    else:
        return None, (
            f"its labels come from {type(source).__name__} in memory, not a file; save the "
            "vector data to a file (e.g. GeoDataFrame.to_file) and label with its path"
            if isinstance(spec, VectorLabels)
            else "its RasterLabels source is a callable; give a {scene id: href} mapping"
        )
    if isinstance(fields.get("classes"), Mapping):
        fields["classes"] = {"mapping": [[k, v] for k, v in fields["classes"].items()]}
    elif fields.get("classes") is not None:
        fields["classes"] = list(fields["classes"])
    kind = "vector" if isinstance(spec, VectorLabels) else "raster"
    return {"kind": kind, "source": saved, **fields}, None


def from_json(raw: Any, where: str) -> Labels:
    """The labels a saved index names (see :func:`to_json`).

    Raises:
        IndexFileError: naming the file and what is wrong with its ``labels`` entry.
    """
    kinds = {"vector": VectorLabels, "raster": RasterLabels}
    kind = raw.get("kind") if isinstance(raw, Mapping) else None
    if not isinstance(kind, str) or kind not in kinds:
        raise IndexFileError(
            f"{where!r} has a 'labels' entry that is not labels saved by geochips; rebuild "
            "the index's labels with ChipIndex.with_labels and save it again"
        )
    make = kinds[kind]
    names = {f.name for f in dataclasses.fields(make)}
    try:
        fields = {k: v for k, v in raw.items() if k != "kind"}
        unknown = sorted(set(fields) - names)
        if unknown:
            raise InvalidParameterError(f"unknown fields {unknown}")
        classes = fields.get("classes")
        if isinstance(classes, Mapping):
            fields["classes"] = {k: v for k, v in classes["mapping"]}
        return make(**fields)  # type: ignore[no-any-return]
    except Exception as exc:  # noqa: BLE001 - any failure to use untrusted JSON
        raise IndexFileError(
            f"{where!r} has labels geochips cannot use ({type(exc).__name__}: {exc}); rebuild "
            "them with ChipIndex.with_labels and save the index again"
        ) from None


def _saved_href(href: str) -> str:
    """An href as a saved index keeps it: no token; a local path made absolute."""
    if not hrefs.is_remote(href):
        return os.path.abspath(href)
    clean = strip_sas(href)  # an Azure SAS goes; other query parameters stay, unless secret
    return hrefs.redact(clean) if hrefs.redact_text(clean) != clean else clean
