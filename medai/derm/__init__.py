"""Dermatology: skin-lesion images (HAM10000 classes) and psoriasis omics.

* :mod:`medai.derm.labels` -- the coded HAM10000 diagnosis table.
* :mod:`medai.derm.image` -- loading and validation of JPEG/PNG bytes/paths and DICOM VL photographic / dermoscopic
  images into one RGB array type.
* :mod:`medai.derm.preprocess` -- the resize/normalise contract shared by training and the predictor.
* :mod:`medai.derm.cohort` -- loaders for HAM10000, COPS omics, and a hospital's own cohort (CSV).
* :mod:`medai.derm.predictor` -- ``SkinLesionPredictor`` (``skin_lesion``); :mod:`medai.derm.omics` --
  ``PsoriasisOmicsPredictor`` (``psoriasis_omics``).
"""

from __future__ import annotations
