"""Cine CMR segmentation training (Lightning) and model package export.

* :mod:`pipelines.cmr.config` -- the pydantic recipe schema (``configs/experiment/cmr_seg_*.yaml``);
* :mod:`pipelines.cmr.data` -- the LightningDataModule (ACDC HDF5 / official release / manifest / synthetic);
* :mod:`pipelines.cmr.module` -- the LightningModule (network + DiceCE + per-structure Dice/HD95);
* :mod:`pipelines.cmr.train` -- ``train_from_recipe`` (the ``medai train`` entry) and ``export_package``.
"""

from __future__ import annotations

import os

# On a shared CPU, OpenMP threads that spin while waiting for descheduled siblings slow training ~7x
# (measured: 7.1 s vs 1.0 s per step with 2 threads on a loaded 2-core machine). Must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
