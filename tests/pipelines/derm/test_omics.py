"""Psoriasis omics flow on the real COPS data: leave-one-study-out, module stability, package, evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medai.derm.cohort import OmicsCohort
from medai.inference.predictor import Predictor
from pipelines import evaluate_function, train_function
from pipelines.derm.omics import (
    OmicsModelConfig,
    evaluate_cli,
    leave_one_study_out,
    study_variance_explained,
    train_from_recipe,
)

ROOT = Path(__file__).resolve().parents[3]
RECIPE = ROOT / "configs" / "experiment" / "derm_psoriasis_omics.yaml"


def test_dispatch() -> None:
    assert train_function("omics_classification") is train_from_recipe
    assert evaluate_function("skin_omics_psoriasis_cls") is evaluate_cli


def test_leave_one_study_out_on_real_psoriasis(data_dir: Path) -> None:
    cohort = OmicsCohort.from_cops_psoriasis(data_dir / "derm" / "omics_cops")
    res = leave_one_study_out(cohort, OmicsModelConfig())
    p = res["pooled"]
    assert p["n_studies"] == 10 and p["n"] == 445
    assert not np.isnan(res["oof_probabilities"]).any()  # every sample predicted by a model that never saw its study
    assert p["auc_lesional_vs_rest"] > 0.95  # plain logistic regression reaches ~0.97-0.99
    assert 0.6 < p["auc_ovr_macro"] <= 1.0
    assert res["ranks"].shape == (10, 12)


def test_train_package_and_loso_evaluation(data_dir: Path, tmp_path: Path) -> None:
    pkg = tmp_path / "omics_pkg"
    res = train_from_recipe(RECIPE, [f"package_dir={pkg}", "study_diagnostics_ad=false"])
    mods = res["modules"]
    assert [m["rank"] for m in mods] == list(range(1, 13))
    assert all(0 <= m["top3_frequency"] <= 1 and 0 <= m["lesional_sign_agreement"] <= 1 for m in mods)
    meta = json.loads((pkg / "metadata.json").read_text())
    assert meta["predictor"] == "psoriasis_omics" and meta["metrics"]["loso/auc_lesional_vs_rest"] > 0.95
    assert Predictor.from_package(pkg).predict([0.0] * 12).classes
    out = tmp_path / "omics_eval.json"
    evaluate_cli("skin_omics_psoriasis_cls", data_dir / "derm" / "omics_cops", "auto", out, pkg)
    doc = json.loads(out.read_text())
    assert doc["is_held_out"] is True and "leave-one-study-out" in doc["protocol"]
    assert doc["auc_lesional_vs_rest"] == pytest.approx(meta["metrics"]["loso/auc_lesional_vs_rest"])


def test_hospital_cohort_loso_and_external_evaluation(tmp_path: Path) -> None:
    """A lupus-like cohort from CSVs trains with the same recipe; external evaluation of the package works."""
    rng = np.random.default_rng(0)
    n, feats = 120, [f"ME{i}" for i in range(1, 13)]
    labels = rng.choice(["lesional", "non_lesional", "healthy_control"], n)
    X = rng.normal(size=(n, 12)) * 0.05
    X[labels == "lesional", 0] += 0.08
    X[labels == "healthy_control", 1] += 0.08
    d = tmp_path / "cohort"
    d.mkdir()
    ids = [f"s{i}" for i in range(n)]
    pd.DataFrame(X, index=ids, columns=feats).to_csv(d / "matrix.csv")
    pd.DataFrame({"sample": ids, "label": labels, "study": [f"st{i % 4}" for i in range(n)]}).to_csv(
        d / "labels.csv", index=False
    )
    pkg = tmp_path / "pkg"
    res = train_from_recipe(
        RECIPE,
        [
            "data.format=csv",
            f"data.matrix_csv={d / 'matrix.csv'}",
            f"data.labels_csv={d / 'labels.csv'}",
            "data.class_names=[lesional, non_lesional, healthy_control]",
            f"package_dir={pkg}",
        ],
    )
    assert res["loso"]["pooled"]["n_studies"] == 4 and res["loso"]["pooled"]["auc_lesional_vs_rest"] > 0.8
    out = tmp_path / "ext.json"
    doc = evaluate_cli("x", d, "external", out, pkg)
    assert doc["protocol"].startswith("shipped model applied") and doc["auc_lesional_vs_rest"] > 0.8


def test_study_variance_explained() -> None:
    X = np.array([[0.0, 1.0], [0.0, -1.0], [10.0, 1.0], [10.0, -1.0]])
    eta = study_variance_explained(X, ["a", "a", "b", "b"])
    assert eta[0] == pytest.approx(1.0) and eta[1] == pytest.approx(0.0)
