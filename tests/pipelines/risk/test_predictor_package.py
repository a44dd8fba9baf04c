"""RiskPredictor on a real package: one patient, batch, bad input, schema, CLI and evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from medai.errors import InputValidationError
from medai.inference.predictor import Predictor
from medai.risk.predictor import RiskPredictor

PATIENT = {
    "age": 70,
    "sex": 1,
    "ejection_fraction": 20,
    "serum_creatinine": 2.5,
    "serum_sodium": 130,
    "anaemia": 1,
    "high_blood_pressure": 1,
}
HEALTHY = {"age": 45, "sex": 0, "ejection_fraction": 55, "serum_creatinine": 0.9, "serum_sodium": 140}


def test_predict_one_patient(hf_package: Path) -> None:
    p = Predictor.from_package(hf_package)
    assert isinstance(p, RiskPredictor) and p.input_kind == "factors"
    pred = p.predict(PATIENT)
    r = pred.risks[0]
    assert set(r.horizons) == {"30d", "90d", "180d"}
    assert 0 < r.horizons["30d"] < r.horizons["90d"] <= r.horizons["180d"] < 1
    assert len(r.survival) == len(r.survival_times) > 10 and np.all(np.diff(r.survival) <= 1e-12)
    assert r.risk_group == "high" and r.model.version == "0.0.1"
    assert r.contributions[0].factor in {"ejection_fraction", "serum_creatinine", "age", "serum_sodium"}
    assert abs(r.contributions[0].contribution) >= abs(r.contributions[-1].contribution)
    low = p.predict(HEALTHY).risks[0]
    assert low.horizons["180d"] < r.horizons["180d"] and low.risk_group == "low"
    assert any(f.code == "factors_imputed" for f in pred.flags)


def test_batch_equals_single_and_reports_rows(hf_package: Path) -> None:
    p = Predictor.from_package(hf_package)
    batch = p.predict_batch([PATIENT, HEALTHY])
    assert batch[0].risks[0].horizons == pytest.approx(p.predict(PATIENT).risks[0].horizons)
    with pytest.raises(InputValidationError) as exc:
        p.predict_batch([PATIENT, {**HEALTHY, "age": 300}, {"sex": "z"}])
    rows = {(d["row"], d["field"], d["problem"]) for d in exc.value.details}
    assert (1, "age", "out_of_range") in rows and (2, "sex", "wrong_type") in rows
    assert (2, "age", "missing_required") in rows and not any(r[0] == 0 for r in rows)


def test_bad_input_lists_each_field(hf_package: Path) -> None:
    p = Predictor.from_package(hf_package)
    with pytest.raises(InputValidationError) as exc:
        p.predict({"age": "seventy", "sex": 1, "ejection_fraction": 120, "potassium": 4})
    assert {(d["field"], d["problem"]) for d in exc.value.details} == {
        ("age", "wrong_type"),
        ("ejection_fraction", "out_of_range"),
        ("potassium", "unknown_column"),
        ("serum_creatinine", "missing_required"),
    }
    schema = p.input_schema()
    assert schema["required"] == ["age", "sex", "ejection_fraction", "serum_creatinine"]


def test_cli_predict_risk(hf_package: Path, tmp_path: Path) -> None:
    from medai.cli import app

    f = tmp_path / "p.json"
    f.write_text(json.dumps(PATIENT))
    res = CliRunner().invoke(app, ["predict-risk", str(hf_package), "--input", str(f), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["risks"][0]["risk_group"] == "high" and doc["model"]["version"] == "0.0.1"
    res = CliRunner().invoke(app, ["predict-risk", str(hf_package), "--input", str(f)])
    assert res.exit_code == 0 and "risk group" in res.output and "180d" in res.output
    f.write_text(json.dumps({"age": "x", "sex": 4}))
    res = CliRunner().invoke(app, ["predict-risk", str(hf_package), "--input", str(f), "--json"])
    assert res.exit_code == 2
    fields = {d["field"] for d in json.loads(res.output)["details"]}
    assert {"age", "sex", "ejection_fraction", "serum_creatinine"} <= fields


def test_evaluate_cli_on_held_out_rows(hf_package: Path, data_dir: Path, tmp_path: Path) -> None:
    from pipelines import evaluate_function

    out = tmp_path / "ev.json"
    evaluate_function("cardio_hf299_death")(model="x", data=data_dir, fmt="auto", out=out, package=hf_package)
    doc = json.loads(out.read_text())
    assert doc["n"] == 60 and doc["is_test_result"] is True
    assert 0.6 < doc["c_index"] < 0.95 and "auc" in doc and "ibs" in doc
    assert "sex=male" in doc["subgroups"] and "c_index" in doc["subgroups"]["sex=male"]
    assert "logrank_p" in doc["risk_groups"]
