"""Pure networks and estimators, each registered by name in :mod:`medai.registry`.

Importing this package registers everything (it is the ``medai.plugins`` entry point). Each submodule registers
its own entries; heavy frameworks (torch, monai) are imported by the submodules that need them.
"""

from __future__ import annotations

import importlib
import logging

logger = logging.getLogger(__name__)

#: submodules that register networks / estimators / predictors. One line per model family.
_SUBMODULES = (
    "models.seg",
    "models.survival",
    "models.derm",
    "models.quality",
    "models.fusion",
    "models.predictors",
)

for _name in _SUBMODULES:
    try:
        importlib.import_module(_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not _name.startswith(exc.name):
            raise
