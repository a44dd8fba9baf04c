"""Benchmark: analysis throughput of the distributed backend, 1 worker process against 2 (issue 14, scale-out).

A throwaway PostgreSQL (``.ci/postgres.sh``), one shared storage root, the shipped models. ``--jobs`` analyses of a
cine phantom study (every applicable analysis: cine function, quality gate, diagnosis; SEG, SR, PDF, FHIR) are
queued through the same path as ``POST /v1/analyses`` (job row + procrastinate delivery), then drained by ``medai
worker`` processes, each with ``--threads`` torch threads. The baseline in the same run is the embedded default:
the same jobs drained by one server process's in-process runner thread on SQLite. Prints jobs per minute and the
speed-up; ``--json`` writes the figures.

Usage::

    .venv/bin/python bench/jobs_scale.py [--jobs 8] [--threads 1] [--json bench/results/jobs_scale.json]

On a 2-core machine two workers of one thread each can at best double one worker; with more cores or hosts the
same command line scales by adding workers.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # noqa: E402 -- the bench runs from a checkout


def _study(tmp: Path) -> list[tuple[str, bytes]]:
    from medai.dicom.phantoms import make_cine_sax_study

    folder = tmp / "study"
    make_cine_sax_study(folder, rows=128, cols=128, n_slices=8, n_phases=20)
    return [(p.name, p.read_bytes()) for p in sorted(folder.rglob("*.dcm"))]


def _queue(env: dict[str, str], parts: list[tuple[str, bytes]], n: int, distributed: bool) -> list[str]:
    """Store the study and queue ``n`` analyses of it as the API would."""
    from serving.app import make_runner
    from serving.db import make_engine
    from serving.settings import ApiSettings
    from serving.storage import StudyStore

    settings = ApiSettings(database_url=env["MEDAI_API_DATABASE_URL"], storage_root=Path(env["MEDAI_API_STORAGE_ROOT"]),
                           job_backend="procrastinate" if distributed else "inprocess", job_workers=0)
    engine = make_engine(settings.db_url())
    store = StudyStore(engine, settings.store())
    uid = store.store(parts).stored[0].study_uid
    runner = make_runner(settings, engine, store, lambda *a: {})
    ids = [runner.submit(None, uid, "bench", None)["id"] for _ in range(n)]
    if runner.dispatcher is not None:
        runner.dispatcher.close()
    engine.dispose()
    return ids


def _wait(env: dict[str, str], ids: list[str], timeout: float) -> dict[str, int]:
    from sqlalchemy import func, select

    from serving import db
    from serving.db import make_engine

    engine = make_engine(env["MEDAI_API_DATABASE_URL"])
    t0 = time.time()
    try:
        while time.time() - t0 < timeout:
            with engine.connect() as conn:
                rows = dict(conn.execute(select(db.jobs.c.status, func.count()).where(db.jobs.c.id.in_(ids))
                                         .group_by(db.jobs.c.status)).all())
            if rows.get("succeeded", 0) + rows.get("failed", 0) >= len(ids):
                return rows
            time.sleep(0.2)
    finally:
        engine.dispose()
    raise TimeoutError(f"jobs not finished after {timeout} s: {rows}")


def _start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)


def run_case(work: Path, db_url: str, parts: list[tuple[str, bytes]], n_jobs: int, workers: int, threads: int,
             distributed: bool) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MEDAI_HOME": str(work / "home"), "MEDAI_API_DATABASE_URL": db_url,
           "MEDAI_API_STORAGE_ROOT": str(work / "store"), "OMP_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads),
           "MEDAI_API_JOB_BACKEND": "procrastinate" if distributed else "inprocess", "PYTHONPATH": str(REPO)}
    medai = str(Path(sys.executable).with_name("medai"))
    if distributed:
        procs = [_start([medai, "worker"], env, work / f"worker{i}.log") for i in range(workers)]
    else:  # the embedded default: one server process, one in-process runner thread
        procs = [_start([medai, "serve", "--port", "0"], {**env, "MEDAI_API_JOB_WORKERS": "1"}, work / "serve.log")]
    time.sleep(8.0)  # imports and model loading happen before the clock starts
    try:
        ids = _queue(env, parts, 1, distributed)  # warm-up: every worker loads its models on its first job
        _wait(env, ids, 600)
        if distributed and workers > 1:
            ids = _queue(env, parts, workers, distributed)
            _wait(env, ids, 600)
        t0 = time.perf_counter()
        ids = _queue(env, parts, n_jobs, distributed)
        statuses = _wait(env, ids, 1800)
        wall = time.perf_counter() - t0
    finally:
        _stop(procs)
    return {"backend": "procrastinate" if distributed else "inprocess", "workers": workers, "threads": threads,
            "jobs": n_jobs, "wall_s": round(wall, 2), "jobs_per_min": round(60 * n_jobs / wall, 2),
            "statuses": statuses}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per worker process")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    console = Console()
    work = Path(tempfile.mkdtemp(prefix="medai-jobs-scale-"))
    os.environ["MEDAI_HOME"] = str(work / "home")  # this process's key files stay in the bench folder
    pg = work / "postgres"
    r = subprocess.run(["bash", str(REPO / ".ci" / "postgres.sh"), "start", str(pg)], capture_output=True, text=True,
                       timeout=120)
    if r.returncode != 0:
        raise SystemExit(f"PostgreSQL could not start: {r.stderr.strip()}")
    base = r.stdout.split()[1].rsplit("/", 1)[0]
    results = []
    try:
        from sqlalchemy import create_engine

        admin = create_engine(base + "/postgres", isolation_level="AUTOCOMMIT")
        parts = _study(work)
        for name, distributed, workers in (("sqlite", False, 1), ("pg1", True, 1), ("pg2", True, 2)):
            if distributed:
                with admin.connect() as conn:
                    conn.exec_driver_sql(f"CREATE DATABASE bench_{name}")
                url = f"{base}/bench_{name}"
            else:
                url = f"sqlite:///{work / 'sqlite.db'}"
            console.log(f"{name}: {a.jobs} analyses, {workers} worker(s) x {a.threads} thread(s)")
            results.append(run_case(work / name, url, parts, a.jobs, workers, a.threads, distributed))
            console.log(results[-1])
        admin.dispose()
    finally:
        subprocess.run(["bash", str(REPO / ".ci" / "postgres.sh"), "stop", str(pg)], timeout=60, check=False)
    base_rate = results[0]["jobs_per_min"]
    table = Table(title=f"Analysis throughput: {a.jobs} cine phantom analyses (8 slices x 20 phases, 128x128)")
    for col in ("backend", "workers", "threads/worker", "wall s", "jobs/min", "vs in-process"):
        table.add_column(col)
    for res in results:
        table.add_row(res["backend"], str(res["workers"]), str(res["threads"]), f"{res['wall_s']:.1f}",
                      f"{res['jobs_per_min']:.1f}", f"{res['jobs_per_min'] / base_rate:.2f}x")
    console.print(table)
    if a.json:
        a.json.write_text(json.dumps({"jobs": a.jobs, "threads": a.threads, "cpus": os.cpu_count(),
                                      "results": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
