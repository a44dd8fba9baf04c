"""The cine diagnosis predictor (registered as ``cine_dx``): ACDC 5-class diagnosis from a segmented cine.

Package (``heart_mr_cine_dx``): ``inference.json`` (:class:`CineDxInferenceConfig`: the segmentation package it
runs on, the classes with their codes, the features per modality, the estimators, the ensembles of them and which
is primary, the training medians used for attributions) plus one file per estimator: ``baseline.skops`` (a
scikit-learn pipeline: median imputation + calibrated random forest / gradient boosting) and ``fusion/`` (a
:class:`models.fusion.FusionClassifier`, loaded through :data:`medai.registry.ESTIMATORS`). An ensemble (``ensemble``:
baseline + fusion) averages its members' calibrated probabilities; it has no file of its own.

Inputs, from the most raw to the most processed (all end in :meth:`predict`):

* :meth:`predict_volumes` -- the ED and ES image volumes (+ height/weight): segmentation by the package's cine model
  (``CineSegPredictor.segment_volume``, the same code as ``medai analyze``), then :func:`cine_dx_features`;
* :meth:`predict_cine` -- a cine label map with its ED/ES frames (the ``cine_diagnosis`` analysis);
* :meth:`predict` -- ``{"features": {name: value}, "modalities": [...] (optional subset to use)}``.

The :class:`Prediction` holds one :class:`ClassProbability` per class (calibrated), and extras:
``predicted_class``, ``estimator``, ``modalities_used``, ``modality_contributions`` (drop of the predicted class'
probability when the modality is removed; for the fusion model also ``modality_weights``, its attention over the
modalities present), ``feature_attributions`` (drop when the feature is set to its training median; occlusion)
and ``features``.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from medai.cardiac.dx_features import cine_dx_features
from medai.domain.prediction import ClassProbability, Prediction, QualityFlag, Severity
from medai.domain.volume import LabelMap, Volume
from medai.errors import ConfigError, InputValidationError
from medai.inference.predictor import Predictor
from medai.measurements.cardiac import PatientInfo
from medai.registry import PREDICTORS

logger = logging.getLogger(__name__)


class DxClass(BaseModel):
    """One diagnostic class: the label as the training data writes it, a display name and a coded concept."""

    model_config = ConfigDict(extra="forbid")

    name: str
    display: str
    code: dict[str, str]


class CineDxInferenceConfig(BaseModel):
    """``inference.json`` of a cine diagnosis package."""

    model_config = ConfigDict(extra="forbid")

    seg_model: str = "heart_mr_cine_seg"
    classes: list[DxClass] = Field(min_length=2)
    modalities: dict[str, list[str]] = Field(min_length=1)
    estimators: dict[str, str] = Field(min_length=1, description="name -> file or folder in the package")
    fusion_estimator: str = Field("fusion", description="which of `estimators` is the fusion model")
    ensembles: dict[str, list[str]] = Field(
        default_factory=dict, description="name -> member estimators whose probabilities are averaged")
    primary: str
    medians: dict[str, float] = Field(default_factory=dict, description="training medians (occlusion baseline)")

    @property
    def features(self) -> list[str]:
        """Every feature, in model-input order."""
        return [f for names in self.modalities.values() for f in names]

    @property
    def names(self) -> list[str]:
        """Every estimator a predictor can load: the fitted ones, then the ensembles."""
        return [*self.estimators, *self.ensembles]

    @model_validator(mode="after")
    def _ensembles_name_fitted_estimators(self) -> CineDxInferenceConfig:
        for name, members in self.ensembles.items():
            unknown = [m for m in members if m not in self.estimators]
            if name in self.estimators or not members or unknown:
                raise ValueError(f"ensemble {name!r} must be a new name over fitted estimators "
                                 f"({', '.join(self.estimators)}); it names {unknown or members or 'none'}")
        return self


class MeanEnsemble:
    """The mean of fitted classifiers' probabilities (each in its own ``classes_`` order, aligned here)."""

    def __init__(self, members: dict[str, Any]) -> None:
        self.members = members
        first = next(iter(members.values()))
        self.classes_ = np.asarray(list(map(str, first.classes_)))

    def predict_proba(self, X: Any) -> np.ndarray:
        out = np.zeros((len(X), len(self.classes_)))
        for m in self.members.values():
            order = [list(map(str, m.classes_)).index(c) for c in self.classes_]
            out += np.asarray(m.predict_proba(X), dtype=float)[:, order]
        return out / len(self.members)


