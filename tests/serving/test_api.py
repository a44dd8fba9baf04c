"""Studies, DICOMweb, analyses (202 + durable job + callback), results, FHIR, risk, models, audit, errors."""

from __future__ import annotations

import http.server
import io
import json
import threading
import time
import uuid

import pydicom
import pytest

from serving.auth import Role
from serving.problems import PROBLEM_MEDIA
from tests.serving.conftest import RISK_MODEL, Api

#: storage, jobs and audit through the API on both database backends (tests/serving/conftest.py)
BACKENDS = ("sqlite", "postgresql")


def wait_job(api: Api, job_id: str, timeout: float = 120.0) -> dict:
    t0 = time.time()
    while time.time() - t0 < timeout:
        job = api.client.get(f"/v1/analyses/{job_id}", headers=api.h()).json()
        if job["status"] in ("succeeded", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


def stow_body(parts: list[bytes], boundary: str = "b0undary") -> tuple[bytes, str]:
    body = b"".join(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + p + b"\r\n" for p in parts)
    return body + f"--{boundary}--\r\n".encode(), f'multipart/related; type="application/dicom"; boundary={boundary}'


def study_uid_of(data: bytes) -> str:
    return str(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).StudyInstanceUID)


def test_health_needs_no_key_everything_else_does(api: Api) -> None:
    assert api.client.get("/health").json() == {"status": "ok"}
    assert api.client.get("/ready").json()["status"] == "ready"
    r = api.client.get("/v1/studies")
    assert r.status_code == 401 and r.headers["content-type"] == PROBLEM_MEDIA
    assert r.json()["type"].endswith("unauthenticated")
    assert api.client.get("/v1/studies", headers={"X-API-Key": "medai_wrong"}).status_code == 401
    assert api.client.get("/v1/studies", headers={"Authorization": f"Bearer {api.keys[Role.CLINICIAN]}"}).status_code \
        == 200


def test_zip_upload_stores_content_addressed_and_qido_wado(api: Api, phantom_zip: bytes,
                                                         phantom_bytes: list[bytes]) -> None:
    r = api.client.post("/v1/studies", headers=api.h(), files=[("files", ("s.zip", phantom_zip, "application/zip"))])
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["stored"] == len(phantom_bytes) and out["refused"] == []
    uid = out["studies"][0]["study_instance_uid"]
    assert uid == study_uid_of(phantom_bytes[0])
    # content-addressed: each blob's name is the sha256 of its bytes
    store = api.app.state.store
    rows = store.instances(uid)
    import hashlib

    assert all(hashlib.sha256(store.blobs.path(r["sha256"]).read_bytes()).hexdigest() == r["sha256"] for r in rows)
    # re-upload is idempotent
    api.client.post("/v1/studies", headers=api.h(), files=[("files", ("s.zip", phantom_zip, "application/zip"))])
    assert len(store.instances(uid)) == len(phantom_bytes)
    # QIDO studies/series/instances, WADO instance
    studies = api.client.get("/v1/dicomweb/studies", headers=api.h()).json()
    assert studies[0]["0020000D"]["Value"] == [uid] and studies[0]["00201208"]["Value"] == [len(phantom_bytes)]
    series = api.client.get(f"/v1/dicomweb/studies/{uid}/series", headers=api.h()).json()
    se = series[0]["0020000E"]["Value"][0]
    inst = api.client.get(f"/v1/dicomweb/studies/{uid}/series/{se}/instances", headers=api.h()).json()
    sop = inst[0]["00080018"]["Value"][0]
    w = api.client.get(f"/v1/dicomweb/studies/{uid}/series/{se}/instances/{sop}", headers=api.h())
    assert w.status_code == 200 and w.headers["content-type"].startswith("multipart/related")
    from serving.routers.dicomweb import split_multipart_related

    part = split_multipart_related(w.content, w.headers["content-type"])[0]
    assert str(pydicom.dcmread(io.BytesIO(part)).SOPInstanceUID) == sop


