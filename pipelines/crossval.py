"""What the k-fold cross-validations of the segmentation recipes share (:mod:`pipelines.cmr.cv`,
:mod:`pipelines.lge.cv`): the per-fold summary and logging a fold's held-out evaluation to its training run."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np


def log_to_run(run_id: str | None, doc: dict[str, Any], path: Path) -> None:
    """Log a fold's held-out means (``eval/...``) and its evaluation JSON to the fold's MLflow training run."""
    if not run_id:
        return
    import mlflow

    from pipelines import mlflow_utils

    mlflow_utils.setup_tracking()
    with mlflow.start_run(run_id=run_id):
        mlflow_utils.log_metrics({f"eval/{k.replace('.', '/')}": v for k, v in doc["mean"].items()})
        mlflow.log_artifact(str(path), artifact_path="evaluation")


def fold_summary(folds: list[dict[str, Any]]) -> tuple[dict[str, float], dict[str, float]]:
    """Mean and SD over folds of each fold-level mean (counts, ``n_*``, are left out)."""
    keys = sorted({k for f in folds for k in f["mean"] if not k.startswith("n_")})
    mean, sd = {}, {}
    for k in keys:
        v = [f["mean"][k] for f in folds if k in f["mean"] and math.isfinite(f["mean"][k])]
        if v:
            mean[k] = float(np.mean(v))
            sd[k] = float(np.std(v, ddof=1)) if len(v) > 1 else 0.0
    return mean, sd