def stack_ed_es(ed: Volume, es: Volume) -> Volume:
    """A two-frame ``(2, Z, Y, X)`` cine of an ED and an ES volume of the same geometry (frame 0 = ED)."""
    if ed.array.shape != es.array.shape or not np.allclose(ed.affine, es.affine, atol=1e-3):
        raise InputValidationError(
            f"ED {ed.array.shape} and ES {es.array.shape} volumes must share one geometry (same stack)",
            details=[{"field": "es", "problem": "geometry differs from ED"}])
    return Volume(array=np.stack([ed.array, es.array]).astype(np.float32), affine=ed.affine,
                  frame_times_ms=(0.0, 1.0))


@PREDICTORS.register("cine_dx")
class CineDxPredictor(Predictor):
    """ACDC 5-class diagnosis (NOR, DCM, HCM, MINF, RV) from cine features fused over the modalities present."""

    input_kind = "factors"

    def load(self, estimator: str | None = None, seg_predictor: Predictor | None = None, **kwargs: Any) -> None:
        """Read ``inference.json`` and the estimator.

        Args:
            estimator: which of the package's estimators to use (default: its ``primary``).
            seg_predictor: an already loaded cine segmentation predictor (default: loaded on first use from the
                package's ``seg_model``).
        """
        path = self.package_dir / "inference.json"
        if not path.is_file():
            raise ConfigError(f"{self.package_dir} has no inference.json; it is not a cine diagnosis package")
        try:
            self.config = CineDxInferenceConfig.model_validate_json(path.read_text())
        except ValueError as exc:
            raise ConfigError(f"invalid {path}: {exc}") from exc
        name = estimator or self.config.primary
        if name not in self.config.names:
            raise ConfigError(f"{self.package_dir}: no estimator {name!r}; it has {', '.join(self.config.names)}")
        self.estimator_name = name
        if name in self.config.ensembles:  # its members are fitted estimators (checked with inference.json)
            self.estimator = MeanEnsemble({m: self._load_estimator(m) for m in self.config.ensembles[name]})
        else:
            self.estimator = self._load_estimator(name)
        self._seg = seg_predictor

    def _load_estimator(self, name: str) -> Any:
        target = self.package_dir / self.config.estimators[name]
        if not target.exists():
            raise ConfigError(f"{target} is missing from the package")
        if name == self.config.fusion_estimator:
            from medai.registry import ESTIMATORS

            cls = ESTIMATORS.get("fusion_classifier")
            return cls.load(target)  # type: ignore[attr-defined]
        from medai.risk.predictor import load_skops

        return load_skops(target)

    @property
    def is_fusion(self) -> bool:
        """Whether the loaded estimator is the fusion model."""
        return self.estimator_name == self.config.fusion_estimator

    @property
    def fusion_model(self) -> Any | None:
        """The fusion model when it is the loaded estimator or one of its ensemble's members."""
        if self.is_fusion:
            return self.estimator
        if isinstance(self.estimator, MeanEnsemble):
            return self.estimator.members.get(self.config.fusion_estimator)
        return None

    # -- inputs ----------------------------------------------------------------------------------------------------
    @property
    def seg_predictor(self) -> Predictor:
        """The cine segmentation predictor the package runs on (loaded once)."""
        if self._seg is None:
            self._seg = Predictor.from_package(self.config.seg_model)
        return self._seg

    def predict_volumes(self, ed: Volume, es: Volume, patient: PatientInfo | None = None) -> Prediction:
        """Diagnosis from the ED and ES image volumes of a short-axis stack: segment, measure, classify.

        Args:
            ed / es: ``(Z, Y, X)`` grey-level volumes (LPS, true spacing in the affine), one stack geometry.
            patient: height/weight for the indexed volumes and the clinical modality.
        """
        from medai.cardiac.predictor import CineSegPredictor

        seg = self.seg_predictor
        if not isinstance(seg, CineSegPredictor):
            raise ConfigError(f"{self.config.seg_model} is not a cine segmentation package")
        labelmap = seg.segment_volume(stack_ed_es(ed, es))
        pred = self.predict_cine(labelmap, 0, 1, patient)
        pred.label_maps["cine_sax"] = labelmap
        return pred

    def predict_cine(self, labelmap: LabelMap, ed: int, es: int, patient: PatientInfo | None = None) -> Prediction:
        """Diagnosis from a ``(T, Z, Y, X)`` cine label map and its ED/ES frame indices."""
        return self.predict({"features": cine_dx_features(labelmap, ed, es, patient)})

    # -- the model -------------------------------------------------------------------------------------------------
    def _frame(self, rows: list[dict[str, float]]) -> Any:
        import pandas as pd

        cols = self.config.features
        return pd.DataFrame([[float(r.get(c, math.nan)) for c in cols] for r in rows], columns=cols, dtype=float)

    def probabilities(self, rows: list[dict[str, float]]) -> np.ndarray:
        """``(N, K)`` class probabilities of feature rows (missing features NaN), in ``config.classes`` order."""
        X = self._frame(rows)
        proba = np.asarray(self.estimator.predict_proba(X), dtype=float)
        order = [list(map(str, self.estimator.classes_)).index(c.name) for c in self.config.classes]
        return proba[:, order]

    def _drop(self, row: dict[str, float], names: list[str], to_median: bool) -> dict[str, float]:
        out = dict(row)
        for n in names:
            out[n] = self.config.medians.get(n, math.nan) if to_median else math.nan
        return out

    def predict(self, inputs: dict[str, Any]) -> Prediction:
        """Classify one feature row.

        Args:
            inputs: ``{"features": {name: value}}``; optional ``"modalities"``: the subset of the package's
                modalities to use (the others are treated as absent).

        Raises:
            InputValidationError: no features, a non-numeric value, or no modality with a finite feature.
        """
        if not isinstance(inputs, dict) or not isinstance(inputs.get("features"), dict):
            raise InputValidationError("cine_dx takes {'features': {name: value}}",
                                       details=[{"field": "features", "problem": "missing"}])
        row: dict[str, float] = {}
        for k in self.config.features:
            v = inputs["features"].get(k)
            try:
                row[k] = math.nan if v is None else float(v)
            except (TypeError, ValueError):
                raise InputValidationError(f"feature {k!r} is not a number: {v!r}",
                                           details=[{"field": k, "problem": "not a number"}]) from None
        use = inputs.get("modalities")
        if use is not None:
            unknown = sorted(set(use) - set(self.config.modalities))
            if unknown:
                raise InputValidationError(f"unknown modalities {unknown}; this model knows "
                                           f"{sorted(self.config.modalities)}",
                                           details=[{"field": "modalities", "problem": "unknown", "value": unknown}])
            for m, names in self.config.modalities.items():
                if m not in use:
                    row = self._drop(row, names, to_median=False)
        present = [m for m, names in self.config.modalities.items() if any(math.isfinite(row[n]) for n in names)]
        if not present:
            raise InputValidationError("no modality has a finite feature: nothing to classify",
                                       details=[{"field": "features", "problem": "all missing"}])
        # one batch: the row, the row without each present modality, the row with each feature at its median
        variants = [row]
        variants += [self._drop(row, self.config.modalities[m], to_median=False) for m in present if len(present) > 1]
        finite = [n for n in self.config.features if math.isfinite(row[n]) and n in self.config.medians]
        variants += [self._drop(row, [n], to_median=True) for n in finite]
        proba = self.probabilities(variants)
        p0 = proba[0]
        k = int(np.argmax(p0))
        n_mod = len(present) if len(present) > 1 else 0
        mod_contrib = {m: float(p0[k] - proba[1 + i, k]) for i, m in enumerate(present[:n_mod])}
        if len(present) == 1:  # nothing to remove it against: its lift over an uninformed guess
            mod_contrib = {present[0]: float(p0[k] - 1.0 / len(p0))}
        feat_attr = {n: float(p0[k] - proba[1 + n_mod + i, k]) for i, n in enumerate(finite)}
        extras: dict[str, Any] = {
            "predicted_class": self.config.classes[k].name,
            "estimator": self.estimator_name,
            "modalities_used": present,
            "modality_contributions": mod_contrib,
            "feature_attributions": dict(sorted(feat_attr.items(), key=lambda kv: -abs(kv[1]))),
            "features": {n: (v if math.isfinite(v) else None) for n, v in row.items()},
            "attribution_method": "occlusion: drop of the predicted class' probability when a modality is removed "
                                  "or a feature is set to its training median",
        }
        fusion = self.fusion_model
        if fusion is not None and hasattr(fusion, "modality_contributions"):
            w = fusion.modality_contributions(self._frame([row]))
            extras["modality_weights"] = {str(c): float(w[c].iloc[0]) for c in w.columns}
        flags: list[QualityFlag] = []
        missing = [m for m in self.config.modalities if m not in present]
        if missing:
            flags.append(QualityFlag(code="dx_modalities_missing", severity=Severity.INFO,
                                     message=f"Diagnosis made without {', '.join(missing)} (not available)."))
        classes = [ClassProbability(name=c.name, code=c.code, probability=float(p)) for c, p in
                   zip(self.config.classes, p0, strict=True)]
        return Prediction(model=self.ref, classes=classes, flags=flags, extras=extras)


def load_dx(ref: str | Path = "heart_mr_cine_dx", **kwargs: Any) -> CineDxPredictor:
    """The cine diagnosis predictor of a package reference."""
    pred = Predictor.from_package(ref, **kwargs)
    if not isinstance(pred, CineDxPredictor):
        raise ConfigError(f"{ref} is a {pred.metadata.predictor} package, not a cine_dx one")
    return pred
