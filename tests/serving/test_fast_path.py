"""The risk API's fast path keeps its guarantees: cached keys still die on revocation, group-committed audit rows
are all durable before answers leave (and a failed commit fails the request), compiled answers equal the pipeline's.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from serving import audit, db
from serving.auth import Principal, Role, create_key, revoke_key
from tests.serving.conftest import RISK_MODEL, Api

#: run on SQLite and on PostgreSQL (tests/serving/conftest.py)
BACKENDS = ("sqlite", "postgresql")

FACTORS = {"AGE": 71, "SEX": "M", "RDELAY": 3, "RCONSC": "F", "RSBP": 150, "STYPE": "PACS"}


def _audit_count(api: Api, action: str = "predict") -> int:
    with api.app.state.engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM audit WHERE action=:a"), {"a": action}).scalar_one()


def test_revoked_key_is_refused_at_once_through_the_api(api: Api) -> None:
    """A key that was just used (so cached) and is then revoked through the API gets 401 on its next call."""
    key_id, key = create_key(api.app.state.engine, Role.CLINICIAN, "cached")
    h = {"X-API-Key": key}
    assert api.client.post(f"/v1/risk/{RISK_MODEL}", json=FACTORS, headers=h).status_code == 200
    assert api.app.state.key_cache.get(key) is not None  # it is cached now
    assert api.client.delete(f"/v1/keys/{key_id}", headers=api.h(Role.ADMIN)).status_code == 204
    r = api.client.post(f"/v1/risk/{RISK_MODEL}", json=FACTORS, headers=h)
    assert r.status_code == 401 and r.json()["type"].endswith("invalid-key"), r.text


def test_key_revoked_elsewhere_stops_within_the_ttl(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """Revoked behind the server's back (the CLI, another worker): refused once the cache entry expires."""
    import serving.auth as auth_mod

    key_id, key = create_key(api.app.state.engine, Role.CLINICIAN, "elsewhere")
    h = {"X-API-Key": key}
    assert api.client.post(f"/v1/risk/{RISK_MODEL}", json=FACTORS, headers=h).status_code == 200
    assert revoke_key(api.app.state.engine, key_id)
    assert api.client.post(f"/v1/risk/{RISK_MODEL}", json=FACTORS, headers=h).status_code == 200  # within the TTL
    real = auth_mod.time.monotonic
    monkeypatch.setattr(auth_mod.time, "monotonic", lambda: real() + api.app.state.key_cache.ttl + 1)
    assert api.client.post(f"/v1/risk/{RISK_MODEL}", json=FACTORS, headers=h).status_code == 401


def test_key_cache_ttl_zero_reads_the_database_every_call(tmp_path: Path, tiny_cine: Path, database_url: str) -> None:
    from serving.app import create_app
    from serving.models import ModelRegistry
    from tests.serving.conftest import make_settings

    app = create_app(make_settings(tmp_path, key_cache_seconds=0, database_url=database_url),
                     models=ModelRegistry([RISK_MODEL]))
    with TestClient(app) as client:
        key_id, key = create_key(app.state.engine, Role.CLINICIAN, "nocache")
        h = {"X-API-Key": key}
        assert client.post(f"/v1/risk/{RISK_MODEL}", json=FACTORS, headers=h).status_code == 200
        assert app.state.key_cache.get(key) is None
        assert revoke_key(app.state.engine, key_id)
        assert client.post(f"/v1/risk/{RISK_MODEL}", json=FACTORS, headers=h).status_code == 401


def test_unknown_keys_are_not_cached(api: Api) -> None:
    r = api.client.post(f"/v1/risk/{RISK_MODEL}", json=FACTORS, headers={"X-API-Key": "mdk_nope"})
    assert r.status_code == 401
    assert api.app.state.key_cache.get("mdk_nope") is None


def test_concurrent_requests_each_leave_a_committed_audit_row(api: Api) -> None:
    """40 requests from 8 threads: 40 answers, and exactly 40 predict rows are in the table once they have all
    answered (group commit never answers before the row is durable)."""
    before = _audit_count(api)
    codes: list[int] = []

    def hit() -> None:
        for _ in range(5):
            codes.append(api.client.post(f"/v1/risk/{RISK_MODEL}", json=FACTORS, headers=api.h()).status_code)

    threads = [threading.Thread(target=hit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [200] * 40
    assert _audit_count(api) - before == 40


def test_audit_writer_batches_and_commits_every_row(database_url: str) -> None:
    engine = db.make_engine(database_url)
    w = audit.AuditWriter(engine)
    rows = [{"time": float(i), "user": "u", "role": "clinician", "client": "", "action": "predict",
             "resource_type": "risk", "resource_id": f"m{i}", "status": 200} for i in range(300)]
    futs = [w.submit(r) for r in rows]
    for f in futs:
        f.result(timeout=10)
    with engine.connect() as conn:
        ids = conn.execute(text("SELECT resource_id FROM audit ORDER BY time")).scalars().all()
    assert ids == [f"m{i}" for i in range(300)]


def test_a_failed_audit_commit_fails_the_request(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails closed: when the audit row cannot be written the caller gets an error, not an unaudited answer."""
    class Broken:
        def begin(self):  # noqa: ANN201
            raise RuntimeError("disk full")

    monkeypatch.setattr(audit, "writer_for", lambda engine: audit.AuditWriter(Broken()))  # type: ignore[arg-type]
    with TestClient(api.app, raise_server_exceptions=False) as client:
        r = client.post(f"/v1/risk/{RISK_MODEL}", json=FACTORS, headers=api.h())
    assert r.status_code == 500


def test_sync_record_waits_for_the_commit(database_url: str) -> None:
    engine = db.make_engine(database_url)

    class Req:
        client = None

    audit.record(engine, Principal(user="k1", name="n", role=Role.ADMIN), Req(), "revoke", "key", "k9", 204)  # type: ignore[arg-type]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT resource_id, status FROM audit")).all() == [("k9", 204)]


def test_the_served_risk_model_answers_from_compiled_arrays_equal_to_the_pipeline(api: Api) -> None:
    from medai.risk.predictor import RiskPredictor
    from serving.routers.models import prediction_out

    r = api.client.post(f"/v1/risk/{RISK_MODEL}", json=FACTORS, headers=api.h())
    assert r.status_code == 200, r.text
    served = api.app.state.models.loaded(RISK_MODEL)
    assert served.engine == "compiled" and served.answers_inline
    ref = RiskPredictor.from_package(served.package_dir, compiled=False)
    assert ref.engine == "reference"
    want = prediction_out(ref.predict(FACTORS)).model_dump(mode="json")["risks"][0]
    got = r.json()["risks"][0]
    assert abs(got["risk_score"] - want["risk_score"]) <= 1e-6
    assert got["horizons"].keys() == want["horizons"].keys() and got["horizons"]
    assert all(abs(got["horizons"][k] - v) <= 1e-6 for k, v in want["horizons"].items()), (got, want)
