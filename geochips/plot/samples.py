"""Pictures of samples and batches: a chip's bands stretched, with what it is labelled.

**Usage**::

    from geochips import plot

    fig = plot.plot_sample(ds[0], bands=(3, 2, 1))  # or ds.plot(0, bands=(3, 2, 1))
    fig.savefig("chip.png")
    plot.plot_batch(next(iter(loader)), n=16)      # a batch of geochips.collate

Pixels are drawn as they are read (nearest, one image pixel per data unit): column ``c``,
row ``r`` of the chip covers ``[c, c + 1] x [r, r + 1]`` of the axes, as pixel ``xyxy``
boxes do. Overlays: invalid pixels (``valid`` False: nodata, or outside the scene) are
striped in :data:`INVALID` colours; label classes above 0 are tinted with
:data:`~geochips.plot.figures.COLORS` (class ``k`` by colour ``k - 1``) at
:data:`MASK_ALPHA`; boxes are outlined in :data:`BOX_COLOR`. Only arrays are drawn here
(no file read, no torch): a tensor is converted with ``.numpy()``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from geochips.errors import InvalidParameterError
from geochips.plot.figures import COLORS, axes_grid, boxes, new_figure, root_figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

Stretch = Literal["percentile", "minmax"]
PERCENTILES = (2.0, 98.0)
"""Band values drawn black and white by ``stretch="percentile"``."""
INVALID = ((1.0, 1.0, 1.0), (0.95, 0.35, 0.6))
"""The two colours of the stripes over invalid pixels."""
MASK_ALPHA = 0.45
"""Opacity of the label tint."""
BOX_COLOR = "yellow"


def as_array(value: Any) -> np.ndarray:
    """A NumPy array of a tensor (on any device) or anything array-like; torch not imported."""
    for method in ("detach", "cpu", "numpy"):
        if hasattr(value, method):
            value = getattr(value, method)()
    return np.asarray(value)


def pick_bands(count: int, bands: Sequence[int] | None) -> list[int]:
    """0-based positions of 1-based ``bands``: 1, 2, 3 of three bands or more, else 1.

    Raises:
        InvalidParameterError: unless ``bands`` are 1 or 3 positions from 1 to ``count``.
    """
    if bands is None:
        return [0, 1, 2] if count >= 3 else [0]
    picked = [bands] if isinstance(bands, int) else list(bands)
    if len(picked) not in (1, 3) or not all(
        isinstance(b, int | np.integer) and 1 <= b <= count for b in picked
    ):
        raise InvalidParameterError(
            f"bands are 1 or 3 band positions from 1 to {count}, 1-based as in "
            f"ChipDataset(bands=...), e.g. bands=(3, 2, 1) or bands=(1,); got bands={bands!r}"
        )
    return [int(b) - 1 for b in picked]


def to_rgb(
    data: np.ndarray, valid: np.ndarray, *, stretch: Stretch, db: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Scale ``(k, h, w)`` bands (k = 1 or 3) to an ``(h, w, 3)`` float image in [0, 1].

    Each band is stretched by its own valid, finite pixels (0 elsewhere).

    Returns:
        The image, and where it is valid: ``valid``, less non-finite values (and values
        of 0 or less with ``db``).

    Raises:
        InvalidParameterError: for an unknown ``stretch``.
    """
    if stretch not in ("percentile", "minmax"):
        raise InvalidParameterError(
            f"stretch must be 'percentile' or 'minmax', got stretch={stretch!r}"
        )
    values = data.astype(np.float64)
    if db:
        with np.errstate(divide="ignore", invalid="ignore"):
            values = 10.0 * np.log10(values)  # 0 and below: -inf or NaN, so not valid
    ok = valid & np.isfinite(values).all(axis=0)
    scaled = np.zeros(values.shape)
    for k, band in enumerate(values):
        if ok.any():
            low, high = _limits(band[ok], stretch)
            scaled[k] = np.clip((band - low) / (high - low or 1.0), 0.0, 1.0)
    scaled[:, ~ok] = 0.0
    rgb = np.moveaxis(scaled, 0, -1)
    return (np.repeat(rgb, 3, axis=-1) if len(scaled) == 1 else rgb), ok


def _limits(values: np.ndarray, stretch: Stretch) -> tuple[float, float]:
    if stretch == "percentile":
        low, high = np.percentile(values, PERCENTILES)
        return float(low), float(high)
    return float(values.min()), float(values.max())


