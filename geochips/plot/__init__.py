"""Pictures of samples, batches, indexes and splits, drawn with matplotlib (``geochips[plot]``).

**Usage**::

    from geochips import plot

    plot.plot_sample(ds[0], bands=(3, 2, 1)).savefig("chip.png")   # or ds.plot(0)
    plot.plot_batch(batch, n=16)                   # a contact sheet of geochips.collate output
    plot.plot_index(splits, aoi="fields.geojson")  # the split over each scene: leak-free?
    plot.plot_map(index, column="valid_fraction")  # every chip in lon/lat

Every function returns a :class:`matplotlib.figure.Figure` made without pyplot (no global
state, nothing shown): it works headless and in notebooks, where a returned figure is
displayed. matplotlib is imported when a picture is drawn, so ``import geochips`` never
imports it; without it, drawing raises an ``ImportError`` that says
``pip install geochips[plot]``.

* :mod:`~geochips.plot.samples` draws arrays only (no file, no torch), so that
  :meth:`geochips.ChipDataset.plot` may use it;
* :mod:`~geochips.plot.scenes` draws an index over each scene, read coarse from its
  overviews, and :mod:`~geochips.plot.maps` its footprints on one map;
* :mod:`~geochips.plot.splits` and :mod:`~geochips.plot.figures` hold what they share
  (the parts of a split and their legend; figures, grids and colours).
"""

from geochips.plot.maps import plot_map
from geochips.plot.samples import plot_batch, plot_sample
from geochips.plot.scenes import plot_index

__all__ = ["plot_batch", "plot_index", "plot_map", "plot_sample"]
