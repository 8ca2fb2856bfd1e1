"""The I/O layer: the only place that opens files or sets GDAL configuration.

* :mod:`~geochips.io.settings` — GDAL options, and the context each open runs in;
* :mod:`~geochips.io.gdallog` — what GDAL said during a read (decode warnings, causes);
* :mod:`~geochips.io.signing` — signing hrefs in the reading process (Planetary Computer);
* :mod:`~geochips.io.headers` — scene headers, never pixels;
* :mod:`~geochips.io.reader` — chip windows (:class:`~geochips.io.reader.Reader`), each
  file checked against its header when opened (:mod:`~geochips.io.handles`), with the
  handles and GDAL scope of each thread (:mod:`~geochips.io.threads`), retries of failed
  remote reads (:mod:`~geochips.io.retries`) and the fill of padded windows
  (:mod:`~geochips.io.padding`);
* :mod:`~geochips.io.masks` — coarse valid masks from overviews;
* :mod:`~geochips.io.scan` — what ``ChipIndex.build`` reads: sources, signer, headers;
* :mod:`~geochips.io.parquet` — the saved index (GeoParquet, one file or a folder) and
  loading it, whole or in part; :mod:`~geochips.io.index_save` writes it.
"""