def test_stow_rs_and_non_dicom_refused(api: Api, phantom_bytes: list[bytes]) -> None:
    body, ctype = stow_body(phantom_bytes[:3])
    r = api.client.post("/v1/dicomweb/studies", headers={**api.h(Role.HOSPITAL_SYSTEM), "Content-Type": ctype},
                        content=body)
    assert r.status_code == 200, r.text
    assert len(r.json()["00081199"]["Value"]) == 3
    r = api.client.post("/v1/studies", headers=api.h(), files=[("files", ("x.txt", b"hello", "text/plain"))])
    assert r.status_code == 422 and r.json()["type"].endswith("ingest-error")
    assert r.json()["errors"][0]["source"] == "x.txt"
    r = api.client.post("/v1/dicomweb/studies", headers={**api.h(), "Content-Type": "application/json"}, content=b"{}")
    assert r.status_code == 415 and r.headers["content-type"] == PROBLEM_MEDIA


def test_upload_over_limit_is_413(tmp_path, tiny_cine) -> None:
    from fastapi.testclient import TestClient

    from serving.app import create_app
    from serving.auth import create_key
    from tests.serving.conftest import make_settings

    app = create_app(make_settings(tmp_path, max_upload_bytes=1000))
    with TestClient(app) as c:
        key = create_key(app.state.engine, Role.CLINICIAN)[1]
        r = c.post("/v1/studies", headers={"X-API-Key": key}, files=[("files", ("a.dcm", b"x" * 5000, "x/y"))])
        assert r.status_code == 413 and r.headers["content-type"] == PROBLEM_MEDIA
        assert "MEDAI_API_MAX_UPLOAD_BYTES" in r.json()["detail"]


class _Receiver(http.server.BaseHTTPRequestHandler):
    got: list[dict] = []
    raw: list[tuple[bytes, str]] = []
    #: status codes to answer, in order (then 204)
    answers: list[int] = []

    def do_POST(self) -> None:  # noqa: N802
        n = int(self.headers["Content-Length"])
        body = self.rfile.read(n)
        _Receiver.raw.append((body, self.headers.get("X-Medai-Signature", "")))
        code = _Receiver.answers.pop(0) if _Receiver.answers else 204
        if code == 204:
            _Receiver.got.append(json.loads(body))
        self.send_response(code)
        self.end_headers()

    def log_message(self, *a) -> None:  # noqa: ANN002
        pass


