"""Every shipped risk package loads on a fresh machine (skops allow-list), is small, and predicts from its schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from medai.errors import InputValidationError
from medai.inference.package import read_metadata, shipped_packages
from medai.inference.predictor import Predictor
from medai.risk.predictor import RiskPredictor

RISK = {n: p for n, p in shipped_packages().items() if read_metadata(p).predictor == "risk_model"}


def test_required_models_are_shipped() -> None:
    assert {
        "stroke_ist_death",
        "stroke_ist_death_6m",
        "stroke_ist_death_dependency_6m",
        "stroke_ist_recurrence_14d",
        "cardio_hf299_death",
    } <= set(RISK)


@pytest.mark.parametrize("name", sorted(RISK))
def test_shipped_package_predicts(name: str) -> None:
    path: Path = RISK[name]
    assert sum(f.stat().st_size for f in path.iterdir()) < 5_000_000
    meta = read_metadata(path)
    assert any(k.startswith("test/") for k in meta.metrics) and meta.input_contract["features"]
    p = Predictor.from_package(name)
    assert isinstance(p, RiskPredictor)
    # a patient with only the required factors, at the training reference values
    req = {f.name: p.config.reference[f.name] for f in p.spec.features if f.required}
    r = p.predict(req).risks[0]
    assert r.model.name == name and r.risk_group in {"low", "intermediate", "high"}
    assert all(0.0 <= v <= 1.0 for v in r.horizons.values()) and len(r.contributions) == p.config.n_top
    assert p.input_schema()["required"] == list(req)
    with pytest.raises(InputValidationError) as exc:
        p.predict({**req, "not_a_factor": 1})
    assert exc.value.details[0]["field"] == "not_a_factor"
