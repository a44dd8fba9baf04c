"""Bounded load on loopback: the medai API (risk endpoint, study upload) vs ``mlflow models serve`` of the same
risk model, in the same run.

* medai: ``uvicorn --factory serving.app:create_app`` (1 worker unless ``--workers``), ``POST /v1/risk/<model>``
  with the package's reference patient, and ``POST /v1/studies`` with a small cine phantom study as a zip.
* baseline: the same shipped package wrapped as an MLflow pyfunc (``RiskPredictor.predict`` inside), served by
  ``mlflow models serve --env-manager local``, ``POST /invocations`` with the same patient.
* each phase: ``--requests`` requests from ``--concurrency`` concurrent clients after a warm-up; throughput
  (requests/s), p50/p99 latency (ms), errors; server RSS sampled every 0.5 s (start, max, end).

Usage::

    nice -n 10 .venv/bin/python bench/api_load.py [--model stroke_ist_death_6m] [--requests 2000]
        [--concurrency 8] [--uploads 100] [--workers 1] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its children (MB)."""
    total = 0
    pids = [pid]
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        pids += [int(p) for p in out]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


class RssSampler:
    """Samples a process tree's RSS in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid, self.samples, self._stop = pid, [], threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.samples.append(rss_mb(self.pid))

    def __enter__(self) -> RssSampler:
        self.samples.append(rss_mb(self.pid))
        self._t.start()
        return self

    def __exit__(self, *a: object) -> None:
        self._stop.set()
        self._t.join()
        self.samples.append(rss_mb(self.pid))

    def summary(self) -> dict[str, float]:
        s = self.samples
        return {"rss_start_mb": round(s[0], 1), "rss_max_mb": round(max(s), 1), "rss_end_mb": round(s[-1], 1)}


async def load(url: str, n: int, concurrency: int, make_request: Any) -> dict[str, Any]:
    """``n`` requests from ``concurrency`` workers; latency per request."""
    lat: list[float] = []
    errors = 0
    counter = iter(range(n))
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=concurrency)) as client:

        async def worker() -> None:
            nonlocal errors
            for _ in counter:
                t0 = time.perf_counter()
                r = await make_request(client, url)
                lat.append(time.perf_counter() - t0)
                if r.status_code >= 300:
                    errors += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    a = np.asarray(lat) * 1000
    return {"requests": n, "concurrency": concurrency, "wall_s": round(wall, 2), "throughput_rps": round(n / wall, 1),
            "p50_ms": round(float(np.percentile(a, 50)), 2), "p99_ms": round(float(np.percentile(a, 99)), 2),
            "errors": errors}


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(url)


def stop(proc: subprocess.Popen) -> None:
    """Terminate the server's process group (it was started in its own session)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def phantom_zip() -> bytes:
    from medai.dicom.phantoms import make_cine_sax_study

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i, b in enumerate(make_cine_sax_study(n_slices=4, n_phases=5, rows=40, cols=40).to_bytes()):
            zf.writestr(f"IM{i:04d}.dcm", b)
    return buf.getvalue()


