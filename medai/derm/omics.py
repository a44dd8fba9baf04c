"""Psoriasis omics classifier: 12 WGCNA module eigengenes -> lesional / non-lesional / healthy skin.

The model is a standardised multinomial logistic regression stored as plain numbers in ``omics_model.json``
(:class:`OmicsLinearModel`; no pickled code in the package). ``PsoriasisOmicsPredictor`` (registry name
``psoriasis_omics``, ``input_kind = "factors"``) takes one sample's eigengenes as a mapping ``{"ME1": float, ...}``
(or a sequence in the package's feature order) and returns the three class probabilities plus the modules that
moved this sample's prediction most (``risks`` stay empty; ``extras["top_modules"]``).

Input caveat (also in the model card): eigengene values must come from the same module definitions as COPS
(projection of the sample's normalised expression on the COPS module loadings). The loadings are not part of the
COPS release used here, so a hospital must compute eigengenes with the same WGCNA modules; values far outside the
training range are flagged.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel

from medai.domain.codes import Code
from medai.domain.prediction import ClassProbability, Contribution, Prediction, QualityFlag, Severity
from medai.errors import ConfigError, InputValidationError
from medai.inference.predictor import Predictor
from medai.registry import PREDICTORS

logger = logging.getLogger(__name__)

MODEL_FILE = "omics_model.json"

#: coded omics classes (SNOMED CT psoriasis 9014002 for lesional skin; local codes for the sample types)
OMICS_CLASS_CODES: dict[str, Code] = {
    "lesional": Code(value="9014002", scheme="SCT", meaning="Psoriasis (lesional skin sample)"),
    "non_lesional": Code(value="skin-nonlesional", scheme="99MEDAI", meaning="Non-lesional skin of psoriasis patient"),
    "healthy_control": Code(value="skin-healthy", scheme="99MEDAI", meaning="Skin of healthy control"),
}


class OmicsLinearModel(BaseModel):
    """Standardised multinomial logistic regression as numbers.

    ``p = softmax(((x - mean) / scale) @ coef.T + intercept)``; ``coef`` is ``(K, F)``.
    """

    features: list[str]
    classes: list[str]
    mean: list[float]
    scale: list[float]
    coef: list[list[float]]
    intercept: list[float]
    train_min: list[float] = []
    train_max: list[float] = []

    @classmethod
    def from_sklearn(cls, pipeline: Any, features: list[str], classes: list[str], X: np.ndarray) -> OmicsLinearModel:
        """From a fitted ``Pipeline(StandardScaler, LogisticRegression)`` (class order = ``classes`` indices)."""
        scaler, lr = pipeline[0], pipeline[-1]
        coef = np.asarray(lr.coef_)
        intercept = np.asarray(lr.intercept_)
        if coef.shape[0] == 1:  # binary
            coef = np.vstack([-coef[0] / 2, coef[0] / 2])
            intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
        order = [list(lr.classes_).index(i) for i in range(len(classes))]
        return cls(
            features=features,
            classes=classes,
            mean=scaler.mean_.tolist(),
            scale=scaler.scale_.tolist(),
            coef=coef[order].tolist(),
            intercept=intercept[order].tolist(),
            train_min=X.min(0).tolist(),
            train_max=X.max(0).tolist(),
        )

    def standardise(self, X: np.ndarray) -> np.ndarray:
        """``(N, F)`` -> standardised ``(N, F)``."""
        return (np.asarray(X, np.float64) - np.asarray(self.mean)) / np.asarray(self.scale)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """``(N, F)`` features -> ``(N, K)`` probabilities."""
        z = self.standardise(np.atleast_2d(X)) @ np.asarray(self.coef).T + np.asarray(self.intercept)
        z = z - z.max(1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(1, keepdims=True)


def validate_factors(factors: Mapping[str, Any] | Sequence[float] | np.ndarray, features: list[str]) -> np.ndarray:
    """Check one sample's eigengenes and return them ``(F,) float64`` in model order.

    Raises:
        InputValidationError: missing, unexpected, non-numeric or non-finite values (one detail per field).
    """
    problems: list[dict[str, Any]] = []
    if isinstance(factors, Mapping):
        lookup = {str(k).upper(): v for k, v in factors.items()}
        wanted = {f.upper(): f for f in features}
        for k in lookup:
            if k not in wanted:
                problems.append({"field": k, "problem": "unexpected", "value": lookup[k]})
        values = []
        for f in features:
            if f.upper() not in lookup:
                problems.append({"field": f, "problem": "missing", "value": None})
                values.append(math.nan)
            else:
                values.append(lookup[f.upper()])
    else:
        values = list(np.asarray(factors, dtype=object).ravel())
        if len(values) != len(features):
            raise InputValidationError(
                f"expected {len(features)} eigengene values ({', '.join(features)}), got {len(values)}",
                details=[{"field": "factors", "problem": "wrong_length", "value": len(values)}],
            )
    out = np.empty(len(features))
    for i, (f, v) in enumerate(zip(features, values, strict=True)):
        if any(p["field"] == f for p in problems):
            continue
        try:
            out[i] = float(v)
        except (TypeError, ValueError):
            problems.append({"field": f, "problem": "not_a_number", "value": str(v)})
            continue
        if not math.isfinite(out[i]):
            problems.append({"field": f, "problem": "not_finite", "value": str(v)})
    if problems:
        desc = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
        raise InputValidationError(
            f"invalid module eigengenes ({desc}). Send all of {', '.join(features)} as finite numbers.",
            details=problems,
        )
    return out


@PREDICTORS.register("psoriasis_omics")
class PsoriasisOmicsPredictor(Predictor):
    """Lesional / non-lesional / healthy skin from 12 module eigengenes."""

    input_kind: ClassVar[str] = "factors"

    def load(self, **kwargs: Any) -> None:
        """Read ``omics_model.json``."""
        path = self.package_dir / MODEL_FILE
        try:
            self.model = OmicsLinearModel.model_validate(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{self.package_dir}: unreadable {MODEL_FILE}: {exc}") from exc

    @property
    def features(self) -> list[str]:
        """Feature names in model order (``ME1`` .. ``ME12``)."""
        return list(self.model.features)

    def predict(self, inputs: Mapping[str, Any] | Sequence[float] | np.ndarray, top: int = 5) -> Prediction:
        """Class probabilities for one sample; ``extras["top_modules"]`` ranks the modules by their contribution
        (standardised value x coefficient) to the predicted class's logit."""
        x = validate_factors(inputs, self.features)
        m = self.model
        probs = m.predict_proba(x[None])[0]
        k = int(np.argmax(probs))
        z = m.standardise(x[None])[0]
        contrib = z * np.asarray(m.coef)[k]
        order = np.argsort(-np.abs(contrib))[:top]
        top_modules = [
            Contribution(factor=m.features[i], value=float(x[i]), contribution=float(contrib[i])) for i in order
        ]
        flags = []
        if m.train_min and m.train_max:
            lo, hi = np.asarray(m.train_min), np.asarray(m.train_max)
            span = hi - lo
            out = [m.features[i] for i in range(len(x)) if x[i] < lo[i] - 0.5 * span[i] or x[i] > hi[i] + 0.5 * span[i]]
            if out:
                flags.append(
                    QualityFlag(
                        code="eigengene_out_of_range",
                        severity=Severity.WARNING,
                        message=f"{', '.join(out)} far outside the training range: were the eigengenes computed "
                        "with the COPS module definitions?",
                    )
                )
        classes = [
            ClassProbability(
                name=c, code=OMICS_CLASS_CODES[c].model_dump() if c in OMICS_CLASS_CODES else None, probability=float(p)
            )
            for c, p in zip(m.classes, probs, strict=True)
        ]
        return Prediction(
            model=self.ref,
            classes=classes,
            flags=flags,
            extras={
                "predicted_class": m.classes[k],
                "top_modules": top_modules,
                "model_version": self.metadata.version,
            },
        )


def write_model(path: Path, model: OmicsLinearModel) -> Path:
    """Write ``omics_model.json`` into the package folder ``path``."""
    path.mkdir(parents=True, exist_ok=True)
    out = path / MODEL_FILE
    out.write_text(model.model_dump_json(indent=2))
    return out
