"""The distributed job backend (procrastinate on PostgreSQL): an API server that only defers, and two ``medai
worker`` processes. kill -9 of the worker running a job: the other one completes it, once, with one SEG and one SR;
a revoked job stops mid-run and leaves nothing; a redelivered job that ended is not run again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from medai.dicom.phantoms import make_cine_sax_study
from medai.errors import ConfigError
from serving import db
from serving.db import make_engine
from serving.jobs import JobRunner
from serving.tools.kill9_durability import REPO, free_port, make_key, start_server, wait_ready
from tests.serving.slow_app import SLOW_STAGE

BACKENDS = ("postgresql",)
pytest.importorskip("procrastinate")


def test_the_distributed_backend_refuses_sqlite_with_what_to_do(tmp_path: Path) -> None:
    from serving.distributed import require_postgres, serve_worker
    from serving.settings import ApiSettings

    with pytest.raises(ConfigError, match="needs PostgreSQL.*MEDAI_API_JOB_BACKEND=inprocess"):
        require_postgres(f"sqlite:///{tmp_path / 'api.db'}")
    assert require_postgres("postgresql+psycopg2://u:p@127.0.0.1:5432/d") == "postgresql://u:p@127.0.0.1:5432/d"
    with pytest.raises(ConfigError, match="MEDAI_API_JOB_BACKEND=procrastinate"):
        serve_worker(ApiSettings(database_url=f"sqlite:///{tmp_path / 'api.db'}"))


class Cluster:
    """An API server (defers only) and two workers on one PostgreSQL and one shared storage root."""

    def __init__(self, tmp: Path, database_url: str, tiny_cine: Path) -> None:
        self.tmp = tmp
        self.env = {**os.environ, "MEDAI_HOME": str(tmp / "home"), "MEDAI_API_DATABASE_URL": database_url,
                    "MEDAI_API_STORAGE_ROOT": str(tmp / "shared-store"), "MEDAI_API_LEASE_SECONDS": "2",
                    "MEDAI_API_JOB_BACKEND": "procrastinate", "PYTHONPATH": str(REPO),
                    "MEDAI_TEST_TINY_CINE": str(tiny_cine), "MEDAI_TEST_SLOW_S": "4", "OMP_NUM_THREADS": "1"}
        self.engine = make_engine(database_url)
        self.h = {"X-API-Key": make_key(self.env)}
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.server = start_server("tests.serving.slow_app:make_app", self.port, self.env, tmp / "server.log")
        self.workers = [self.start_worker(i) for i in range(2)]
        wait_ready(self.base, self.server)

    def start_worker(self, i: int) -> subprocess.Popen:
        log = (self.tmp / f"worker{i}.log").open("ab")
        return subprocess.Popen([sys.executable, "-m", "tests.serving.slow_app", "worker"], cwd=REPO, env=self.env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def upload(self, study: Path) -> str:
        files = [("files", (p.name, p.read_bytes(), "application/dicom")) for p in sorted(study.rglob("*"))
                 if p.is_file()]
        r = httpx.post(f"{self.base}/v1/studies", headers=self.h, files=files, timeout=120)
        r.raise_for_status()
        return r.json()["studies"][0]["study_instance_uid"]

    def submit(self, uid: str) -> str:
        r = httpx.post(f"{self.base}/v1/analyses", headers=self.h, json={"study_instance_uid": uid}, timeout=30)
        assert r.status_code == 202, r.text
        return r.json()["id"]

    def job(self, job_id: str) -> dict[str, Any]:
        return httpx.get(f"{self.base}/v1/analyses/{job_id}", headers=self.h, timeout=10).json()

    def wait(self, job_id: str, done: Any, timeout: float = 150.0) -> dict[str, Any]:
        t0 = time.time()
        while time.time() - t0 < timeout:
            j = self.job(job_id)
            if done(j):
                return j
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} never reached the state; last {j}; logs: {self.logs()}")

    def row(self, job_id: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            return dict(conn.execute(select(db.jobs).where(db.jobs.c.id == job_id)).mappings().one())

    def derived(self, job_id: str) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(db.instances)
                                .where(db.instances.c.source_job == job_id)).scalar()

    def deliveries(self, job_id: str) -> list[str]:
        with self.engine.connect() as conn:
            return sorted(r[0] for r in conn.execute(text(
                "SELECT status::text FROM procrastinate_jobs WHERE queueing_lock = :l"), {"l": job_id}))

    def logged(self, text: str) -> bool:
        return any(text in p.read_text() for p in self.tmp.glob("*.log"))

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.tmp.glob("*.log")))

    def close(self) -> None:
        for p in [self.server, *self.workers]:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in [self.server, *self.workers]:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        self.engine.dispose()


@pytest.fixture
def cluster(tmp_path: Path, database_url: str, tiny_cine: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path, database_url, tiny_cine)
    try:
        yield c
    finally:
        c.close()


@pytest.mark.slow
def test_kill9_of_the_working_worker_the_other_completes_the_job_once_and_revoke_stops_one(
        cluster: Cluster, tmp_path: Path) -> None:
    study = tmp_path / "study"
    make_cine_sax_study(study, n_slices=4, n_phases=5, rows=40, cols=40, pixel_spacing=1.8)
    uid = cluster.upload(study)
    job_id = cluster.submit(uid)
    running = cluster.wait(job_id, lambda j: j["status"] == "running" and j["stage"] == SLOW_STAGE)
    assert running["attempts"] == 1
    owner = cluster.row(job_id)["lease_owner"]
    pid = int(owner.split(":")[1])
    victim = next(w for w in cluster.workers if w.pid == pid)  # the API process runs no jobs: a worker holds it
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()

    done = cluster.wait(job_id, lambda j: j["status"] in ("succeeded", "failed"))
    assert done["status"] == "succeeded", cluster.logs()
    row = cluster.row(job_id)
    assert row["attempts"] == 2 and row["completions"] == 1
    assert row["lease_owner"] != owner  # the surviving worker finished it
    assert {"json", "seg", "sr", "pdf", "fhir"} <= set(done["results"])
    assert cluster.derived(job_id) == 2  # one SEG and one SR, not one pair per attempt
    results = tmp_path / "shared-store" / "results"
    assert (results / job_id / "report.json").is_file()
    assert not [p for p in (results / ".work").iterdir() if p.name.startswith(job_id)]  # no identified scratch
    assert cluster.deliveries(job_id) == ["succeeded"]  # the dead worker's delivery was retried, then acknowledged
    r = httpx.get(f"{cluster.base}{done['results']['json']}", headers=cluster.h, timeout=10)
    assert r.status_code == 200 and r.json()["sections"]

    # a redelivery of an ended job runs nothing (idempotent completion)
    def must_not_run(*a: Any, **k: Any) -> dict[str, str]:
        raise AssertionError("an ended job ran again")

    assert JobRunner(cluster.engine, results, must_not_run, threads=0).execute(job_id) == "ended"

    # revoke a running job: it stops at its next stage and publishes nothing
    second = cluster.submit(uid)
    cluster.wait(second, lambda j: j["status"] == "running" and j["stage"] == SLOW_STAGE)
    r = httpx.delete(f"{cluster.base}/v1/analyses/{second}", headers=cluster.h, timeout=10)
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
    assert httpx.delete(f"{cluster.base}/v1/analyses/{second}", headers=cluster.h, timeout=10).status_code == 409
    t0 = time.time()  # the attempt reaches its next stage (after the slow one) and stops there
    while time.time() - t0 < 60 and cluster.deliveries(second) != ["succeeded"]:
        time.sleep(0.2)
    assert cluster.deliveries(second) == ["succeeded"], cluster.logs()  # the task ended (acknowledged)
    row = cluster.row(second)
    assert row["status"] == "cancelled" and row["completions"] == 0
    assert not (results / second).exists() and cluster.derived(second) == 0
    assert cluster.logged("revoked while it ran; its outputs are removed")
    audit = httpx.get(f"{cluster.base}/v1/audit", headers=cluster.h, timeout=10).json()
    assert {("revoke", 200), ("revoke", 409)} <= {(a["action"], a["status"]) for a in audit}

    # a job whose delivery was never deferred (the engine was unreachable when the API wrote the row) is found by
    # a worker's sweep, deferred and run
    orphan = JobRunner(cluster.engine, results, must_not_run, threads=0).submit(None, uid, "test", None)["id"]
    assert cluster.deliveries(orphan) == []
    done = cluster.wait(orphan, lambda j: j["status"] in ("succeeded", "failed"))
    assert done["status"] == "succeeded", cluster.logs()
    t0 = time.time()  # the task is acknowledged just after the job's row is written
    while time.time() - t0 < 30 and cluster.deliveries(orphan) != ["succeeded"]:
        time.sleep(0.2)
    assert cluster.deliveries(orphan) == ["succeeded"], cluster.logs()
    assert cluster.logged("no worker is on it; deferred again")
