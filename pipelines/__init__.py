"""Training, evaluation and registration flows (Lightning, MLflow). Imports ``medai`` and ``models``, never ``serving``.

``TRAIN_TASKS`` maps the ``task`` field of a recipe in ``configs/experiment/`` to the function that runs it, and
``EVALUATORS`` maps a registered model name (or a name prefix ending in ``_``) to its evaluation function. Both are
``"module:function"`` strings imported on use, so the CLI stays fast and each flow keeps its heavy imports.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from medai.errors import ConfigError, ModelNotFoundError

TRAIN_TASKS: dict[str, str] = {
    "cmr_segmentation": "pipelines.cmr.train:train_from_recipe",
    "lge_segmentation": "pipelines.lge.train:train_from_recipe",
    "quality_artefact": "pipelines.quality.train:train_from_recipe",
    "cine_diagnosis": "pipelines.dx.train:train_from_recipe",
    "survival": "pipelines.risk.train:train_from_recipe",
    "risk_classification": "pipelines.risk.train:train_from_recipe",
    "skin_lesion_classification": "pipelines.derm.train:train_from_recipe",
    "omics_classification": "pipelines.derm.omics:train_from_recipe",
}

EVALUATORS: dict[str, str] = {
    "heart_mr_": "pipelines.cmr.evaluate:evaluate_cli",
    "heart_mr_lge_": "pipelines.lge.evaluate:evaluate_cli",
    "heart_mr_quality": "pipelines.quality.evaluate:evaluate_cli",
    "heart_mr_cine_dx": "pipelines.dx.evaluate:evaluate_cli",
    "skin_derm_": "pipelines.derm.evaluate:evaluate_cli",
    "skin_omics_": "pipelines.derm.omics:evaluate_cli",
    # every other name is looked up among the risk models
    "": "pipelines.risk.evaluate:evaluate_cli",
}


def _load(target: str) -> Callable[..., Any]:
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)


def train_function(task: str) -> Callable[..., Any]:
    """The training function for a recipe's ``task``."""
    if task not in TRAIN_TASKS:
        raise ConfigError(f"unknown task {task!r} in recipe; known tasks: {', '.join(sorted(TRAIN_TASKS))}")
    return _load(TRAIN_TASKS[task])


def evaluate_function(model: str) -> Callable[..., Any]:
    """The evaluation function for a model name (longest matching prefix wins)."""
    for prefix in sorted(EVALUATORS, key=len, reverse=True):
        if model.startswith(prefix):
            return _load(EVALUATORS[prefix])
    raise ModelNotFoundError(f"no evaluator for {model!r}")  # pragma: no cover - '' always matches
