"""Risk training flow: every recipe builds; smoke runs on the real data log MLflow runs and write packages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medai.risk.cohorts import OUTCOMES
from models.survival import KINDS
from pipelines import TRAIN_TASKS
from pipelines.risk.recipe import load_recipe

RECIPES = sorted(Path(__file__).resolve().parents[3].joinpath("configs", "experiment").glob("risk_*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_every_recipe_builds(path: Path) -> None:
    r = load_recipe(path)
    assert TRAIN_TASKS[r.task] == "pipelines.risk.train:train_from_recipe"
    kind, _ = OUTCOMES[r.cohort][r.outcome]
    for m in r.models:
        assert (KINDS[m.name] == "survival") == (kind == "survival")
    assert (r.task == "survival") == (kind in ("survival", "competing"))
    if r.ship:
        assert r.ship in {m.name for m in r.models}


def test_overrides_and_bad_recipe(tmp_path: Path) -> None:
    from medai.errors import ConfigError

    r = load_recipe(RECIPES[0], ["cv_folds=3", "models=[{name: coxph}]"])
    assert r.cv_folds == 3 and [m.name for m in r.models] == ["coxph"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: survival\nname: x\n")
    with pytest.raises(ConfigError, match="cohort"):
        load_recipe(bad)


def _recipe(name: str) -> Path:
    return next(p for p in RECIPES if p.stem == name)


@pytest.mark.slow
def test_survival_smoke_run(data_dir: Path, tmp_path: Path) -> None:
    import mlflow

    from pipelines.risk.train import train_from_recipe

    s = train_from_recipe(
        _recipe("risk_hf299_death"),
        [
            "cv_folds=3",
            "bootstrap=10",
            "importance_repeats=1",
            "ship_dir=null",
            "models=[{name: coxph}, {name: gbsa, grid: {n_estimators: [20]}}]",
            "ship=coxph",
        ],
    )
    assert s["n_test"] == 60 and set(s["models"]) == {"coxph", "gbsa"}
    cox = s["models"]["coxph"]
    assert len(cox["cv"]["c_index"]) == 3 and 0.55 < cox["test"]["c_index"] < 0.95
    assert len(cox["importance"]) == 11 and cox["importance"][0]["mean"] >= cox["importance"][-1]["mean"]
    assert "sex=female" in cox["test"]["subgroups"] and "calibration@90d" in cox["test"]
    client = mlflow.MlflowClient()
    assert str(client.get_model_version_by_alias("cardio_hf299_death", "candidate").version) == "1"
    runs = mlflow.search_runs(experiment_names=["risk_cardio_hf299_death"])
    assert len(runs) == 3  # parent + one nested run per estimator fit
    from medai.inference.predictor import Predictor

    p = Predictor.from_package("models:/cardio_hf299_death@candidate")
    assert p.predict({"age": 60, "sex": 1, "ejection_fraction": 30, "serum_creatinine": 1.2}).risks[0].horizons


@pytest.mark.slow
def test_ist_binary_and_competing_smoke(data_dir: Path) -> None:
    from pipelines.risk.train import train_from_recipe

    s = train_from_recipe(
        _recipe("risk_stroke_ist_death_6m"),
        [
            "subsample=1500",
            "cv_folds=3",
            "bootstrap=10",
            "importance_repeats=1",
            "importance_rows=300",
            "ship_dir=null",
            "models=[{name: logreg}]",
            "ship=logreg",
        ],
    )
    assert s["n_test"] == 300 and "EXPD6" in s["reference_on_test"]
    assert s["reference_on_test"]["EXPD6"]["matches_outcome"] is True
    assert 0.6 < s["models"]["logreg"]["test"]["auc"] < 0.95
    assert len(s["models"]["logreg"]["importance"]) >= 10  # ranked list of >= 10 factors
    cr = train_from_recipe(_recipe("risk_stroke_ist_recurrence_vs_death"), ["subsample=3000"])
    res = cr["competing_risks"]
    assert res["recurrences"] > 0 and res["deaths"] > 0
    assert 0 <= res["cif"]["recurrence"][-1] < res["cif"]["death"][-1] < 1
    assert "cause_specific/death" in res
    json.dumps(cr, default=float)
