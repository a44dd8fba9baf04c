"""report.json: round trip, measurement shape, schema file current, version and field errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medai.domain.prediction import REPORT_SCHEMA_VERSION
from medai.errors import InputValidationError
from medai.reports.json_report import SCHEMA_PATH, read_json, report_schema, schema_text
from tests.medai.reports.conftest import Case


def test_round_trip_equals_the_report(case: Case, rendered: dict[str, Path]) -> None:
    back = read_json(rendered["json"])
    assert back == case.report
    doc = json.loads(rendered["json"].read_text())
    assert doc["schema_version"] == REPORT_SCHEMA_VERSION
    ef = next(m for m in doc["measurements"] if m["name"] == "lv_ef")
    assert {"code", "name", "value", "unit", "reference_range", "flag"} <= set(ef)
    assert ef["code"] == {"value": "10230-1", "scheme": "LN", "meaning": "Left ventricular Ejection fraction"}
    assert ef["unit"]["code"] == "%" and ef["flag"] in {"normal", "low", "high", "unknown"}
    assert ef["reference_range"]["source"].startswith("Kawel-Boehm")


def test_shipped_schema_is_current() -> None:
    assert SCHEMA_PATH.is_file(), "run: python -m medai.reports.json_report"
    assert SCHEMA_PATH.read_text(encoding="utf-8") == schema_text(), (
        "medai/reports/report.schema.json is stale: regenerate it with `python -m medai.reports.json_report`")
    schema = report_schema()
    assert schema["x-schema-version"] == REPORT_SCHEMA_VERSION
    assert {"code", "name", "value", "unit", "reference_range", "flag"} <= set(
        schema["$defs"]["Measurement"]["properties"])


def test_document_validates_against_the_schema(rendered: dict[str, Path]) -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema not installed; pydantic validation is tested")
    jsonschema.validate(json.loads(rendered["json"].read_text()), report_schema())


def test_other_major_version_is_refused(rendered: dict[str, Path], tmp_path: Path) -> None:
    doc = json.loads(rendered["json"].read_text())
    doc["schema_version"] = "2.0"
    bad = tmp_path / "report.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(InputValidationError, match="schema_version 2.0"):
        read_json(bad)
    doc["schema_version"] = REPORT_SCHEMA_VERSION.split(".")[0] + ".99"  # a newer minor is read
    doc["measurements"][0]["value"] = "not a number"
    bad.write_text(json.dumps(doc))
    with pytest.raises(InputValidationError) as exc:
        read_json(bad)
    assert exc.value.details[0]["field"] == "measurements.0.value"
