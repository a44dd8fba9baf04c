"""Feature specs: per-field validation errors, frame validation, JSON Schema; adapters on the real releases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medai.errors import InputValidationError
from medai.risk.cohorts import ADAPTERS, HF299_SPEC, IST_SPEC, OUTCOMES, SPECS, load_cohort, load_csv


def _details(exc: pytest.ExceptionInfo[InputValidationError]) -> dict[str, str]:
    return {d["field"]: d["problem"] for d in exc.value.details}


def test_each_offending_field_is_listed() -> None:
    with pytest.raises(InputValidationError) as exc:
        IST_SPEC.validate_factors({"AGE": "old", "SEX": "X", "RDELAY": 100, "RSBP": None, "FOO": 1, "RDEF1": "maybe"})
    got = _details(exc)
    assert got == {
        "FOO": "unknown_column",
        "AGE": "wrong_type",
        "SEX": "unknown_category",
        "RDELAY": "out_of_range",
        "RCONSC": "missing_required",
        "RSBP": "missing_required",
        "RDEF1": "unknown_category",
        "STYPE": "missing_required",
    }
    assert "RDELAY" in exc.value.message and exc.value.http_status == 422
    out_of_range = next(d for d in exc.value.details if d["field"] == "RDELAY")
    assert out_of_range["value"] == 100 and "48" in out_of_range["message"]


def test_valid_factors_are_cleaned_not_coerced() -> None:
    clean = HF299_SPEC.validate_factors(
        {"age": 70, "sex": "yes", "ejection_fraction": 25.0, "serum_creatinine": "1.4", "anaemia": False}
    )
    assert clean["sex"] == 1.0 and clean["anaemia"] == 0.0 and clean["serum_creatinine"] == 1.4
    assert clean["platelets"] is None  # optional, absent
    with pytest.raises(InputValidationError) as exc:
        HF299_SPEC.validate_factors({"age": True, "sex": 1, "ejection_fraction": 25, "serum_creatinine": float("inf")})
    assert _details(exc) == {"age": "wrong_type", "serum_creatinine": "wrong_type"}


def test_missing_codes_become_missing() -> None:
    spec = SPECS["zigong"]
    row = {"age_band": "69-79", "gender": "Male", "BMI": 0, "pulse": 0}
    clean = spec.validate_factors(row)
    assert clean["BMI"] is None and clean["pulse"] is None


def test_frame_validation_reports_rows_per_field() -> None:
    df = pd.DataFrame(
        {
            "age": [60, 200, 70],
            "sex": [1, 0, 5],
            "ejection_fraction": [30, 40, 50],
            "serum_creatinine": [1.0, 1.1, 1.2],
            "extra": [1, 2, 3],
        }
    )
    with pytest.raises(InputValidationError) as exc:
        HF299_SPEC.validate_frame(df, allow_extra=False)
    by = {(d["field"], d["problem"]): d for d in exc.value.details}
    assert by[("age", "out_of_range")]["rows"] == [1]
    assert by[("sex", "wrong_type")]["rows"] == [2]
    assert ("extra", "unknown_column") in by
    out = HF299_SPEC.validate_frame(df, errors="report")
    assert np.isnan(out.loc[1, "age"]) and len(out.attrs["problems"]) == 2


def test_json_schema_lists_every_factor() -> None:
    s = IST_SPEC.json_schema()
    assert set(s["properties"]) == set(IST_SPEC.names)
    assert s["additionalProperties"] is False and "AGE" in s["required"]
    assert s["properties"]["RSBP"]["maximum"] == 300 and s["properties"]["RSBP"]["x-unit"] == "mm[Hg]"


def test_load_csv_maps_hospital_columns(tmp_path: Path) -> None:
    df = pd.DataFrame(
        {
            "Age": [60, 70, 80],
            "sex": [1, 0, 1],
            "EF": [30, 40, 50],
            "serum_creatinine": [1, 2, 3],
            "died": [1, 0, 1],
            "days": [10, 200, 50],
        }
    )
    p = tmp_path / "h.csv"
    df.to_csv(p, index=False)
    c = load_csv(p, HF299_SPEC, event="died", time="days", mapping={"age": "Age", "ejection_fraction": "EF"})
    assert c.kind == "survival" and c.y["event"].tolist() == [True, False, True] and c.X["age"].tolist() == [60, 70, 80]
    df["bogus"] = 1
    df.to_csv(p, index=False)
    with pytest.raises(InputValidationError) as exc:
        load_csv(p, HF299_SPEC, event="died", time="days", mapping={"age": "Age", "ejection_fraction": "EF"})
    assert _details(exc) == {"bogus": "unknown_column"}


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_adapters_load_the_official_releases(data_dir: Path, name: str) -> None:
    for outcome, (kind, _) in OUTCOMES[name].items():
        c = load_cohort(name, outcome, data_dir)
        assert len(c) > 200 and list(c.X.columns) == c.spec.names
        assert c.kind == kind
        ev = c.y["event"] if kind != "binary" else c.y
        assert 0 < ev.mean() < 1
        assert {"sex", "age_band"} <= set(c.subgroups.columns)


def test_ist_uses_baseline_factors_only(data_dir: Path) -> None:
    c = load_cohort("ist", "death_6m", data_dir)
    leaky = {"TD", "DIED", "OCCODE", "FDEAD", "ID14", "EXPD6", "EXPDD", "EXPD14", "DDIAGISC", "ONDRUG", "DASP14"}
    assert not leaky & set(c.X.columns)
    assert len(c) == 15434 and abs(c.y.mean() - 0.217) < 0.01
    assert "EXPD6" in c.reference and c.groups is not None


def test_zigong_joins_sheets_with_comorbidities(data_dir: Path) -> None:
    c = load_cohort("zigong", "death_6m", data_dir)
    assert len(c) == 2008
    for col in (
        "cerebrovascular_disease",
        "peptic_ulcer_disease",
        "moderate_to_severe_chronic_kidney_disease",
        "solid_tumor",
        "CCI_score",
        "NYHA",
        "LVEF",
        "brain_natriuretic_peptide",
    ):
        assert col in c.X.columns
    assert c.X["moderate_to_severe_chronic_kidney_disease"].mean() > 0.1
    # the 5 implausible BMI values (>70 kg/m2) are reported, not silently kept
    assert any(p["field"] == "BMI" and p["problem"] == "out_of_range" for p in c.problems)


def test_adapter_accepts_root_folder_or_file(data_dir: Path, tmp_path: Path) -> None:
    from medai.errors import ConfigError

    a = load_cohort("heart_failure_299", "death", data_dir)
    b = load_cohort("heart_failure_299", "death", data_dir / "cardio" / "heart_failure_299")
    f = data_dir / "cardio" / "heart_failure_299" / "heart_failure_clinical_records_dataset.csv"
    c = load_cohort("heart_failure_299", "death", f)
    assert len(a) == len(b) == len(c) == 299
    with pytest.raises(ConfigError, match="cannot find"):
        load_cohort("heart_failure_299", "death", tmp_path)
    with pytest.raises(ConfigError, match="unknown outcome"):
        load_cohort("ist", "nonsense", data_dir)
