"""Cine CMR segmentation training (Lightning) and model package export.

* :mod:`pipelines.cmr.config` -- the pydantic recipe schema (``configs/experiment/cmr_seg_*.yaml``);
* :mod:`pipelines.cmr.data` -- the LightningDataModule (ACDC HDF5 / official release / manifest);
* :mod:`pipelines.cmr.module` -- the LightningModule (network + DiceCE + per-structure Dice/HD95);
* :mod:`pipelines.cmr.train` -- ``train_from_recipe`` (the ``medai train`` entry) and ``export_package``.
"""

from __future__ import annotations
