"""Schemathesis CLI against a live ``medai serve`` (a real uvicorn process, not in-process ASGI), every check
(``--checks all``: status codes, content types, response schemas, Allow headers, authentication, positive and
negative data...), a bounded number of examples, and a real study stored first so the DICOMweb routes are exercised
on data that exists. 0 failures; the few operations whose valid input OpenAPI cannot state are explained in
``schemathesis.toml`` beside this file."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from medai.dicom.phantoms import make_cine_sax_study
from serving.tools.kill9_durability import REPO, free_port, make_key, wait_ready

HERE = Path(__file__).resolve().parent
pytest.importorskip("schemathesis")


@pytest.mark.slow
def test_schemathesis_all_checks_against_a_live_server(tmp_path: Path) -> None:
    env = {**os.environ, "MEDAI_HOME": str(tmp_path / "home"), "MEDAI_API_DATABASE_URL": f"sqlite:///{tmp_path}/a.db",
           "MEDAI_API_STORAGE_ROOT": str(tmp_path / "store"), "MEDAI_API_MODELS": '["stroke_ist_death_6m"]',
           "MEDAI_API_JOB_WORKERS": "0", "MEDAI_API_MAX_UPLOAD_BYTES": "2000000", "PYTHONPATH": str(REPO)}
    key = make_key(env)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = (tmp_path / "server.log").open("ab")
    medai = Path(sys.executable).with_name("medai")  # the installed console script, as a user starts it
    server = subprocess.Popen([str(medai), "serve", "--port", str(port)], cwd=REPO, env=env,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_ready(base, server)
        study = tmp_path / "study"
        make_cine_sax_study(study, n_slices=2, n_phases=2, rows=24, cols=24)
        files = [("files", (p.name, p.read_bytes(), "application/dicom")) for p in sorted(study.rglob("*.dcm"))]
        up = httpx.post(f"{base}/v1/studies", headers={"X-API-Key": key}, files=files, timeout=60)
        assert up.status_code == 201, up.text
        cmd = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(HERE / "schemathesis.toml"), "run",
               f"{base}/openapi.json", "--checks", "all", "-H", f"X-API-Key: {key}", "--max-examples", "5",
               "--seed", "7", "--workers", "1", "--no-color"]
        run = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                             env={**env, "SCHEMATHESIS_HOOKS": "tests.serving.schemathesis_hooks"})
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(20)
    out = run.stdout + run.stderr
    tested = re.search(r"Tested:\s+(\d+)", out)
    assert tested and int(tested.group(1)) >= 50, out[-4000:]  # every operation of the API was exercised
    assert run.returncode == 0 and "failure" not in out.split("SUMMARY")[-1].lower(), out[-6000:]
