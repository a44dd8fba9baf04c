"""Psoriasis omics predictor: numbers-only model equals sklearn; factor validation; shipped package."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medai.derm.cohort import OmicsCohort
from medai.derm.omics import OmicsLinearModel, PsoriasisOmicsPredictor, validate_factors
from medai.errors import InputValidationError
from medai.inference.predictor import Predictor
from medai.registry import PREDICTORS

FEATS = [f"ME{i}" for i in range(1, 13)]


def _fit(X: np.ndarray, y: np.ndarray):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X, y)


def test_linear_model_matches_sklearn() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 12))
    y = rng.integers(0, 3, 90)
    X[y == 0, 0] += 2
    pipe = _fit(X, y)
    m = OmicsLinearModel.from_sklearn(pipe, FEATS, ["a", "b", "c"], X)
    assert np.allclose(m.predict_proba(X), pipe.predict_proba(X), atol=1e-10)


def test_factor_validation_messages() -> None:
    good = {f: 0.01 for f in FEATS}
    assert validate_factors(good, FEATS).shape == (12,)
    assert validate_factors({k.lower(): v for k, v in good.items()}, FEATS)[0] == 0.01  # case-insensitive
    bad = dict(good)
    del bad["ME3"]
    bad["ME99"] = 1.0
    bad["ME4"] = "high"
    bad["ME5"] = float("nan")
    with pytest.raises(InputValidationError) as exc:
        validate_factors(bad, FEATS)
    problems = {d["field"]: d["problem"] for d in exc.value.details}
    assert problems == {"ME3": "missing", "ME99": "unexpected", "ME4": "not_a_number", "ME5": "not_finite"}
    with pytest.raises(InputValidationError, match="expected 12"):
        validate_factors([0.0] * 5, FEATS)


def test_shipped_omics_package_predicts_a_real_sample(data_dir: Path) -> None:
    p = Predictor.from_package("skin_omics_psoriasis_cls")
    assert isinstance(p, PsoriasisOmicsPredictor) and PREDICTORS.get("psoriasis_omics") is PsoriasisOmicsPredictor
    assert p.input_kind == "factors"
    cohort = OmicsCohort.from_cops_psoriasis(data_dir / "derm" / "omics_cops")
    i = cohort.labels.index("lesional")
    pred = p.predict(dict(zip(cohort.feature_names, cohort.X[i], strict=True)))
    probs = {c.name: c.probability for c in pred.classes}
    assert set(probs) == {"lesional", "non_lesional", "healthy_control"}
    assert sum(probs.values()) == pytest.approx(1.0)
    assert pred.classes[0].code["value"] == "9014002"
    assert len(pred.extras["top_modules"]) == 5
    assert p.metadata.metrics["loso/auc_lesional_vs_rest"] > 0.9
    far = {f: 5.0 for f in cohort.feature_names}
    assert any(f.code == "eigengene_out_of_range" for f in p.predict(far).flags)
