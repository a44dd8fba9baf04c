"""The DICOM core: ingest (files, folders, zip, gzip, bytes), volume builders, series classification, phantoms.

* :mod:`medai.dicom.ingest` -- ``ingest(sources) -> IngestResult`` (``Study -> Series -> Instance``)
* :mod:`medai.dicom.volumes` -- ``build_volume(series)`` (3-D) and ``build_cine(series)`` (native 4-D)
* :mod:`medai.dicom.classify` -- series classification by rules kept as data (``configs/series/rules.yaml``)
* :mod:`medai.dicom.summary` -- the machine-readable summary behind ``medai info``
* :mod:`medai.dicom.phantoms` -- synthetic DICOM studies with known ground truth, generated in code
"""

from __future__ import annotations
