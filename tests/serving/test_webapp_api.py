"""The web app's API: sign-in sessions (cookie flags, CSRF), the worklist (pseudonyms for data scientists),
WADO-RS metadata and frames, the viewer description, reader corrections measured again, sign-off and its locks.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import re
from pathlib import Path

import numpy as np
import pydicom
import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.auth import Role
from serving.users import UserError, create_user
from tests.serving.conftest import Api, make_settings
from tests.serving.test_api import wait_job

PASSWORD = "correct horse battery"


@pytest.fixture
def users(api: Api) -> Api:
    create_user(api.app.state.engine, "jdoe", PASSWORD, Role.CLINICIAN, "Dr Jane Doe")
    create_user(api.app.state.engine, "ds", PASSWORD, Role.DATA_SCIENTIST, "Data Scientist")
    return api


def sign_in(api: Api, user: str = "jdoe") -> str:
    r = api.client.post("/v1/session", json={"username": user, "password": PASSWORD})
    assert r.status_code == 200, r.text
    # the cookie is Secure: httpx keeps it off http://testserver, a browser sends it to http://localhost
    token = re.search(r"medai_session=([^;]+)", r.headers["set-cookie"]).group(1)
    api.client.cookies.set("medai_session", token)
    return r.json()["csrf"]


def analysed(api: Api, phantom_zip: bytes) -> dict:
    r = api.client.post("/v1/studies", files={"files": ("s.zip", phantom_zip)}, headers=api.h())
    uid = r.json()["studies"][0]["study_instance_uid"]
    job = api.client.post("/v1/analyses", json={"study_instance_uid": uid}, headers=api.h()).json()
    job = wait_job(api, job["id"])
    assert job["status"] == "succeeded", job
    return job


def test_user_rules(api: Api) -> None:
    eng = api.app.state.engine
    with pytest.raises(UserError, match="at least"):
        create_user(eng, "shorty", "short", Role.CLINICIAN)
    with pytest.raises(UserError, match="role"):
        create_user(eng, "someone", PASSWORD, "surgeon")
    create_user(eng, "twice", PASSWORD, Role.ADMIN)
    with pytest.raises(UserError, match="exists"):
        create_user(eng, "twice", PASSWORD, Role.ADMIN)
    row = eng.connect().exec_driver_sql("SELECT password_hash FROM users WHERE username='twice'").scalar()
    assert row.startswith("$argon2id$") and PASSWORD not in row


def test_session_cookie_and_csrf(users: Api) -> None:
    c = users.client
    bad = c.post("/v1/session", json={"username": "jdoe", "password": "wrong password!"})
    assert bad.status_code == 401 and bad.json()["type"].endswith("bad-credentials")
    r = c.post("/v1/session", json={"username": "jdoe", "password": PASSWORD})
    assert r.status_code == 200
    cookies = r.headers.get_list("set-cookie")
    sess = next(h for h in cookies if h.startswith("medai_session="))
    assert "HttpOnly" in sess and "Secure" in sess and "SameSite=strict" in sess.replace("Strict", "strict")
    csrf_cookie = next(h for h in cookies if h.startswith("medai_csrf="))
    assert "HttpOnly" not in csrf_cookie
    token = re.search(r"medai_session=([^;]+)", sess).group(1)
    stored = users.app.state.engine.connect().exec_driver_sql("SELECT token_hash FROM sessions").scalars().all()
    assert token not in stored and len(stored) == 1  # only the hash is kept
    c.cookies.set("medai_session", token)
    me = c.get("/v1/session").json()
    assert me["signed_in"] and me["name"] == "Dr Jane Doe" and me["role"] == "clinician"
    assert me["sees_identities"] is True
    # a state-changing request on the cookie without the CSRF header is refused; with it, it passes
    no = c.post("/v1/analyses", json={"study_instance_uid": "1.2.3"})
    assert no.status_code == 403 and "X-CSRF-Token" in no.json()["detail"]
    yes = c.post("/v1/analyses", json={"study_instance_uid": "1.2.3"}, headers={"X-CSRF-Token": me["csrf"]})
    assert yes.status_code == 404  # past authentication: the study does not exist
    assert c.delete("/v1/session", headers={"X-CSRF-Token": me["csrf"]}).status_code == 204
    c.cookies.set("medai_session", token)
    assert c.get("/v1/session").json()["signed_in"] is False
    assert c.get("/v1/worklist").status_code == 401
    audit = users.app.state.engine.connect().exec_driver_sql(
        "SELECT action, status FROM audit WHERE resource_type='session'").all()
    assert ("sign-in", 401) in audit and ("sign-in", 200) in audit and ("sign-out", 200) in audit


def test_repeated_failures_lock_the_name(users: Api, tmp_path: Path) -> None:
    assert users.client.post("/v1/session", json={"username": "ds", "password": PASSWORD}).status_code == 200
    for _ in range(3):
        users.client.post("/v1/session", json={"username": "ds", "password": "not the password"})
    # a second server process on the same database (another uvicorn worker or host) shares the count
    other = create_app(make_settings(tmp_path / "other", database_url=str(users.app.state.settings.db_url())))
    with TestClient(other) as second:
        for _ in range(2):
            assert second.post("/v1/session", json={"username": "ds", "password": "nope"}).status_code == 401
        r = second.post("/v1/session", json={"username": "ds", "password": PASSWORD})
        assert r.status_code == 429 and "ten minutes" in r.json()["detail"]
    assert users.client.post("/v1/session", json={"username": "ds", "password": PASSWORD}).status_code == 429
    assert users.client.post("/v1/session", json={"username": "jdoe", "password": PASSWORD}).status_code == 200
    rows = users.app.state.engine.connect().exec_driver_sql(
        "SELECT status FROM audit WHERE \"user\" = 'user:ds' AND action = 'sign-in' ORDER BY id").all()
    assert [r[0] for r in rows] == [200, 401, 401, 401, 401, 401, 429, 429]  # the refusals are audited too


def test_worklist_pseudonyms_for_data_scientists(users: Api, phantom_zip: bytes) -> None:
    job = analysed(users, phantom_zip)
    rows = users.client.get("/v1/worklist", headers=users.h()).json()
    assert len(rows) == 1
    row = rows[0]
    assert row["analysis"]["job_id"] == job["id"] and row["analysis"]["status"] == "succeeded"
    assert row["n_instances"] == 20 and row["modalities"] == ["MR"]
    assert row["patient_id"] and row["patient"]
    ds_rows = users.client.get("/v1/worklist", headers=users.h(Role.DATA_SCIENTIST)).json()
    assert ds_rows[0]["patient_id"] != row["patient_id"] and len(ds_rows[0]["patient_id"]) == 32
    assert row["patient_id"] not in json.dumps(ds_rows) and row["study_instance_uid"] not in json.dumps(ds_rows)
    assert ds_rows[0]["analysis"] is None and ds_rows[0]["study_date"] == ""


def test_wado_metadata_and_frames(users: Api, phantom_zip: bytes, phantom_bytes: list[bytes]) -> None:
    ds = pydicom.dcmread(io.BytesIO(phantom_bytes[0]))
    users.client.post("/v1/studies", files={"files": ("s.zip", phantom_zip)}, headers=users.h())
    base = f"/v1/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
    meta = users.client.get(f"{base}/metadata", headers=users.h())
    assert meta.status_code == 200 and meta.headers["content-type"].startswith("application/dicom+json")
    item = next(i for i in meta.json() if i["00080018"]["Value"][0] == ds.SOPInstanceUID)
    assert item["00280010"]["Value"][0] == ds.Rows and "BulkDataURI" in item["7FE00010"]
    r = users.client.get(f"{base}/instances/{ds.SOPInstanceUID}/frames/1", headers=users.h())
    assert r.status_code == 200 and 'type="application/octet-stream"' in r.headers["content-type"]
    boundary = re.search(r"boundary=([^;]+)", r.headers["content-type"]).group(1).encode()
    body = r.content
    payload = body[body.index(b"\r\n\r\n") + 4: len(body) - len(boundary) - 8]
    assert np.array_equal(np.frombuffer(payload, dtype="<u2").reshape(ds.Rows, ds.Columns), ds.pixel_array)
    assert users.client.get(f"{base}/instances/{ds.SOPInstanceUID}/frames/2", headers=users.h()).status_code == 404
    assert users.client.get(f"{base}/instances/{ds.SOPInstanceUID}/frames/x", headers=users.h()).status_code == 400


def test_viewer_correction_and_sign_off(users: Api, phantom_zip: bytes) -> None:
    from medai.measurements import function_measurements  # noqa: F401 -- the code the server must use

    job = analysed(users, phantom_zip)
    c, h = users.client, users.h()
    doc = c.get(f"/v1/analyses/{job['id']}/viewer", headers=h).json()
    assert doc["version"]["version"] == 1 and not doc["version"]["signed"]
    assert doc["patient"]["id"] == "PHANTOM0000" and doc["report"]["patient_id"] != "PHANTOM0000"  # pseudonymised
    layer = next(x for x in doc["layers"] if x["kind"] == "cine_function")
    T, Z, Y, X = layer["shape"]
    assert {lab["name"] for lab in layer["labels"]} >= {"lv", "myo", "rv"}
    # every plane lies over a stored (original, identified-store) image reachable over WADO-RS
    assert all(u and u.startswith(f"/v1/dicomweb/studies/{job['study_instance_uid']}/") for row in layer["frames"]
               for u in row)
    assert c.get(layer["frames"][0][0], headers=h).status_code == 200
    raw = c.get(layer["url"], headers=h)
    arr = np.frombuffer(raw.content if raw.headers.get("content-encoding") != "gzip" else raw.content,
                        dtype=np.uint8)
    if arr.size != T * Z * Y * X:  # a client that did not decode the transfer encoding
        arr = np.frombuffer(gzip.decompress(raw.content), dtype=np.uint8)
    arr = arr.reshape(T, Z, Y, X).copy()
    # the reader paints an LV block into every plane: EDV must be that many voxels x voxel volume
    lv = next(lab["value"] for lab in layer["labels"] if lab["name"] == "lv")
    arr[arr == lv] = 0
    arr[:, :, 10:20, 10:20] = lv
    arr[:, 1, 10:15, 10:20] = 0  # fewer voxels on one slice in every phase
    planes = [{"index": [t, z], "data": base64.b64encode(arr[t, z].tobytes()).decode()}
              for t in range(T) for z in range(Z)]
    r = c.post(f"/v1/analyses/{job['id']}/versions", headers=h,
               json={"base_version": 1, "kind": "cine_function", "role": "cine_sax", "planes": planes})
    assert r.status_code == 201, r.text
    v2 = r.json()
    assert v2["version"] == 2 and v2["parent"] == 1 and v2["edits"]["planes"]
    report = c.get(v2["results"]["json"], headers=h).json()
    sp = report["sections"][0]["summary"]["spacing_mm_zyx"]
    expected = (100 * (Z - 1) + 50) * sp[0] * sp[1] * sp[2] / 1000.0
    edv = next(m["value"] for m in report["measurements"] if m["name"] == "lv_edv")
    assert edv == pytest.approx(expected, rel=1e-4)  # the summary rounds the spacing to 4 decimals
    assert "reader_corrected" in {f["code"] for f in report["flags"]}
    v1 = c.get(f"/v1/analyses/{job['id']}/versions/1/results/json", headers=h).json()
    assert v1["report_id"] != report["report_id"]  # the original is kept
    # the reader's phases stay: correcting contours never moves ED/ES to another frame
    assert [report["sections"][0]["summary"][k] for k in ("ed_frame", "es_frame")] == \
        [v1["sections"][0]["summary"][k] for k in ("ed_frame", "es_frame")]
    # stale base and bad planes are refused with reasons
    stale = c.post(f"/v1/analyses/{job['id']}/versions", headers=h,
                   json={"base_version": 1, "kind": "cine_function", "role": "cine_sax", "planes": planes[:1]})
    assert stale.status_code == 409 and "newer" in stale.json()["detail"]
    bad = c.post(f"/v1/analyses/{job['id']}/versions", headers=h, json={
        "base_version": 2, "kind": "cine_function", "role": "cine_sax",
        "planes": [{"index": [0, 0], "data": base64.b64encode(bytes([9]) * (Y * X)).decode()}]})
    assert bad.status_code == 422 and "label values" in bad.json()["detail"]
    # hospital systems cannot sign; the clinician can, once
    assert c.post(f"/v1/analyses/{job['id']}/versions/2/sign", headers=users.h(Role.HOSPITAL_SYSTEM)).status_code \
        == 403
    csrf = sign_in(users)
    s = c.post(f"/v1/analyses/{job['id']}/versions/2/sign", json={"organization": "Test Hospital"},
               headers={"X-CSRF-Token": csrf})
    assert s.status_code == 200, s.text
    assert s.json()["signed"] and s.json()["signed_by"] == "Dr Jane Doe"
    sr = pydicom.dcmread(io.BytesIO(c.get(s.json()["results"]["sr"]).content))
    assert sr.VerificationFlag == "VERIFIED"
    assert str(sr.VerifyingObserverSequence[0].VerifyingObserverName).replace("^", " ").strip() == "Dr Jane Doe"
    assert sr.VerifyingObserverSequence[0].VerifyingOrganization == "Test Hospital"
    from pypdf import PdfReader

    pdf = PdfReader(io.BytesIO(c.get(s.json()["results"]["pdf"]).content))
    assert "Dr Jane Doe" in pdf.pages[0].extract_text()
    # the analysis ran on a de-identified copy; the signed report names the real patient of the stored study
    original = pydicom.dcmread(io.BytesIO(users.app.state.store.blobs.path(
        users.app.state.store.instances(job["study_instance_uid"])[0]["sha256"]).read_bytes()))
    last = pdf.pages[-1].extract_text()
    assert "Electronic signature" in last and str(original.PatientID) in last
    assert str(original.PatientName).replace("^", " ") in last
    assert str(original.PatientID) in pdf.pages[0].extract_text()  # every page's footer
    draft = json.loads(c.get(f"/v1/analyses/{job['id']}/results/json", headers=h).content)
    assert draft["patient_id"] != str(original.PatientID)  # the stored analysis stays pseudonymised
    fhir = c.get(s.json()["results"]["fhir"]).json()
    assert {e["resource"]["status"] for e in fhir["entry"] if e["resource"]["resourceType"] == "DiagnosticReport"} \
        == {"final"}
    subjects = {json.dumps(e["resource"]["subject"], sort_keys=True) for e in fhir["entry"]
                if "subject" in e["resource"]}
    assert [json.loads(x)["identifier"]["value"] for x in subjects] == [str(original.PatientID)]  # released: the
    assert "urn:medai:pseudonym" not in json.dumps(fhir)  # real patient, in every resource
    locked = c.post(f"/v1/analyses/{job['id']}/versions", headers={"X-CSRF-Token": csrf}, json={
        "base_version": 2, "kind": "cine_function", "role": "cine_sax", "planes": planes[:1]})
    assert locked.status_code == 409 and "signed" in locked.json()["detail"]
    assert c.post(f"/v1/analyses/{job['id']}/versions/2/sign", headers={"X-CSRF-Token": csrf}).status_code == 409
    # no PACS configured: sending says so
    send = c.post(f"/v1/analyses/{job['id']}/versions/2/send", headers={"X-CSRF-Token": csrf})
    assert send.status_code == 409 and "MEDAI_API_PACS_URL" in send.json()["detail"]
    rows = users.app.state.engine.connect().exec_driver_sql(
        "SELECT user, action, resource_id FROM audit WHERE action IN ('correct', 'sign')").all()
    assert any(a == "correct" and rid.startswith(f"{job['id']}/v2:") for _, a, rid in rows)
    assert ("user:jdoe", "sign", f"{job['id']}/v2") in rows


def test_web_app_is_served_offline(users: Api) -> None:
    r = users.client.get("/", follow_redirects=False)
    assert r.status_code in (302, 307) and r.headers["location"] == "/ui/"
    page = users.client.get("/ui/")
    assert page.status_code == 200 and 'type="password"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for url in re.findall(r'(?:src|href)="([^"#]+)"', page.text):
        assert not url.startswith(("http:", "https:", "//")), url
        if not url.startswith("/docs"):
            assert users.client.get(f"/ui/{url}").status_code == 200, url


def test_signed_report_is_sent_to_a_real_pacs(tmp_path, tiny_cine, phantom_zip: bytes, phantom_bytes,  # noqa: ANN001
                                              orthanc: str) -> None:
    """Sign -> Send to PACS STOWs the signed version's SEG and VERIFIED SR into Orthanc (DICOMweb on loopback).
    De-identification is on (the default): the analysis saw keyed UIDs and a pseudonym, yet what reaches the PACS is
    re-identified at the site boundary: it lies in the original study, names the original patient and references
    the original images."""
    import httpx
    from fastapi.testclient import TestClient

    from medai.inference.predictor import Predictor
    from serving.app import create_app
    from serving.auth import create_key
    from serving.models import ModelRegistry
    from tests.serving.conftest import RISK_MODEL, make_settings

    registry = ModelRegistry([RISK_MODEL])
    registry.put("heart_mr_cine_seg", Predictor.from_package(tiny_cine), ref=str(tiny_cine))
    app = create_app(make_settings(tmp_path, pacs_url=f"{orthanc}/dicom-web"), models=registry)
    with TestClient(app) as client:
        api = Api(client, {r: create_key(app.state.engine, r)[1] for r in Role})
        create_user(app.state.engine, "jdoe", PASSWORD, Role.CLINICIAN, "Dr Jane Doe")
        job = analysed(api, phantom_zip)
        before = client.post(f"/v1/analyses/{job['id']}/versions/1/send", headers=api.h())
        assert before.status_code == 409 and "not signed" in before.json()["detail"]
        pushed = client.post(f"/v1/pacs/push/{job['id']}", headers=api.h(Role.HOSPITAL_SYSTEM))  # the API's push
        assert pushed.status_code == 200, pushed.text
        csrf = sign_in(api)
        assert client.post(f"/v1/analyses/{job['id']}/versions/1/sign", headers={"X-CSRF-Token": csrf}).status_code \
            == 200
        sent = client.post(f"/v1/analyses/{job['id']}/versions/1/send", headers={"X-CSRF-Token": csrf})
        assert sent.status_code == 200, sent.text
        assert set(sent.json()["pushed"]) == {"seg", "sr"}
    originals = [pydicom.dcmread(io.BytesIO(b), stop_before_pixels=True) for b in phantom_bytes]
    study_uid, patient_id = originals[0].StudyInstanceUID, originals[0].PatientID
    source_sops = {str(d.SOPInstanceUID) for d in originals}
    with httpx.Client(timeout=30) as oc:
        flags, referenced = [], set()
        for sop in sent.json()["sop_instance_uids"] + pushed.json()["sop_instance_uids"]:
            found = oc.post(f"{orthanc}/tools/lookup", content=sop).json()
            assert found, f"{sop} is not in Orthanc"
            data = oc.get(f"{orthanc}/instances/{found[0]['ID']}/file").content
            ds = pydicom.dcmread(io.BytesIO(data))
            flags.append((ds.Modality, getattr(ds, "VerificationFlag", None)))
            assert ds.StudyInstanceUID == study_uid and ds.PatientID == patient_id, ds.Modality
            assert "PatientIdentityRemoved" not in ds
            refs = {str(e.value) for e in ds.iterall() if e.keyword == "ReferencedSOPInstanceUID"}
            for item in ds.get("PredecessorDocumentsSequence", []):  # the draft SR this verified one supersedes
                refs -= {str(e.value) for e in item.iterall() if e.keyword == "ReferencedSOPInstanceUID"}
            referenced |= refs
        studies = oc.get(f"{orthanc}/studies").json()
    assert ("SR", "VERIFIED") in flags and any(m == "SEG" for m, _ in flags)
    assert len(studies) == 1  # no orphan de-identified study in the PACS
    # every image reference is an original image (or one of the results themselves)
    results = set(sent.json()["sop_instance_uids"]) | set(pushed.json()["sop_instance_uids"])
    assert referenced & source_sops and referenced <= source_sops | results


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_numbers_are_a_422_naming_the_field(api: Api, bad: str) -> None:
    """JSON allows NaN/Infinity literals and 1e400 overflows to inf: the risk route answers 422 for the field,
    and the problem document itself stays valid JSON (it used to fail to encode the echoed value: a 500)."""
    body = f'{{"AGE": {bad}, "SEX": "M", "RDELAY": 3, "RCONSC": "F", "RSBP": 120, "STYPE": "PACS"}}'
    r = api.client.post("/v1/risk/stroke_ist_death_6m", content=body,
                        headers={**api.h(), "Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    def refuse(literal: str) -> None:
        raise AssertionError(f"the problem document holds the non-JSON literal {literal}")

    doc = json.loads(r.text, parse_constant=refuse)
    assert any(e.get("field") == "AGE" for e in doc["errors"]), doc


def test_the_last_admin_key_cannot_be_revoked(api: Api) -> None:
    """An admin cannot lock every admin out: the only active admin key (with no admin user) is refused, audited;
    once a second admin key exists, the first can go."""
    from serving.auth import list_keys

    admin_id = next(k["id"] for k in list_keys(api.app.state.engine) if k["role"] == "admin")
    r = api.client.delete(f"/v1/keys/{admin_id}", headers=api.h(Role.ADMIN))
    assert r.status_code == 409 and "only active admin key" in r.json()["detail"]
    second = api.client.post("/v1/keys", json={"role": "admin", "name": "second"}, headers=api.h(Role.ADMIN))
    assert second.status_code == 201, second.text
    assert api.client.delete(f"/v1/keys/{admin_id}", headers=api.h(Role.ADMIN)).status_code == 204
    rows = api.app.state.engine.connect().exec_driver_sql(
        "SELECT status FROM audit WHERE action='revoke' ORDER BY id").scalars().all()
    assert rows == [409, 204]


def test_crash_leftovers_are_swept_and_scratch_is_private(api: Api, tmp_path) -> None:  # noqa: ANN001
    """A kill -9 leaves identified scratch copies under results/.work: start-up removes those of jobs that are not
    running under a live lease and keeps a live one's; scratch folders are 0700."""
    import os
    import stat
    import time as _time

    from serving import db

    jobs = api.app.state.jobs
    now = _time.time()
    with api.app.state.engine.begin() as conn:
        conn.execute(db.jobs.insert().values(id="livejob", kind="all", study_uid="1.2", status="running", created=now,
                                             updated=now, created_by="t", lease_owner="other", lease_expires=now + 60,
                                             attempts=1, stage="inference"))
    dead = jobs.work_dir("deadjob-abc123")
    (dead / "src").mkdir()
    (dead / "src" / "identified.dcm").write_bytes(b"DICM")
    live = jobs.work_dir("livejob-def456")
    fresh_correction = jobs.work_dir("donejob-v2")
    old_correction = jobs.work_dir("donejob-v3")
    os.utime(old_correction, (now - 3600, now - 3600))
    assert stat.S_IMODE(dead.stat().st_mode) == 0o700 and stat.S_IMODE(dead.parent.stat().st_mode) == 0o700
    assert jobs.sweep_leftovers() == 2
    assert not dead.exists() and not old_correction.exists() and live.exists() and fresh_correction.exists()
