"""Crash-durability scenario: start uvicorn, upload a study, submit an analysis, ``kill -9`` the server while the
job runs, restart it, and check the job completes exactly once.

Usage::

    python -m serving.tools.kill9_durability STUDY_DIR [--app serving.app:create_app] [--workdir DIR]

Everything runs on a free loopback port with its own database and storage under ``--workdir``. Prints a JSON
summary (job status, attempts, completions, result files, derived SEG/SR instance count).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A free loopback TCP port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(app: str, port: int, env: dict[str, str], log: Path) -> subprocess.Popen:
    """``uvicorn --factory app`` on 127.0.0.1:port (its own process group)."""
    cmd = [sys.executable, "-m", "uvicorn", "--factory", app, "--host", "127.0.0.1", "--port", str(port),
           "--log-level", "warning"]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def wait_ready(base: str, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    """Poll ``/ready`` until it answers 200."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError("server did not become ready")


def make_key(env: dict[str, str], role: str = "admin") -> str:
    """A key created through the CLI code path, in the scenario's database."""
    out = subprocess.run([sys.executable, "-m", "medai.cli", "keys", "create", "--role", role], cwd=REPO, env=env,
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:  # `python -m medai.cli` may not be runnable: use the library directly
        from serving.auth import create_key
        from serving.db import make_engine

        return create_key(make_engine(env["MEDAI_API_DATABASE_URL"]), role)[1]
    return [ln for ln in out.stdout.splitlines() if ln.startswith("medai_")][0]


def run_scenario(study_dir: Path, workdir: Path, app: str = "serving.app:create_app",
                 extra_env: dict[str, str] | None = None, kill_when_stage: str | None = None,
                 timeout: float = 300.0) -> dict[str, Any]:
    """Run the scenario; returns the summary dict."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MEDAI_HOME": str(workdir / "home"),
           "MEDAI_API_DATABASE_URL": f"sqlite:///{workdir / 'api.db'}",
           "MEDAI_API_STORAGE_ROOT": str(workdir / "store"), "MEDAI_API_LEASE_SECONDS": "2",
           "PYTHONPATH": str(REPO), **(extra_env or {})}
    from serving.db import make_engine

    make_engine(env["MEDAI_API_DATABASE_URL"]).dispose()
    key = make_key(env)
    h = {"X-API-Key": key}
    log = workdir / "server.log"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_server(app, port, env, log)
    kills = 0
    try:
        wait_ready(base, proc)
        files = [("files", (p.name, p.read_bytes(), "application/dicom")) for p in sorted(study_dir.rglob("*"))
                 if p.is_file()]
        up = httpx.post(f"{base}/v1/studies", headers=h, files=files, timeout=120)
        up.raise_for_status()
        uid = up.json()["studies"][0]["study_instance_uid"]
        job = httpx.post(f"{base}/v1/analyses", headers=h, json={"study_instance_uid": uid}, timeout=30).json()
        job_id = job["id"]
        # wait until the job runs (and reaches the requested stage), then kill -9 the whole server
        t0 = time.time()
        while time.time() - t0 < timeout:
            j = httpx.get(f"{base}/v1/analyses/{job_id}", headers=h, timeout=10).json()
            if j["status"] == "running" and (kill_when_stage is None or j["stage"] == kill_when_stage):
                break
            if j["status"] in ("succeeded", "failed"):
                raise RuntimeError(f"job finished before it could be killed: {j}")
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
        killed_at = {"status": j["status"], "stage": j["stage"], "attempts": j["attempts"]}
        # restart on a new port: the lapsed lease lets the new process claim the job
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = start_server(app, port, env, log)
        wait_ready(base, proc)
        t0 = time.time()
        while time.time() - t0 < timeout:
            j = httpx.get(f"{base}/v1/analyses/{job_id}", headers=h, timeout=10).json()
            if j["status"] in ("succeeded", "failed"):
                break
            time.sleep(0.2)
        audit = httpx.get(f"{base}/v1/audit", headers=h, timeout=10).json()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    from sqlalchemy import func, select

    from serving import db

    engine = make_engine(env["MEDAI_API_DATABASE_URL"])
    with engine.connect() as conn:
        row = conn.execute(select(db.jobs).where(db.jobs.c.id == job_id)).mappings().one()
        n_jobs = conn.execute(select(func.count()).select_from(db.jobs)).scalar()
        derived = conn.execute(select(func.count()).select_from(db.instances)
                               .where(db.instances.c.source_job == job_id)).scalar()
    results = workdir / "store" / "results"
    return {
        "job_id": job_id, "killed_at": killed_at, "kills": kills, "status": row["status"], "error": row["error"],
        "attempts": row["attempts"], "completions": row["completions"], "jobs_in_db": n_jobs,
        "result_files": sorted(j["results"]), "result_dirs": sorted(p.name for p in results.iterdir()),
        "scratch_left": sorted(p.name for p in (results / ".work").iterdir()) if (results / ".work").is_dir() else [],
        "derived_instances": derived, "audit_actions": sorted({(a["action"], a["resource_type"]) for a in audit}),
    }


def main() -> None:
    """CLI entry (see module docstring)."""
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("study_dir", type=Path)
    ap.add_argument("--app", default="serving.app:create_app")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--kill-at-stage", default=None)
    a = ap.parse_args()
    work = a.workdir or Path(tempfile.mkdtemp(prefix="medai-kill9-"))
    out = run_scenario(a.study_dir, work, a.app, kill_when_stage=a.kill_at_stage)
    sys.stdout.write(json.dumps(out, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
