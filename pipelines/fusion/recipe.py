"""Recipes of fusion experiments (``configs/experiment/fusion_*.yaml``), validated by pydantic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from medai.errors import ConfigError
from pipelines.risk.recipe import read_raw


class FusionModelEntry(BaseModel):
    """One estimator: registry name, fixed parameters and a grid (lists of values) chosen by CV on development."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, list[Any]] = Field(default_factory=dict)


class FusionRecipe(BaseModel):
    """A fusion survival experiment.

    Attributes:
        task: ``fusion_survival``.
        name / version: package name (``<anatomy>_<modality>_<task>``) and version.
        cohort / outcome: see :data:`medai.risk.cohorts.OUTCOMES` (a survival outcome).
        data: data root or cohort folder (default: the shared real-data root).
        split_from: ``split.json`` (``dev`` / ``test`` row positions) whose held-out rows are the test set.
        modalities: modality name -> factors of the cohort spec; every factor in exactly one modality.
        ship: the estimator whose package is written to ``--out`` (the others are packaged in a temporary folder
            only to be evaluated through the same Predictor).
        models: estimators compared (the ship first or not).
        cv_folds / seed: CV on the development rows (grid selection; reported, never the test rows).
        horizons / primary_horizon: days at which risks are reported; risk groups on the primary horizon.
        bootstrap: resamples of the percentile CIs on the test rows.
        subsample: development / test rows kept (smoke tests only; None = all).
        notes: history of the recipe worth knowing when reading its figures (copied into the evaluation JSON).
    """

    task: str = "fusion_survival"
    name: str
    version: str = "1.0.0"
    description: str = ""
    cohort: str
    outcome: str
    data: str | None = None
    split_from: str
    modalities: dict[str, list[str]]
    ship: str = "fusion_survival"
    models: list[FusionModelEntry]
    cv_folds: int = 5
    seed: int = 20
    horizons: list[float] = Field(default_factory=lambda: [182.0])
    primary_horizon: float = 182.0
    bootstrap: int = 500
    subsample: int | None = None
    notes: list[str] = Field(default_factory=list)


def load_fusion_recipe(path: Path | str, overrides: list[str] | None = None) -> FusionRecipe:
    """Read a recipe, apply ``key=value`` overrides (dotted keys, YAML values) and validate it."""
    raw = read_raw(path, overrides)
    try:
        rec = FusionRecipe.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"invalid fusion recipe {path}: {exc}") from exc
    if rec.ship not in [m.name for m in rec.models]:
        raise ConfigError(f"ship {rec.ship!r} is not one of the recipe's models")
    if rec.primary_horizon not in rec.horizons:
        raise ConfigError("primary_horizon must be one of horizons")
    return rec
