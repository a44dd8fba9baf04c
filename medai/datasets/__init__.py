"""Dataset adapters: official releases and manifests -> :class:`SegCase` (image + label arrays, no framework).

* :mod:`medai.datasets.acdc` -- ACDC (MICCAI 2017), both the official NIfTI release and the HDF5 form;
* :mod:`medai.datasets.sunnybrook` -- Sunnybrook Cardiac Data (DICOM + expert contour text files);
* :mod:`medai.datasets.manifest` -- a generic CSV/JSON manifest so a hospital's own data plugs in.

Adapters never import torch or lightning; the training pipeline (``pipelines.cmr``) turns cases into tensors.
"""

from __future__ import annotations

from medai.datasets.base import CardiacPhase, SegCase, split_by_patient

__all__ = ["CardiacPhase", "SegCase", "split_by_patient"]