def test_analysis_end_to_end_with_tiny_model(api: Api, phantom_bytes: list[bytes], caplog) -> None:  # noqa: ANN001
    """Upload -> 202 job -> callback -> report JSON, SEG, SR, PDF, FHIR -> audit rows (real library path)."""
    caplog.set_level("DEBUG")
    src = pydicom.dcmread(io.BytesIO(phantom_bytes[0]), stop_before_pixels=True)
    srv = http.server.HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    _Receiver.got, _Receiver.raw, _Receiver.answers = [], [], []
    try:
        files = [("files", (f"{i}.dcm", b, "application/dicom")) for i, b in enumerate(phantom_bytes)]
        uid = api.client.post("/v1/studies", headers=api.h(), files=files).json()["studies"][0]["study_instance_uid"]
        bad = api.client.post("/v1/analyses", headers=api.h(), json={"study_instance_uid": uid,
                                                                       "callback_url": "http://evil.example/x"})
        assert bad.status_code == 422 and bad.json()["type"].endswith("callback-not-allowed")
        cb = f"http://127.0.0.1:{srv.server_port}/done"
        r = api.client.post("/v1/analyses", headers=api.h(), json={"study_instance_uid": uid, "callback_url": cb})
        assert r.status_code == 202 and r.headers["location"] == f"/v1/analyses/{r.json()['id']}"
        job = wait_job(api, r.json()["id"])
        assert job["status"] == "succeeded", job
        assert {"json", "seg", "sr", "pdf", "fhir"} <= set(job["results"])
        t0 = time.time()
        while not job.get("callback_status") and time.time() - t0 < 10:  # the callback follows completion
            time.sleep(0.1)
            job = api.client.get(f"/v1/analyses/{job['id']}", headers=api.h()).json()
        assert _Receiver.got == [{"job_id": job["id"], "status": "succeeded", "error_code": None}]
        assert job["callback_status"] == "http 204 (attempt 1 of 5)"
        from serving.jobs import verify_callback

        body, sig = _Receiver.raw[-1]
        key = api.app.state.settings.callback_key()
        assert verify_callback(key, body, sig) and not verify_callback(key, body + b" ", sig)
        assert not verify_callback(b"another site's key", body, sig)
    finally:
        srv.shutdown()
    get = lambda k: api.client.get(job["results"][k], headers=api.h())  # noqa: E731
    rep = get("json")
    assert rep.status_code == 200 and rep.json()["report_id"]
    # the analysis ran on the de-identified copy: the report's study UID is not the uploaded one
    assert rep.json()["study_instance_uid"] != uid
    seg = pydicom.dcmread(io.BytesIO(get("seg").content))
    sr = pydicom.dcmread(io.BytesIO(get("sr").content))
    assert seg.Modality == "SEG" and sr.Modality == "SR"
    assert get("pdf").content[:5] == b"%PDF-"
    fhir = get("fhir").json()
    assert fhir["resourceType"] == "Bundle"
    kinds = [e["resource"]["resourceType"] for e in fhir["entry"]]
    gated = sum(1 for s in rep.json()["sections"] if s.get("quality"))  # one image-quality Observation each
    assert kinds[0] == "DiagnosticReport"
    assert kinds.count("Observation") == len(rep.json()["measurements"]) + gated
    # SEG and SR are retrievable over QIDO too (stored as derived instances)
    assert any(s["0020000D"]["Value"][0] == str(seg.StudyInstanceUID)
               for s in api.client.get("/v1/dicomweb/studies", headers=api.h()).json())
    # audit rows: study written, analysis created, report read -- with the caller's key id and role
    rows = api.client.get("/v1/audit", headers=api.h(Role.ADMIN)).json()
    acts = {(r["action"], r["resource_type"]) for r in rows}
    assert {("create", "study"), ("create", "analysis"), ("read", "report")} <= acts
    assert all(r["role"] and r["user"] and r["client"] for r in rows)
    # no PHI in the application log: neither the patient's ID nor name appears in any record
    phi = {str(src.PatientID), str(src.PatientName)} - {""}
    assert phi and not any(x in rec.getMessage() for rec in caplog.records for x in phi)
    csv = api.client.get("/v1/audit?format=csv", headers=api.h(Role.ADMIN))
    assert csv.headers["content-type"].startswith("text/csv") and csv.text.splitlines()[0].startswith("id,time,user")


def test_analysis_failure_is_recorded_not_500(api: Api) -> None:
    from medai.dicom.phantoms import make_brain_mr

    brain = make_brain_mr().to_bytes() if hasattr(make_brain_mr(), "to_bytes") else []
    files = [("files", (f"{i}.dcm", b, "application/dicom")) for i, b in enumerate(brain)]
    uid = api.client.post("/v1/studies", headers=api.h(), files=files).json()["studies"][0]["study_instance_uid"]
    job = wait_job(api, api.client.post("/v1/analyses", headers=api.h(), json={"study_instance_uid": uid}).json()["id"])
    assert job["status"] == "failed" and job["error_code"] == "series-selection-error" and job["error"]
    r = api.client.get(f"/v1/analyses/{job['id']}/results/json", headers=api.h())
    assert r.status_code == 409


def test_unknown_study_and_job_are_problem_404(api: Api) -> None:
    r = api.client.post("/v1/analyses", headers=api.h(), json={"study_instance_uid": "1.2.3"})
    assert r.status_code == 404 and r.json()["type"].endswith("study-not-found")
    assert api.client.get(f"/v1/analyses/{uuid.uuid4().hex}", headers=api.h()).status_code == 404
    r = api.client.post("/v1/analyses", headers=api.h(), json={"nope": 1})
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM_MEDIA
    assert r.json()["errors"][0]["field"].endswith("study_instance_uid")


def _required_factors() -> dict:
    from medai.inference.predictor import Predictor

    p = Predictor.from_package(RISK_MODEL)
    return {f.name: p.config.reference[f.name] for f in p.spec.features if f.required}


