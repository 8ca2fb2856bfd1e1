"""Selection: ChipIndex in, ChipIndex (or splits) out, mostly without reading pixels.

* :mod:`~geochips.select.aoi` — chips in an area of interest;
* :mod:`~geochips.select.valid` — valid (not nodata) fractions from coarse masks;
* :mod:`~geochips.select.ground` — each chip's ground in one frame CRS (or its pixel box);
* :mod:`~geochips.select.conflicts` — which chips share ground: the rule the proof checks;
* :mod:`~geochips.select.leakage` — the independent proof that splits share no ground;
* :mod:`~geochips.select.blocks` — blocks of ground cut, dealt to splits and settled;
* :mod:`~geochips.select.splits` — spatially blocked train/val/test splits;
* :mod:`~geochips.select.checksums` — per-chip checksums, read once, checked at read time.
"""
