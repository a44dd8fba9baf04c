"""Adaptive multimodal fusion: :class:`FusionNet` and its scikit-learn / scikit-survival wrappers.

Registered in :data:`medai.registry.NETWORKS` (``fusion_net``) and :data:`medai.registry.ESTIMATORS`
(``fusion_classifier``, ``fusion_survival``, ``fusion_regressor``). Unlike the factories of :mod:`models.survival`
(``factory(numeric, categorical, **params)``), a fusion estimator is built as ``ESTIMATORS.get(name)(modalities=...,
**params)`` -- it does its own preprocessing per modality -- and a fitted one is rebuilt from its saved folder with
``ESTIMATORS.get(name).load(folder)`` (JSON + a plain ``state_dict``; no pickled code).
"""

from __future__ import annotations

from medai.registry import ESTIMATORS
from models.fusion.estimators import (
    ESTIMATOR_CLASSES,
    FusionClassifier,
    FusionEstimator,
    FusionRegressor,
    FusionSurvival,
    cox_breslow_loss,
    load_fusion,
)
from models.fusion.network import FusionNet, TabularEncoder

for _name, _cls in ESTIMATOR_CLASSES.items():
    ESTIMATORS.add(_name, _cls)

__all__ = [
    "FusionClassifier",
    "FusionEstimator",
    "FusionNet",
    "FusionRegressor",
    "FusionSurvival",
    "TabularEncoder",
    "cox_breslow_loss",
    "load_fusion",
]