def test_risk_sync_json_fhir_and_field_errors(api: Api) -> None:
    factors = _required_factors()
    r = api.client.post(f"/v1/risk/{RISK_MODEL}", headers=api.h(), json=factors)
    assert r.status_code == 200, r.text
    risk = r.json()["risks"][0]
    assert risk["model"]["name"] == RISK_MODEL and all(0 <= v <= 1 for v in risk["horizons"].values())
    # same answer through the generic predict route
    r2 = api.client.post(f"/v1/models/{RISK_MODEL}/predict", headers=api.h(Role.DATA_SCIENTIST), json=factors)
    assert r2.json()["risks"][0]["horizons"] == risk["horizons"]
    f = api.client.post(f"/v1/risk/{RISK_MODEL}?format=fhir", headers=api.h(), json=factors).json()
    ra = f["entry"][0]["resource"]
    assert ra["resourceType"] == "RiskAssessment"
    assert ra["prediction"][0]["probabilityDecimal"] == pytest.approx(list(risk["horizons"].values())[0])
    bad = api.client.post(f"/v1/risk/{RISK_MODEL}", headers=api.h(), json={**factors, "AGE": "old"})
    assert bad.status_code == 422 and bad.headers["content-type"] == PROBLEM_MEDIA
    assert any(e["field"] == "AGE" for e in bad.json()["errors"])
    assert api.client.post("/v1/risk/nope", headers=api.h(), json={}).status_code == 404
    rows = api.client.get("/v1/audit", headers=api.h(Role.ADMIN)).json()
    assert [r["resource_id"] for r in rows if r["action"] == "predict"] == [RISK_MODEL] * 3
    # no patient factor value ends up in the audit log
    assert "old" not in json.dumps(rows)


def test_models_list_card_contract_and_reload(api: Api) -> None:
    ms = {m["name"]: m for m in api.client.get("/v1/models", headers=api.h(Role.DATA_SCIENTIST)).json()}
    assert ms[RISK_MODEL]["input_kind"] == "factors" and ms[RISK_MODEL]["version"] and ms[RISK_MODEL]["model_card"]
    assert ms["heart_mr_cine_seg"]["input_kind"] == "study"
    one = api.client.get(f"/v1/models/{RISK_MODEL}", headers=api.h()).json()
    assert "AGE" in one["input_schema"]["properties"]
    r = api.client.post(f"/v1/models/{RISK_MODEL}/reload", headers=api.h(Role.DATA_SCIENTIST))
    assert r.status_code == 200 and r.json()["version"] == one["version"]
    r = api.client.post("/v1/models/heart_mr_cine_seg/predict", headers=api.h(), json={})
    assert r.status_code == 422 and r.json()["type"].endswith("use-analyses")


def test_keys_admin_and_audit_append_only(api: Api) -> None:
    r = api.client.post("/v1/keys", headers=api.h(Role.ADMIN), json={"role": "clinician", "name": "ward 3"})
    assert r.status_code == 201
    new = r.json()
    assert api.client.get("/v1/studies", headers={"X-API-Key": new["key"]}).status_code == 200
    listed = api.client.get("/v1/keys", headers=api.h(Role.ADMIN)).json()
    assert all("key" not in k for k in listed) and new["id"] in {k["id"] for k in listed}
    assert api.client.delete(f"/v1/keys/{new['id']}", headers=api.h(Role.ADMIN)).status_code == 204
    assert api.client.get("/v1/studies", headers={"X-API-Key": new["key"]}).status_code == 401
    from sqlalchemy import text
    from sqlalchemy.exc import DatabaseError

    with pytest.raises(DatabaseError), api.app.state.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit"))


