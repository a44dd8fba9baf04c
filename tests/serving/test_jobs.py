"""The job runner on SQLite and PostgreSQL: concurrent workers never claim a job twice, a worker that loses its
lease stops and publishes nothing, callbacks are signed and retried with backoff."""

from __future__ import annotations

import http.server
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text, update

from serving import db
from serving.jobs import JobRunner, JobStatus, verify_callback

BACKENDS = ("sqlite", "postgresql")
SECRET = b"test-callback-key"


def _runner(engine: Any, root: Path, analyse: Any, **kw: Any) -> JobRunner:
    kw.setdefault("lease_seconds", 30.0)
    return JobRunner(engine, root / "results", analyse, threads=0, callback_hosts=["127.0.0.1"],
                     callback_secret=SECRET, **kw)


def test_concurrent_claims_take_each_job_once(database_url: str, tmp_path: Path) -> None:
    engine = db.make_engine(database_url)
    a, b = (_runner(engine, tmp_path, lambda *x: {}) for _ in range(2))
    ids = [a.submit(None, f"1.2.{i}", "u", None)["id"] for i in range(20)]
    got: dict[str, list[str]] = {"a": [], "b": []}

    def take(r: JobRunner, key: str) -> None:
        while (job := r.claim()) is not None:
            got[key].append(job["id"])

    threads = [threading.Thread(target=take, args=(r, k)) for r, k in ((a, "a"), (b, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got["a"] + got["b"]) == sorted(ids)  # every job once, none twice
    engine.dispose()


def test_a_worker_that_loses_its_lease_stops_and_publishes_nothing(database_url: str, tmp_path: Path) -> None:
    engine = db.make_engine(database_url)
    stages: list[str] = []

    def analyse(study_uid: str, work: Path, out: Path, progress: Any, kinds: Any) -> dict[str, str]:
        for s in ("ingest", "inference", "measurement", "rendering"):
            progress(s)
            stages.append(s)
            time.sleep(0.4)
        out.mkdir(parents=True)
        (out / "report.json").write_text("{}")
        return {"json": "report.json"}

    r = _runner(engine, tmp_path, analyse, lease_seconds=0.6)
    job_id = r.submit(None, "1.2.3", "u", None)["id"]
    job = r.claim()
    assert job is not None and job["id"] == job_id

    def steal() -> None:  # another worker reclaimed it (our lease looked lapsed to it)
        time.sleep(0.3)
        with engine.begin() as conn:
            conn.execute(update(db.jobs).where(db.jobs.c.id == job_id).values(lease_owner="other-host:1:x"))

    threading.Thread(target=steal).start()
    r.run_one(job)
    assert stages and stages[-1] != "rendering"  # stopped at a stage boundary, before publishing
    assert not r.result_dir(job_id).exists()
    row = r.get(job_id)
    assert row["status"] == JobStatus.RUNNING and row["lease_owner"] == "other-host:1:x" and row["completions"] == 0
    engine.dispose()


class _Flaky(http.server.BaseHTTPRequestHandler):
    answers: list[int] = []
    seen: list[tuple[bytes, str, str]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Flaky.seen.append((body, self.headers.get("X-Medai-Signature", ""), self.headers["X-Medai-Delivery"]))
        self.send_response(_Flaky.answers.pop(0) if _Flaky.answers else 204)
        self.end_headers()

    def log_message(self, *a: Any) -> None:
        pass


def _status_after(r: JobRunner, job_id: str, timeout: float = 10.0) -> str:
    t0 = time.time()
    for t in r._deliveries:
        t.join(timeout)
    while time.time() - t0 < timeout:
        with r.engine.connect() as conn:
            s = conn.execute(text("SELECT callback_status FROM jobs WHERE id = :i"), {"i": job_id}).scalar_one()
        if s:
            return s
        time.sleep(0.05)
    return ""


def test_callbacks_are_signed_and_retried_with_backoff(database_url: str, tmp_path: Path) -> None:
    engine = db.make_engine(database_url)
    srv = http.server.HTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_port}/cb"
    try:
        # two server errors, then success: three signed deliveries, backing off
        _Flaky.answers, _Flaky.seen = [500, 503], []
        r = _runner(engine, tmp_path, lambda *x: {}, callback_backoff=0.05)
        job_id = r.submit(None, "1.2.3", "u", url)["id"]
        t0 = time.monotonic()
        r.run_one(r.claim())
        assert _status_after(r, job_id) == "http 204 (attempt 3 of 5)"
        assert time.monotonic() - t0 >= 0.05 + 0.1  # waited 0.05 s, then 0.1 s
        assert [d for _, _, d in _Flaky.seen] == [f"{job_id}-1", f"{job_id}-2", f"{job_id}-3"]
        assert all(verify_callback(SECRET, body, sig) for body, sig, _ in _Flaky.seen)
        assert b'"status":"succeeded"' in _Flaky.seen[-1][0]
        # a client error will not change on retry: one attempt
        _Flaky.answers, _Flaky.seen = [410], []
        job2 = r.submit(None, "1.2.4", "u", url)["id"]
        r.run_one(r.claim())
        assert _status_after(r, job2) == "http 410 (attempt 1 of 5)" and len(_Flaky.seen) == 1
    finally:
        srv.shutdown()
    engine.dispose()


def test_signature_check_refuses_replays_and_tampering() -> None:
    from serving.jobs import sign_callback

    body = b'{"job_id":"j","status":"succeeded"}'
    sig = sign_callback(SECRET, body, timestamp=1_000_000)
    assert verify_callback(SECRET, body, sig, now=1_000_100)
    assert not verify_callback(SECRET, body, sig, now=1_000_000 + 301)  # too old: a replay
    assert not verify_callback(SECRET, body.replace(b"succeeded", b"failed"), sig, now=1_000_100)
    assert not verify_callback(SECRET, body, "garbage", now=1_000_100)


def test_revoking_stops_a_running_job_at_its_publication_fence(database_url: str, tmp_path: Path) -> None:
    """The in-process backend too: a job revoked while it runs is stopped by the synchronous lease check before
    it publishes (no waiting for the heartbeat), and what it stored elsewhere is discarded."""
    engine = db.make_engine(database_url)
    discarded: list[str] = []
    revoked = threading.Event()

    def analyse(study_uid: str, work: Path, out: Path, progress: Any, kinds: Any) -> dict[str, str]:
        progress("inference")
        revoked.wait(10)
        progress("publishing")  # the fence: raises here, the heartbeat has not run yet (lease 30 s)
        out.mkdir(parents=True)
        return {"json": "report.json"}

    r = _runner(engine, tmp_path, analyse, discard=discarded.append)
    queued = r.submit(None, "1.2.9", "u", None)["id"]
    assert r.cancel(queued)["status"] == JobStatus.CANCELLED
    assert r.claim() is None  # a revoked queued job is never claimed
    job_id = r.submit(None, "1.2.3", "u", None)["id"]
    job = r.claim()
    t = threading.Thread(target=r.run_one, args=(job,))
    t.start()
    time.sleep(0.2)
    row = r.cancel(job_id)
    revoked.set()
    t.join(10)
    assert row["status"] == JobStatus.CANCELLED and row["error_code"] == "cancelled"
    row = r.get(job_id)
    assert row["status"] == JobStatus.CANCELLED and row["completions"] == 0
    assert not r.result_dir(job_id).exists() and discarded == [job_id]
    assert r.cancel(job_id)["status"] == JobStatus.CANCELLED  # a second revoke changes nothing
    assert r.execute(job_id) == "ended" and r.execute("nope") == "missing"
    engine.dispose()
