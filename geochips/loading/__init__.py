"""The loading layer, the only one that imports torch: samples, batches and samplers.

* :mod:`~geochips.loading.dataset` — :class:`ChipDataset`, the map-style dataset;
* :mod:`~geochips.loading.collate` — :func:`collate`, samples into ``(N, C, H, W)`` batches;
* :mod:`~geochips.loading.samplers` — :class:`BlockShuffleSampler`, rank-aware;
* :mod:`~geochips.loading.transforms` — flips and 90° rotations applied jointly to every key
  of a sample (users import it as :mod:`geochips.transforms`);
* :mod:`~geochips.loading.slots` — batch memory a DataLoader worker reuses (with the private
  :mod:`~geochips.loading._shm`).
"""
