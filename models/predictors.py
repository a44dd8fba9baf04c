"""Registers the concrete predictors of medai (they live in the core and fill :data:`medai.registry.PREDICTORS`).

One line per predictor module; a module not yet present is skipped.
"""

from __future__ import annotations

import importlib

_PREDICTOR_MODULES = (
    "medai.cardiac.predictor",
    "medai.cardiac.lge_predictor",
    "medai.cardiac.dx_predictor",
    "medai.quality.predictor",
    "medai.risk.predictor",
    "medai.derm.predictor",
    "medai.derm.omics",
)

for _name in _PREDICTOR_MODULES:
    try:
        importlib.import_module(_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not _name.startswith(exc.name):
            raise
