"""End to end on the real Sunnybrook study SCD0000101 with the shipped cine model: upload, analyse, fetch report,
SEG, SR, PDF and FHIR, audit rows present. Skips with the reason when the data or the shipped model is missing."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest
from fastapi.testclient import TestClient

from medai.inference.package import shipped_packages
from serving.app import create_app
from serving.auth import Role, create_key
from tests.serving.conftest import make_settings
from tests.serving.test_api import Api, wait_job


@pytest.mark.slow
def test_sunnybrook_scd0000101_end_to_end(data_dir: Path, tmp_path: Path) -> None:
    study = data_dir / "cardiac" / "sunnybrook" / "dicoms" / "SCD0000101"
    if not study.is_dir():
        pytest.skip(f"{study} not found")
    if "heart_mr_cine_seg" not in shipped_packages():
        pytest.skip("shipped cine model models/packages/heart_mr_cine_seg is missing (issue 2 ships it)")
    app = create_app(make_settings(tmp_path, models=["heart_mr_cine_seg"]))
    with TestClient(app) as client:
        keys = {r: create_key(app.state.engine, r)[1] for r in Role}
        api = Api(client, keys)
        files = [("files", (p.name, p.read_bytes(), "application/dicom")) for p in sorted(study.rglob("*"))
                 if p.is_file()]
        r = client.post("/v1/studies", headers=api.h(), files=files)
        assert r.status_code == 201, r.text
        uid = r.json()["studies"][0]["study_instance_uid"]
        job = client.post("/v1/analyses", headers=api.h(), json={"study_instance_uid": uid}).json()
        job = wait_job(api, job["id"], timeout=900)
        assert job["status"] == "succeeded", job
        rep = client.get(job["results"]["json"], headers=api.h()).json()
        ef = [m for m in rep["measurements"] if m["name"] == "lv_ef"]
        assert ef and 5 < ef[0]["value"] < 80
        assert pydicom.dcmread(io.BytesIO(client.get(job["results"]["seg"], headers=api.h()).content)).Modality \
            == "SEG"
        assert pydicom.dcmread(io.BytesIO(client.get(job["results"]["sr"], headers=api.h()).content)).Modality == "SR"
        assert client.get(job["results"]["pdf"], headers=api.h()).content[:5] == b"%PDF-"
        fhir = client.get(job["results"]["fhir"], headers=api.h()).json()
        obs = [e["resource"] for e in fhir["entry"] if e["resource"]["resourceType"] == "Observation"]
        lvef = [o for o in obs if o["code"]["text"] == "lv_ef"][0]
        assert lvef["valueQuantity"]["system"] == "http://unitsofmeasure.org" and lvef["valueQuantity"]["code"] == "%"
        rows = client.get("/v1/audit", headers=api.h(Role.ADMIN)).json()
        acts = {(r["action"], r["resource_type"]) for r in rows}
        assert {("create", "study"), ("create", "analysis"), ("read", "report")} <= acts
