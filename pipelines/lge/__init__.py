"""LGE (late gadolinium enhancement) scar segmentation: training, held-out evaluation and cross-validation.

* :mod:`pipelines.lge.config` -- the pydantic recipe schema (``configs/experiment/lge_seg_*.yaml``);
* :mod:`pipelines.lge.data` -- the LightningDataModule (EMIDEC case-level folds / synthetic);
* :mod:`pipelines.lge.module` -- the LightningModule (network + batch Dice + CE, myocardium/infarct/MVO Dice);
* :mod:`pipelines.lge.train` -- ``train_from_recipe`` (the ``medai train`` entry, task ``lge_segmentation``) and
  ``export_package``;
* :mod:`pipelines.lge.evaluate` -- ``medai evaluate heart_mr_lge_*`` through ``Predictor.from_package``;
* :mod:`pipelines.lge.cv` -- k-fold cross-validation (train each fold, evaluate its package on its held-out fold);
* :mod:`pipelines.lge.ship` -- copy one fold package into ``models/packages``, evaluate it, write metadata + card.
"""

from __future__ import annotations

import os

# Same reason as pipelines.cmr: passive OpenMP waiting on a shared CPU (must be set before torch loads).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
