"""Real PACS: Orthanc + DICOMweb on loopback (started by .ci/orthanc.sh). A real study is stored into Orthanc,
pulled into medai over DICOMweb (QIDO + WADO-RS), analysed, and its SEG and SR are STOWed back into Orthanc.

Skips with the reason when Orthanc/the plugin is not installed, the data is absent or the cine model is missing.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from medai.inference.package import shipped_packages
from serving.app import create_app
from serving.auth import Role, create_key
from tests.serving.conftest import make_settings
from tests.serving.test_api import Api, wait_job

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_pull_from_orthanc_analyse_and_stow_back(orthanc: str, data_dir: Path, tmp_path: Path) -> None:
    study = data_dir / "cardiac" / "sunnybrook" / "dicoms" / "SCD0000101"
    if not study.is_dir():
        pytest.skip(f"{study} not found")
    if "heart_mr_cine_seg" not in shipped_packages():
        pytest.skip("shipped cine model models/packages/heart_mr_cine_seg is missing (issue 2 ships it)")
    # 1. the PACS holds the real study (Orthanc REST upload)
    files = [p for p in sorted(study.rglob("*")) if p.is_file()]
    with httpx.Client(timeout=60) as oc:
        ids = {oc.post(f"{orthanc}/instances", content=p.read_bytes()).json()["ParentStudy"] for p in files}
        assert len(ids) == 1
        uid = oc.get(f"{orthanc}/studies/{ids.pop()}").json()["MainDicomTags"]["StudyInstanceUID"]
    # 2. medai pulls it over DICOMweb, analyses, and pushes SEG + SR back (results attach to the PACS study:
    #    this hospital-internal configuration analyses without the de-identified copy)
    app = create_app(make_settings(tmp_path, models=["heart_mr_cine_seg"], pacs_url=f"{orthanc}/dicom-web",
                                   deidentify=False))
    with TestClient(app) as client:
        api = Api(client, {r: create_key(app.state.engine, r)[1] for r in Role})
        r = client.post("/v1/pacs/pull", headers=api.h(Role.HOSPITAL_SYSTEM), json={"study_instance_uid": uid})
        assert r.status_code == 200, r.text
        assert r.json()["stored"] == len(files) and r.json()["refused"] == 0
        job = client.post("/v1/analyses", headers=api.h(Role.HOSPITAL_SYSTEM), json={"study_instance_uid": uid})
        job = wait_job(api, job.json()["id"], timeout=900)
        assert job["status"] == "succeeded", job
        r = client.post(f"/v1/pacs/push/{job['id']}", headers=api.h(Role.HOSPITAL_SYSTEM))
        assert r.status_code == 200, r.text
        pushed = r.json()
        assert pushed["pushed"] == ["seg", "sr"] and len(pushed["sop_instance_uids"]) == 2
    # 3. Orthanc now has a SEG and an SR series in the original study
    with httpx.Client(timeout=30) as oc:
        series = oc.get(f"{orthanc}/dicom-web/studies/{uid}/series", headers={"Accept": "application/dicom+json"})
        modalities = sorted(s["00080060"]["Value"][0] for s in series.json())
        assert "SEG" in modalities and "SR" in modalities, modalities
        found = oc.post(f"{orthanc}/tools/find", json={"Level": "Instance", "Query": {
            "SOPInstanceUID": pushed["sop_instance_uids"][0]}}).json()
        assert len(found) == 1
