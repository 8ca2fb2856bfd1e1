"""The loading layer, the only one that imports torch: samples, batches and samplers.

* :mod:`~geochips.loading.dataset` — :class:`ChipDataset`, the map-style dataset, with its
  arguments checked in :mod:`~geochips.loading.arguments` and its batches read in
  :mod:`~geochips.loading.batches`;
* :mod:`~geochips.loading.collate` — :func:`collate`, samples into ``(N, C, H, W)`` batches;
* :mod:`~geochips.loading.samplers` — :class:`BlockShuffleSampler`, rank-aware;
* :mod:`~geochips.loading.dihedral` — :class:`Dihedral`, one flip or 90° rotation applied
  jointly to every key of a sample; :mod:`~geochips.loading.transforms` — random ones and
  ``Compose`` (users import both from :mod:`geochips.transforms`);
* :mod:`~geochips.loading.slots` — batch memory a DataLoader worker reuses (with the private
  :mod:`~geochips.loading._shm`), sent to the main process as a lease on it
  (:mod:`~geochips.loading.leases`);
* :mod:`~geochips.loading.shared` — an index's large columns in shared memory for workers
  started by ``spawn``.
"""
