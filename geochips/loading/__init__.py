"""The loading layer, the only one that imports torch: samples, batches and samplers.

* :mod:`~geochips.loading.dataset` — :class:`ChipDataset`, the map-style dataset;
* :mod:`~geochips.loading.collate` — :func:`collate`, samples into ``(N, C, H, W)`` batches;
* :mod:`~geochips.loading.samplers` — :class:`BlockShuffleSampler`, rank-aware;
* :mod:`~geochips.loading.slots` — batch memory a DataLoader worker reuses (with the private
  :mod:`~geochips.loading._shm`).
"""