def test_zip_upload_is_unpacked_within_the_ingest_limits(api: Api, phantom_bytes: list[bytes],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A member that inflates past the limit is refused by name with the reason, the rest is stored, and nothing
    of the upload is left in the store's scratch."""
    import zipfile

    from medai.dicom.ingest import IngestLimits
    from serving.routers import studies

    monkeypatch.setattr(studies, "UPLOAD_LIMITS", IngestLimits(max_file_bytes=4 * 1024**2))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for i, b in enumerate(phantom_bytes[:3]):
            zf.writestr(f"IM{i}.dcm", b)
        zf.writestr("bomb.dcm", b"\0" * (16 * 1024**2))
    assert len(buf.getvalue()) < 200_000
    r = api.client.post("/v1/studies", headers=api.h(), files=[("files", ("s.zip", buf.getvalue(), "application/zip"))])
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["stored"] == 3
    assert [x["source"] for x in out["refused"]] == ["s.zip:bomb.dcm"] and "exceeds" in out["refused"][0]["reason"]
    root = api.app.state.store.root
    assert not list(root.glob(".upload-*"))
    bad = api.client.post("/v1/studies", headers=api.h(), files=[("files", ("x.zip", b"PK\x03\x04junk", "x"))])
    assert bad.status_code == 422 and "valid zip" in bad.json()["detail"]


def test_denied_and_failed_requests_are_audited_once_and_auth_comes_before_validation(api: Api) -> None:
    from serving import audit

    def new_rows(since: int) -> list[tuple]:
        return [(r["user"], r["role"], r["action"], r["resource_id"], r["status"])
                for r in audit.rows(api.app.state.engine)[since:]]

    n = len(audit.rows(api.app.state.engine))
    assert api.client.get("/v1/studies").status_code == 401
    ds = api.h(Role.DATA_SCIENTIST)
    assert api.client.get("/v1/studies", headers=ds).status_code == 403
    assert api.client.get("/v1/studies/1.2.3", headers=api.h()).status_code == 404
    # a malformed body from an anonymous or unauthorised caller is refused for who it is, not for its body
    assert api.client.post("/v1/analyses", content=b"{nope", headers={"Content-Type": "application/json"}
                           ).status_code == 401
    assert api.client.post("/v1/analyses", json={"x": 1}, headers=ds).status_code == 403
    assert api.client.post("/v1/analyses", json={"x": 1}, headers=api.h()).status_code == 422
    rows = new_rows(n)
    assert [(r[2], r[3], r[4]) for r in rows] == [
        ("denied", "GET /v1/studies", 401), ("denied", "GET /v1/studies", 403),
        ("failed", "GET /v1/studies/1.2.3", 404), ("denied", "POST /v1/analyses", 401),
        ("denied", "POST /v1/analyses", 403), ("failed", "POST /v1/analyses", 422)]
    assert rows[0][:2] == ("anonymous", "") and rows[1][1] == "data_scientist" and rows[2][1] == "clinician"


def test_the_same_study_stored_concurrently_gives_one_row_per_instance(database_url: str, tmp_path,  # noqa: ANN001
                                                                       phantom_bytes: list[bytes]) -> None:
    """Uploads are stored in worker threads: four uploads of one study at once all succeed (no key collision, no
    deadlock) and leave one row per instance."""
    import concurrent.futures

    from serving.db import make_engine
    from serving.storage import StudyStore

    engine = make_engine(database_url)
    store = StudyStore(engine, tmp_path / "store")
    parts = [(f"IM{i}", b) for i, b in enumerate(phantom_bytes)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda order: store.store(parts[::order]), [1, -1, 1, -1]))
    assert all(len(o.stored) == len(parts) and not o.failed for o in outs)
    uid = outs[0].stored[0].study_uid
    assert len(store.instances(uid)) == len(parts)
    engine.dispose()


def test_upload_scratch_left_by_a_crash_is_swept(tmp_path, database_url: str) -> None:  # noqa: ANN001
    import os
    import time as _time

    from serving.db import make_engine
    from serving.storage import StudyStore

    store = StudyStore(make_engine(database_url), tmp_path / "store")
    old, young = store.root / ".upload-dead", store.root / ".upload-inflight"
    for d in (old, young):
        d.mkdir()
        (d / "member").write_bytes(b"identified")
    past = _time.time() - 2 * 3600
    os.utime(old, (past, past))
    assert store.sweep_uploads() == 1
    assert not old.exists() and young.exists()  # an upload in flight in another process is left alone
