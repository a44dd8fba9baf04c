"""FHIR R4 renderings (codes, UCUM, reference range, interpretation; RiskAssessment) and storage retention."""

from __future__ import annotations

import time
from pathlib import Path

from fhir.resources.R4B.bundle import Bundle

from medai.domain.codes import UCUM, Code
from medai.domain.measurement import Flag, Measurement, ReferenceRange
from medai.domain.prediction import ModelRef, Report, RiskEstimate
from medai.reports.fhir import prediction_bundle, report_bundle
from serving.db import make_engine
from serving.storage import StudyStore

LVEF = Code(value="10230-1", scheme="LN", meaning="Left ventricular Ejection fraction")


def _report() -> Report:
    m = Measurement(code=LVEF, name="lv_ef", value=26.2, unit=UCUM.PERCENT, method="summation of discs",
                    segment="lv", reference_range=ReferenceRange(low=57, high=77, population="adult male",
                                                                 source="Kawel-Boehm 2020"), flag=Flag.LOW)
    r = RiskEstimate(model=ModelRef(name="m", version="1"), outcome="death", risk_score=0.3,
                     horizons={"182d": 0.12}, risk_group="intermediate")
    return Report(report_id="r1", patient_id="PSEUDO1", measurements=[m], risks=[r])


def test_report_bundle_is_valid_r4_with_coded_observations() -> None:
    b = report_bundle(_report()).model_dump(mode="json", exclude_none=True)
    Bundle.model_validate(b)  # round trip through the validating model
    dr, obs, ra = (e["resource"] for e in b["entry"])
    assert dr["resourceType"] == "DiagnosticReport" and dr["status"] == "final"
    assert dr["result"] == [{"reference": b["entry"][1]["fullUrl"]}]
    assert obs["code"]["coding"][0] == {"system": "http://loinc.org", "code": "10230-1",
                                        "display": "Left ventricular Ejection fraction"}
    assert obs["valueQuantity"] == {"value": 26.2, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"}
    assert obs["referenceRange"][0]["low"]["value"] == 57 and obs["referenceRange"][0]["high"]["value"] == 77
    assert obs["interpretation"][0]["coding"][0]["code"] == "L"
    assert obs["subject"]["identifier"]["value"] == "PSEUDO1"
    assert ra["resourceType"] == "RiskAssessment" and ra["prediction"][0]["probabilityDecimal"] == 0.12
    assert ra["prediction"][0]["whenRange"]["high"] == {"value": 182.0, "unit": "d",
                                                        "system": "http://unitsofmeasure.org", "code": "d"}


def test_prediction_bundle_has_one_risk_assessment_per_estimate() -> None:
    from medai.domain.prediction import Prediction

    p = Prediction(model=ModelRef(name="m", version="1"), risks=_report().risks * 2)
    assert [e.resource.__resource_type__ for e in prediction_bundle(p).entry] == ["RiskAssessment"] * 2


def test_retention_purges_old_studies_and_unreferenced_blobs(tmp_path: Path, phantom_bytes: list[bytes]) -> None:
    store = StudyStore(make_engine(f"sqlite:///{tmp_path / 'a.db'}"), tmp_path / "s")
    out = store.store([(str(i), b) for i, b in enumerate(phantom_bytes)])
    uid = out.stored[0].study_uid
    assert store.purge_older_than(1) == 0 and store.has_study(uid)
    with store.engine.begin() as conn:
        from serving import db

        conn.execute(db.studies.update().values(created=time.time() - 3 * 86400))
    assert store.purge_older_than(1) == 1
    assert not store.has_study(uid) and store.instances(uid) == []
    assert not any(store.blobs.path(s.sha256).exists() for s in out.stored)
