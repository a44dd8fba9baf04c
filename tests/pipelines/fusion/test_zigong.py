"""Fusion prognosis flow: a synthetic fusion package through the RiskPredictor, and the Zigong pipeline on a tiny
subset of the real data (skips without it)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medai.errors import ConfigError
from medai.inference.predictor import Predictor
from medai.risk.cohorts import Cohort, surv_y
from medai.risk.predictor import RiskPredictor
from medai.risk.spec import CohortSpec, FeatureSpec, FeatureType
from pipelines.fusion.recipe import FusionModelEntry, FusionRecipe, load_fusion_recipe
from pipelines.fusion.zigong import DEFAULT_RECIPE, EVAL_FILE, FIGURE_FILE, check_modalities, run, write_package

MODS = {"clin": ["age", "sex"], "lab": ["bnp"], "echo": ["lvef"]}


def _cohort(n: int = 300) -> Cohort:
    rng = np.random.default_rng(0)
    spec = CohortSpec(
        name="synthetic",
        features=[
            FeatureSpec(name="age", type=FeatureType.NUMERIC, unit="a"),
            FeatureSpec(name="sex", type=FeatureType.CATEGORICAL, categories=["F", "M"]),
            FeatureSpec(name="bnp", type=FeatureType.NUMERIC, unit="pg/mL"),
            FeatureSpec(name="lvef", type=FeatureType.NUMERIC, unit="%"),
        ],
    )
    X = pd.DataFrame(
        {
            "age": rng.uniform(40, 90, n),
            "sex": pd.Series(rng.choice(["F", "M"], n), dtype=object),
            "bnp": rng.lognormal(6, 1, n),
            "lvef": rng.uniform(15, 70, n),
        }
    )
    X.loc[rng.uniform(size=n) < 0.3, "lvef"] = np.nan  # echo absent in 30 % of rows
    lin = 0.04 * (X["age"] - 65) + 0.5 * np.log(X["bnp"] / 400) - 0.03 * (X["lvef"].fillna(45) - 45)
    t = rng.exponential(150 * np.exp(-lin.to_numpy()))
    y = surv_y(t <= 182, np.minimum(t, 182.0).round() + 1)
    return Cohort("synthetic", "death", "survival", spec, X, y)


def test_fusion_package_through_risk_predictor(tmp_path: Path) -> None:
    from models.fusion import FusionSurvival

    c = _cohort()
    params = {"max_epochs": 15, "d_model": 8, "hidden": 16}
    m = FusionSurvival(modalities=MODS, **params).fit(c.X, c.y)
    recipe = FusionRecipe(
        name="test_fusion", cohort="synthetic", outcome="death", split_from="x.json", modalities=MODS,
        models=[FusionModelEntry(name="fusion_survival")], horizons=[30.0, 182.0], primary_horizon=182.0,
    )  # fmt: skip
    import medai.risk.cohorts as cohorts

    cohorts.OUTCOMES["synthetic"] = {"death": ("survival", "synthetic death")}
    try:
        out = write_package(
            tmp_path / "pkg", m, "test_fusion", "fusion_survival", params, recipe, c, {"dev": [], "test": []}, "x"
        )
    finally:
        del cohorts.OUTCOMES["synthetic"]
    p = Predictor.from_package(out)
    assert isinstance(p, RiskPredictor) and p.config.model_format == "state" and not p.config.impute_absent
    row = {"age": 80, "sex": "M", "bnp": 3000.0, "lvef": 25.0}
    full = p.predict(row)
    assert set(full.extras["modality_weights"]) == set(MODS)
    assert sum(full.extras["modality_weights"].values()) == pytest.approx(1.0)
    # echo absent: masked out (weight 0), not imputed; flagged as handled by the model
    no_echo = p.predict({k: v for k, v in row.items() if k != "lvef"})
    assert no_echo.extras["modality_weights"]["echo"] == 0.0
    assert "handled by the model" in no_echo.flags[0].message
    # a record without any factor is scored at the reference values (as every risk package does), and says so
    empty = p.predict({})
    assert "median/mode" in empty.flags[0].message and sum(empty.extras["modality_weights"].values()) > 0.99
    r = full.risks[0]
    assert 0 < r.horizons["30d"] <= r.horizons["182d"] < 1 and np.all(np.diff(r.survival) <= 1e-12)
    # the batch path gives the same numbers as direct calls of the estimator
    X = c.X.iloc[:20].reset_index(drop=True)
    rows = [{k: (None if pd.isna(v) else v) for k, v in rr.items()} for rr in X.to_dict(orient="records")]
    batch = p.predict_batch(rows)
    np.testing.assert_allclose([b.risks[0].risk_score for b in batch], m.predict(X), rtol=1e-6, atol=1e-9)


def test_recipe_builds_and_grouping_matches_the_spec() -> None:
    from medai.risk.cohorts import SPECS

    r = load_fusion_recipe(DEFAULT_RECIPE)
    assert r.ship == "fusion_survival" and set(r.modalities) == {"clinical", "labs", "echo"}
    check_modalities(SPECS[r.cohort], r.modalities)
    with pytest.raises(ConfigError, match="in no modality"):
        check_modalities(SPECS[r.cohort], {k: v for k, v in r.modalities.items() if k != "echo"})


def test_zigong_pipeline_tiny_subset(data_dir: Path, tmp_path: Path) -> None:
    r = load_fusion_recipe(DEFAULT_RECIPE, ["subsample=300", "cv_folds=2", "bootstrap=20"])
    for m in r.models:
        m.grid = {k: v[:1] for k, v in m.grid.items()}
        if m.name == "rsf":
            m.params["n_estimators"] = 5
        if m.name == "fusion_survival":
            m.params["max_epochs"] = 3
    out = tmp_path / "pkg"
    ev = run(r, out, data_dir, command="test")
    saved = json.loads((out / "evaluation" / EVAL_FILE).read_text())
    assert saved["command"] == "test" and saved["split"]["subsample"] == 300
    scen = saved["test"]["scenarios"]
    assert set(scen) == {"all", *(f"{k} {m}" for k in ("drop", "only") for m in r.modalities)}
    assert set(scen["all"]["models"]) == {"fusion_survival", "coxph", "rsf"}
    assert 0 <= scen["all"]["models"]["fusion_survival"]["c_index"] <= 1
    assert (out / "evaluation" / FIGURE_FILE).stat().st_size > 1000
    assert "| scenario |" in (out / "MODEL_CARD.md").read_text()
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["metrics"]["test/c_index"] == pytest.approx(scen["all"]["models"]["fusion_survival"]["c_index"])
    assert ev["test"]["modality_weights"]["mean_all_rows"]
    assert not (out / "model.skops").exists() and (out / "model" / "weights.pt").is_file()