def save_pyfunc(model: str, dst: Path) -> None:
    """The shipped package as an MLflow pyfunc that calls the same ``RiskPredictor.predict``."""
    import mlflow.pyfunc

    class MedaiRisk(mlflow.pyfunc.PythonModel):
        def load_context(self, context: Any) -> None:
            from medai.inference.predictor import Predictor

            self.p = Predictor.from_package(context.artifacts["package"])

        def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
            rows = model_input.to_dict(orient="records")
            return [next(iter(self.p.predict(r).risks[0].horizons.values())) for r in rows]

    from medai.inference.package import resolve_package

    mlflow.pyfunc.save_model(str(dst), python_model=MedaiRisk(), artifacts={"package": str(resolve_package(model))},
                             pip_requirements=[])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="stroke_ist_death_6m")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--uploads", type=int, default=100)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--skip-mlflow", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()

    from medai.inference.predictor import Predictor
    from serving.tools.kill9_durability import free_port

    pred = Predictor.from_package(a.model)
    patient = {f.name: pred.config.reference[f.name] for f in pred.spec.features if f.required}
    work = Path(tempfile.mkdtemp(prefix="medai-bench-"))
    results: dict[str, Any] = {"model": a.model, "cpus": os.cpu_count(), "loadavg": os.getloadavg(),
                               "workers": a.workers}
    env = {**os.environ, "MEDAI_HOME": str(work / "home"), "MEDAI_API_DATABASE_URL": f"sqlite:///{work / 'api.db'}",
           "MEDAI_API_STORAGE_ROOT": str(work / "store"), "MEDAI_API_MODELS": json.dumps([a.model]),
           "MEDAI_API_JOB_WORKERS": "0", "MEDAI_API_PRELOAD_MODELS": "true", "PYTHONPATH": str(REPO),
           "OMP_NUM_THREADS": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    from serving.auth import Role, create_key
    from serving.db import make_engine

    key = create_key(make_engine(env["MEDAI_API_DATABASE_URL"]), Role.HOSPITAL_SYSTEM)[1]
    h = {"X-API-Key": key}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "serving.app:create_app", "--host",
                             "127.0.0.1", "--port", str(port), "--workers", str(a.workers), "--log-level", "warning"],
                            cwd=REPO, env=env, start_new_session=True)
    try:
        wait_http(f"{base}/ready", proc)

        async def risk(client: httpx.AsyncClient, url: str) -> httpx.Response:
            return await client.post(url, json=patient, headers=h)

        zdata = phantom_zip()

        async def upload(client: httpx.AsyncClient, url: str) -> httpx.Response:
            return await client.post(url, headers=h, files=[("files", ("s.zip", zdata, "application/zip"))])

        url = f"{base}/v1/risk/{a.model}"
        asyncio.run(load(url, 100, a.concurrency, risk))  # warm-up
        with RssSampler(proc.pid) as mem:
            results["medai_risk"] = asyncio.run(load(url, a.requests, a.concurrency, risk))
        results["medai_risk"].update(mem.summary())
        with RssSampler(proc.pid) as mem:
            results["medai_upload"] = asyncio.run(load(f"{base}/v1/studies", a.uploads, min(a.concurrency, 4),
                                                       upload))
        results["medai_upload"].update(mem.summary(), zip_bytes=len(zdata))
    finally:
        stop(proc)

    if not a.skip_mlflow:
        mdir = work / "pyfunc"
        save_pyfunc(a.model, mdir)
        port = free_port()
        mproc = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", str(mdir), "-h",
                                  "127.0.0.1", "-p", str(port), "--env-manager", "local", "-w", str(a.workers)],
                                 cwd=REPO, env=env, start_new_session=True, stdout=(work / "mlflow.log").open("wb"),
                                 stderr=subprocess.STDOUT)
        try:
            wait_http(f"http://127.0.0.1:{port}/ping", mproc, timeout=180)

            async def inv(client: httpx.AsyncClient, url: str) -> httpx.Response:
                return await client.post(url, json={"dataframe_records": [patient]})

            url = f"http://127.0.0.1:{port}/invocations"
            asyncio.run(load(url, 100, a.concurrency, inv))
            with RssSampler(mproc.pid) as mem:
                results["mlflow_risk"] = asyncio.run(load(url, a.requests, a.concurrency, inv))
            results["mlflow_risk"].update(mem.summary())
            results["speedup_throughput"] = round(results["medai_risk"]["throughput_rps"]
                                                  / results["mlflow_risk"]["throughput_rps"], 2)
        except Exception as exc:  # noqa: BLE001 -- report why the baseline could not run
            results["mlflow_risk"] = {"error": f"{type(exc).__name__}: {exc}",
                                      "log_tail": (work / "mlflow.log").read_text()[-2000:]}
        finally:
            stop(mproc)
    shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(results, indent=1)
    sys.stdout.write(text + "\n")
    if a.out:
        a.out.write_text(text)


if __name__ == "__main__":
    main()
