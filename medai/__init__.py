"""medai: open medical-AI platform for cardiovascular and dermatology models.

The core package: DICOM ingest, domain types, inference (``Predictor``), measurements, reports and metrics.
It imports nothing from ``models``, ``pipelines`` or ``serving`` (see docs in ``ARCHITECTURE``); registries are
filled through the ``medai.plugins`` entry point group when a name is first looked up.
"""

from __future__ import annotations

__version__ = "0.1.0"
