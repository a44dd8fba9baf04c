"""Recipes of risk experiments (``configs/experiment/risk_*.yaml``), validated by pydantic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError

from medai.errors import ConfigError


class ModelEntry(BaseModel):
    """One estimator to tune: registry name and a parameter grid (lists of values)."""

    name: str
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    #: fit on at most this many (random, fixed-seed) training rows -- e.g. gradient-boosted Cox on IST, whose
    #: loss gradient costs the whole training set at every iteration; evaluation still uses every row.
    max_train_rows: int | None = None


class RiskRecipe(BaseModel):
    """A risk experiment.

    Attributes:
        task: ``survival`` or ``risk_classification`` (``medai train`` dispatch).
        name: registered model name (e.g. ``stroke_ist_death``); also the package folder name.
        cohort / outcome: see :data:`medai.risk.cohorts.OUTCOMES`.
        data: data root or file (default: the shared real-data root).
        test_size / seed: the held-out split (never tuned on).
        cv_folds: folds of the cross-validated search on the development part.
        group_cv: split CV folds by site (hospital / study) when the cohort has one.
        subsample: use only this many rows (smoke tests).
        models: estimators and grids.
        ship: estimator whose final fit is packaged (default: best mean CV score).
        ship_dir: when set, also write the package there (shipped defaults under ``models/packages``).
        importance_repeats / importance_rows: permutation-importance settings (per CV fold).
        bootstrap: bootstrap resamples for test CIs.
        horizons: override of the cohort's horizons (days).
        n_jobs: kept at 1 on shared CPUs.
    """

    task: str
    name: str
    cohort: str
    outcome: str
    description: str = ""
    data: str | None = None
    test_size: float = 0.2
    seed: int = 20
    cv_folds: int = 5
    group_cv: bool = True
    subsample: int | None = None
    models: list[ModelEntry]
    ship: str | None = None
    ship_dir: str | None = None
    importance_repeats: int = 3
    importance_rows: int = 2000
    bootstrap: int = 200
    horizons: list[float] | None = None
    shap: bool = True
    references: list[str] = Field(default_factory=list)


def _set(d: dict[str, Any], dotted: str, value: str) -> None:
    keys = dotted.split(".")
    for k in keys[:-1]:
        d = d.setdefault(k, {})
    d[keys[-1]] = yaml.safe_load(value)


def read_raw(path: Path | str, overrides: list[str] | None = None) -> dict[str, Any]:
    """A recipe file as a dict with ``key=value`` overrides (dotted keys, YAML values) applied, not validated."""
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read recipe {path}: {exc}") from exc
    for ov in overrides or []:
        if "=" not in ov:
            raise ConfigError(f"override {ov!r} is not key=value")
        k, v = ov.split("=", 1)
        _set(raw, k, v)
    return raw


def load_recipe(path: Path | str, overrides: list[str] | None = None) -> RiskRecipe:
    """Read a recipe, apply ``key=value`` overrides (dotted keys, YAML values) and validate it."""
    raw = read_raw(path, overrides)
    try:
        return RiskRecipe.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"invalid risk recipe {path}: {exc}") from exc