def overlay(rgb: np.ndarray, valid: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Tint labelled pixels of ``rgb`` by class and stripe invalid ones (a new array)."""
    out = rgb.copy()
    if mask is not None:
        tinted = (mask > 0) & valid
        classes = np.array([_rgb(c) for c in COLORS])[(mask[tinted] - 1) % len(COLORS)]
        out[tinted] = (1 - MASK_ALPHA) * out[tinted] + MASK_ALPHA * classes
    h, w = valid.shape
    stripe = (np.add.outer(np.arange(h), np.arange(w)) // 3) % 2  # diagonal, 3 pixels wide
    out[~valid] = np.array(INVALID)[stripe[~valid]]
    return out


def plot_sample(
    sample: Mapping[str, Any],
    *,
    bands: Sequence[int] | None = None,
    stretch: Stretch = "percentile",
    db: bool = False,
    ax: Axes | None = None,
    title: bool | str = True,
) -> Figure:
    """Draw one sample: its bands, invalid pixels, label mask and boxes.

    Args:
        sample: a sample of :class:`geochips.ChipDataset` (``image`` ``(C, H, W)``, and
            ``valid``, ``mask``, ``boxes`` when present), tensors or NumPy arrays.
        bands: 1-based band positions: three for RGB (e.g. ``(3, 2, 1)``), one for grey;
            default bands 1, 2, 3 of a chip of three bands or more, else band 1.
        stretch: ``"percentile"`` (the 2 and 98 % values of each band's valid pixels
            black and white) or ``"minmax"``.
        db: draw ``10 * log10(value)``, the values read as SAR intensity (power). For
            amplitude (Sentinel-1 GRD's numbers), that is half of ``10 * log10(amplitude**2)``,
            which the stretch scales away: the picture is the same. Values of 0 or less
            are drawn as invalid.
        ax: axes to draw into; default: a new figure.
        title: chip id, scene and bounds (``True``), none (``False``) or this text.

    Returns:
        The figure drawn into.

    Raises:
        InvalidParameterError: if ``image`` is not ``(C, H, W)`` or ``bands`` do not fit it.
        ImportError: without matplotlib (``pip install geochips[plot]``).
    """
    image = as_array(sample.get("image"))
    if image.ndim != 3:
        raise InvalidParameterError(
            f"a sample's image is (C, H, W), got shape {image.shape}; for a batch use plot_batch"
        )
    h, w = image.shape[1:]
    valid = as_array(sample["valid"])[0] if "valid" in sample else np.ones((h, w), dtype=bool)
    mask = as_array(sample["mask"])[0] if "mask" in sample else None
    picked = image[pick_bands(len(image), bands)]
    rgb, drawn = to_rgb(picked, valid, stretch=stretch, db=db)
    pixels = overlay(rgb, drawn, mask)
    if ax is None:
        ax = new_figure(5.0, 5.0 * h / w + 0.8).add_subplot()
    ax.imshow(pixels, extent=(0, w, h, 0), interpolation="nearest")
    if "boxes" in sample and len(xyxy := as_array(sample["boxes"]).reshape(-1, 4)):
        ax.add_collection(boxes(*xyxy.T, facecolor="none", edgecolor=BOX_COLOR, linewidth=1.2))
    ax.set_axis_off()
    if title:
        ax.set_title(title if isinstance(title, str) else _title(sample), fontsize=8)
    return root_figure(ax)


def plot_batch(
    batch: Mapping[str, Any] | Sequence[Mapping[str, Any]], n: int = 16, **kwargs: Any
) -> Figure:
    """Draw the first ``n`` samples of a batch as a contact sheet, titled by chip id.

    Args:
        batch: what :func:`geochips.collate` returns (``image`` ``(N, C, H, W)``, lists of
            metadata), or a list of samples.
        n: how many samples at most.
        **kwargs: for :func:`plot_sample` (``bands``, ``stretch``, ``db``, ``title``).

    Returns:
        A new figure.

    Raises:
        InvalidParameterError: if ``batch`` is neither, or ``n`` is not a positive int.
    """
    if not isinstance(n, int) or n < 1:
        raise InvalidParameterError(f"n must be a positive int, got n={n!r}")
    samples = _unbatch(batch, n)
    title = kwargs.pop("title", True)
    fig = new_figure(1.0, 1.0)
    for ax, sample in zip(axes_grid(fig, len(samples), 2.5), samples, strict=True):
        text = str(sample.get("chip_id", "")) if title is True else title
        plot_sample(sample, ax=ax, title=text, **kwargs)
    return fig


def _unbatch(
    batch: Mapping[str, Any] | Sequence[Mapping[str, Any]], n: int
) -> list[Mapping[str, Any]]:
    if isinstance(batch, Mapping):
        images = as_array(batch.get("image"))
        if images.ndim != 4 or not len(images):
            raise InvalidParameterError(
                f"a batch's image is (N, C, H, W), got shape {images.shape}; "
                "for one sample use plot_sample"
            )
        size = len(images)
        per_sample = {
            k: v for k, v in batch.items() if not isinstance(v, str) and _length(v) == size
        }
        return [{k: v[i] for k, v in per_sample.items()} for i in range(min(n, size))]
    if isinstance(batch, Sequence) and batch and all(isinstance(s, Mapping) for s in batch):
        return list(batch[:n])
    raise InvalidParameterError(
        "plot_batch takes a batch of geochips.collate (a dict with image (N, C, H, W)) or "
        f"a non-empty list of samples, got {type(batch).__name__}"
    )


def _length(value: Any) -> int | None:
    try:
        return len(value)
    except TypeError:
        return None


def _title(sample: Mapping[str, Any]) -> str:
    lines = [str(sample.get("chip_id", "chip"))]
    bounds = sample.get("bounds")
    if bounds is not None:
        where = ", ".join(f"{v:.6g}" for v in bounds)
        lines.append(f"{sample.get('scene_id', '')}  ({where}) {sample.get('crs') or ''}".strip())
    elif "scene_id" in sample:
        lines.append(str(sample["scene_id"]))
    return "\n".join(lines)


def _rgb(color: str) -> tuple[float, float, float]:
    red, green, blue = (int(color[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return red, green, blue
