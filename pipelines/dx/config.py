"""The cine diagnosis recipe (``configs/experiment/dx_*.yaml``, task ``cine_diagnosis``), validated by pydantic."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from medai.cardiac.dx_features import feature_names
from medai.cardiac.dx_predictor import DxClass
from pipelines.cmr.config import read_recipe


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DxData(_Strict):
    """Where the ACDC release is and which split fits the classifiers."""

    root: str = "cardiac/acdc"
    train: str = "train"
    seg_model: str = "heart_mr_cine_seg"
    seg_cv: str | None = Field(
        default=None,
        description="the cine segmentation's CV fold packages (python -m pipelines.cmr.cv): each training patient's "
        "features then come from the fold package that never trained on it, as the shipped segmentation sees a new "
        "patient (seg_model's own segmentations of its training patients are closer to the reference masks)")
    max_patients: int | None = Field(default=None, ge=5, description="smoke tests: first N training patients")


class BaselineConfig(_Strict):
    """The feature baseline: median imputation + random forest or gradient boosting, calibrated."""

    kind: Literal["random_forest", "gradient_boosting"] = "random_forest"
    n_estimators: int = Field(300, ge=10)
    min_samples_leaf: int = Field(2, ge=1)
    calibration: Literal["sigmoid", "isotonic", "none"] = "sigmoid"
    calibration_folds: int = Field(4, ge=2)


class FusionConfig(_Strict):
    """Hyper-parameters of :class:`models.fusion.FusionClassifier` (passed as its constructor arguments)."""

    d_model: int = Field(32, ge=4)
    hidden: int = Field(64, ge=4)
    dropout: float = Field(0.1, ge=0, lt=1)
    pooling: Literal["attention", "gated"] = "attention"
    modality_dropout: float = Field(0.25, ge=0, lt=1)
    lr: float = Field(0.003, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    max_epochs: int = Field(200, ge=1)
    early_stopping: bool = True
    val_fraction: float = Field(0.2, gt=0, lt=0.5)
    patience: int = Field(30, ge=1)
    class_weight: Literal["balanced"] | None = None
    calibrate: bool = True
    seed: int = 42


class DxPackage(_Strict):
    """The exported package."""

    name: str = "heart_mr_cine_dx"
    version: str = "1.0.0"
    out_dir: str | None = None
    register_model: bool = True
    alias: str = "candidate"


class DxRecipe(_Strict):
    """A cine diagnosis recipe."""

    task: Literal["cine_diagnosis"] = "cine_diagnosis"
    name: str
    seed: int = 42
    data: DxData = Field(default_factory=DxData)
    classes: list[DxClass] = Field(min_length=2)
    modalities: dict[str, list[str]] = Field(min_length=1)
    baseline: BaselineConfig = Field(default_factory=BaselineConfig)
    fusion: FusionConfig = Field(default_factory=FusionConfig)
    selection_folds: int = Field(5, ge=2)
    missing_modality_sets: dict[str, list[str]] = Field(default_factory=dict)
    package: DxPackage = Field(default_factory=DxPackage)
    trainer: dict[str, Any] = Field(default_factory=dict, description="unused (no Lightning trainer)")

    @model_validator(mode="after")
    def _known(self) -> DxRecipe:
        known = set(feature_names())
        unknown = sorted({f for fs in self.modalities.values() for f in fs} - known)
        if unknown:
            raise ValueError(f"unknown features {unknown}; medai.cardiac.dx_features knows {sorted(known)}")
        for name, subset in self.missing_modality_sets.items():
            bad = sorted(set(subset) - set(self.modalities))
            if bad or not subset:
                raise ValueError(f"missing_modality_sets.{name}: unknown or empty modalities {bad}")
        return self

    @property
    def features(self) -> list[str]:
        """Every feature, in model-input order."""
        return [f for fs in self.modalities.values() for f in fs]


def load_recipe(path: Path, overrides: list[str] | None = None) -> DxRecipe:
    """Read, override and validate a diagnosis recipe."""
    return read_recipe(DxRecipe, path, overrides, "cine diagnosis")
