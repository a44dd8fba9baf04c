"""GET /v1/patients/{id}/timeline over finished jobs: order by study date (report or SR), changes and CTRCD, a
single analysis answered with a flag, 404 problem+json for a patient without analyses, failed jobs left out,
authentication and audit. The analysis is a fake job function writing constructed reports (no model runs)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pydicom
import pytest
from fastapi.testclient import TestClient
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medai.domain.prediction import Report
from medai.errors import SeriesSelectionError
from serving.app import create_app
from serving.auth import Role, create_key
from serving.models import ModelRegistry
from serving.problems import PROBLEM_MEDIA
from tests.medai.serial.helpers import make_report, write_result
from tests.serving.conftest import RISK_MODEL, Api, make_settings
from tests.serving.test_api import wait_job

#: study UID -> (report to write, StudyDate of the SR written next to it or None); None: the job fails
PLAN: dict[str, tuple[Report, str | None] | None] = {}


def _dicom(study_uid: str, study_date: str = "", modality: str = "MR") -> pydicom.Dataset:
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID, ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality = study_uid, generate_uid(), modality
    ds.StudyDate = study_date
    return ds


def _bytes(ds: pydicom.Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def fake_factory(store, models, settings):  # noqa: ANN001, ANN201, ARG001
    def analyse(study_uid, work, out_dir, progress, kinds=None):  # noqa: ANN001, ANN202, ARG001
        plan = PLAN[study_uid]
        if plan is None:
            raise SeriesSelectionError("no cine series")
        report, sr_date = plan
        write_result(out_dir, report)
        files = {"json": "report.json"}
        if sr_date:
            _dicom(report.study_instance_uid, sr_date, "SR").save_as(out_dir / "sr.dcm", enforce_file_format=True)
            files["sr"] = "sr.dcm"
        return files

    return analyse


@pytest.fixture
def papi(tmp_path: Path) -> Iterator[Api]:
    app = create_app(make_settings(tmp_path), models=ModelRegistry([RISK_MODEL]), analyse_factory=fake_factory)
    with TestClient(app) as client:
        keys = {r: create_key(app.state.engine, r, f"test-{r.value}")[1] for r in Role}
        yield Api(client, keys)


def _analyse(api: Api, report: Report | None, sr_date: str | None = None) -> dict:
    uid = report.study_instance_uid if report is not None else generate_uid()
    PLAN[uid] = None if report is None else (report, sr_date)
    r = api.client.post("/v1/studies", headers=api.h(), files=[("files", ("a.dcm", _bytes(_dicom(uid)),
                                                                           "application/dicom"))])
    assert r.status_code == 201, r.text
    r = api.client.post("/v1/analyses", headers=api.h(), json={"study_instance_uid": uid})
    assert r.status_code == 202, r.text
    return wait_job(api, r.json()["id"])


def test_timeline_of_finished_analyses_in_study_date_order(papi: Api) -> None:
    pid = "9f" * 16  # a keyed pseudonym, as de-identified reports carry
    late = _analyse(papi, make_report(pid, date(2024, 9, 1), ef=38, edv=180, infarct_pct=None))
    base = _analyse(papi, make_report(pid, date(2024, 1, 5), ef=61, edv=150))
    mid = _analyse(papi, make_report(pid, None, ef=57, edv=152), sr_date="20240420")  # dated by its SR
    failed = _analyse(papi, None)
    other = _analyse(papi, make_report("a0" * 16, date(2024, 2, 1)))
    assert failed["status"] == "failed" and {late["status"], base["status"], mid["status"], other["status"]} == {
        "succeeded"}
    r = papi.client.get(f"/v1/patients/{pid}/timeline", headers=papi.h())
    assert r.status_code == 200, r.text
    tl = r.json()
    assert tl["patient_id"] == pid
    assert [p["source"] for p in tl["points"]] == [f"/v1/analyses/{j['id']}/results/json" for j in (base, mid, late)]
    assert [p["date_source"] for p in tl["points"]] == ["report", "dicom", "report"]
    assert [p["study_datetime"][:10] for p in tl["points"]] == ["2024-01-05", "2024-04-20", "2024-09-01"]
    ef = [c for c in tl["changes"] if c["measurement"] == "lv_ef"]
    assert [(c["kind"], c["delta"], c["verdict"]) for c in ef] == [
        ("consecutive", -4.0, "within_variability"), ("consecutive", -19.0, "significant_decrease"),
        ("baseline_latest", -23.0, "significant_decrease")]
    assert [f["code"] for f in tl["ctrcd"]] == ["ctrcd_mild_not_assessable", "ctrcd_severe"]
    report = papi.client.get(tl["points"][0]["source"], headers=papi.h())
    assert report.status_code == 200 and report.json()["patient_id"] == pid
    # the biomarker answer reaches the latest follow-up's grading
    r = papi.client.get(f"/v1/patients/{pid}/timeline", headers=papi.h(), params={"biomarker_rise": "true"})
    assert r.json()["ctrcd"][-1]["biomarker_rise"] is True
    from serving import audit

    rows = [x for x in audit.rows(papi.app.state.engine) if x["resource_type"] == "patient_timeline"]
    assert [(x["resource_id"], x["status"]) for x in rows] == [(pid, 200), (pid, 200)]


def test_single_analysis_is_a_timeline_with_a_flag_and_none_is_404(papi: Api) -> None:
    _analyse(papi, make_report("solo", date(2024, 3, 3)))
    r = papi.client.get("/v1/patients/solo/timeline", headers=papi.h(Role.HOSPITAL_SYSTEM))
    assert r.status_code == 200
    tl = r.json()
    assert len(tl["points"]) == 1 and tl["changes"] == [] and tl["ctrcd"] == []
    assert [f["code"] for f in tl["flags"]] == ["single_analysis"] and "nothing to compare" in tl["flags"][0]["message"]
    r = papi.client.get("/v1/patients/nobody/timeline", headers=papi.h())
    assert r.status_code == 404 and r.headers["content-type"] == PROBLEM_MEDIA
    body = r.json()
    assert body["type"].endswith("patient-not-found") and "pseudonym" in body["detail"]
    assert body["instance"] == "/v1/patients/nobody/timeline"
    from serving import audit

    assert ("nobody", 404) in [(x["resource_id"], x["status"]) for x in audit.rows(papi.app.state.engine)]


def test_timeline_needs_a_clinical_key(papi: Api) -> None:
    assert papi.client.get("/v1/patients/x/timeline").status_code == 401
    r = papi.client.get("/v1/patients/x/timeline", headers=papi.h(Role.DATA_SCIENTIST))
    assert r.status_code == 403 and r.json()["type"].endswith("forbidden")


def test_audit_hashes_real_patient_ids_when_not_deidentifying() -> None:
    from serving.routers.patients import _audit_id

    assert _audit_id("abc", make_settings(Path("/nonexistent"))) == "abc"
    hashed = _audit_id("MRN-123", make_settings(Path("/nonexistent"), deidentify=False))
    assert hashed.startswith("sha256:") and "MRN" not in hashed and len(hashed) == 39
