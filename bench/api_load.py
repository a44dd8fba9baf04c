"""Bounded load on loopback: medai's risk endpoint against the two services a team would otherwise run, in one run.

Rows (each at every ``--workers`` count and every ``--concurrency``):

* **medai**: ``medai serve --workers W``, ``POST /v1/risk/<model>`` with an API key (auth on), every
  call audited (group-committed to SQLite, fsync on), validation, contributions, the compiled model
  (``compiled.json``).
* **mlflow**: ``mlflow models serve --env-manager local`` of the *same fitted pipeline* (``model.skops``) logged with
  MLflow's own sklearn flavour (``pyfunc_predict_fn=predict_proba``), ``POST /invocations``.
* **bare**: a bare FastAPI route calling that pipeline directly (:mod:`bench.baselines.bare_risk`), no auth, no audit.

Every phase sends the same patient (all factors at the package's reference values) after a warm-up, from an aiohttp
client in this process (``--concurrency`` keep-alive connections); it reports requests/s, p50/p99 latency, errors,
server CPU ms per request and server RSS (start, max, end). Each server's answer is checked against the
scikit-learn pipeline (``max_abs_diff``). Then, on medai with the first worker count: a study-upload phase (a small
cine phantom as a zip) and an RSS soak (``--soak`` requests, RSS every 1,000; ``rss_slope_mb_per_1k``).

Usage::

    .venv/bin/python bench/api_load.py [--model stroke_ist_death_6m] [--requests 2000] [--concurrency 1,8]
        [--workers 1,2] [--uploads 50] [--soak 10000] [--skip-mlflow] [--postgres] [--distributed] [--out FILE.json]

``--distributed``: PostgreSQL and the distributed job backend (``MEDAI_API_JOB_BACKEND=procrastinate``: the server
defers jobs to procrastinate, and a ``medai worker`` process runs beside it for the whole bench).
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
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

#: progress and the table go to stderr (plain text, no markup); stdout carries only the JSON
ERR = Console(stderr=True, highlight=False, markup=False, width=160)
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (mlflow serve runs uvicorn two levels down)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            todo += [int(c) for c in subprocess.run(["pgrep", "-P", str(p)], capture_output=True,
                                                    text=True).stdout.split()]
        except OSError:
            pass
    return out


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its children (MB)."""
    total = 0
    for p in _tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its children."""
    total = 0
    for p in _tree(pid):
        try:
            f = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(f[11]) + int(f[12])
        except (OSError, IndexError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


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


Send = Callable[[Any], Awaitable[tuple[int, bytes]]]


async def load(n: int, concurrency: int, make_send: Callable[[Any], Send]) -> dict[str, Any]:
    """``n`` requests from ``concurrency`` keep-alive connections; latency per request."""
    import aiohttp

    lat: list[float] = []
    errors = 0
    counter = iter(range(n))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        send = make_send(session)

        async def worker() -> None:
            nonlocal errors
            for _ in counter:
                t0 = time.perf_counter()
                status, _ = await send(None)
                lat.append(time.perf_counter() - t0)
                errors += status >= 300

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    a = np.asarray(lat) * 1000
    return {"requests": n, "concurrency": concurrency, "wall_s": round(wall, 2), "throughput_rps": round(n / wall, 1),
            "p50_ms": round(float(np.percentile(a, 50)), 2), "p99_ms": round(float(np.percentile(a, 99)), 2),
            "errors": errors}


def poster(url: str, body: Any, headers: dict[str, str] | None = None) -> Callable[[Any], Send]:
    def make(session: Any) -> Send:
        async def send(_: Any) -> tuple[int, bytes]:
            async with session.post(url, json=body, headers=headers or {}) as r:
                return r.status, await r.read()

        return send

    return make


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    import httpx

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


def save_mlflow_sklearn(pipeline: Any, kind: str, dst: Path) -> None:
    """The fitted pipeline in MLflow's own sklearn flavour (no medai code inside)."""
    import mlflow.sklearn

    mlflow.sklearn.save_model(pipeline, str(dst), serialization_format="cloudpickle",
                              pyfunc_predict_fn="predict_proba" if kind == "binary" else "predict",
                              pip_requirements=[])


def phases(name: str, workers: int, base_row: dict[str, Any], proc: subprocess.Popen, concurrencies: list[int],
           n: int, make_send: Callable[[Any], Send]) -> list[dict[str, Any]]:
    out = []
    asyncio.run(load(max(200, n // 10), max(concurrencies), make_send))  # warm-up
    for c in concurrencies:
        cpu0 = cpu_s(proc.pid)
        with RssSampler(proc.pid) as mem:
            r = asyncio.run(load(n, c, make_send))
        r.update(mem.summary(), server=name, workers=workers,
                 server_cpu_ms_per_req=round((cpu_s(proc.pid) - cpu0) / n * 1000, 3), **base_row)
        out.append(r)
        ERR.print(f"  {name:6s} w={workers} c={c}: {r['throughput_rps']:7.1f} req/s  p50 {r['p50_ms']:6.2f} ms  "
              f"p99 {r['p99_ms']:6.2f} ms  cpu {r['server_cpu_ms_per_req']:.2f} ms/req  errors {r['errors']}")
    return out


async def _one(url: str, body: Any, headers: dict[str, str] | None = None) -> Any:
    import aiohttp

    async with aiohttp.ClientSession() as s, s.post(url, json=body, headers=headers or {}) as r:
        return json.loads(await r.read())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="stroke_ist_death_6m")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", default="1,8", help="comma-separated client concurrencies")
    ap.add_argument("--workers", default="1,2", help="comma-separated uvicorn worker counts (every server)")
    ap.add_argument("--uploads", type=int, default=50)
    ap.add_argument("--soak", type=int, default=10000, help="requests of the RSS soak (0: none)")
    ap.add_argument("--skip-mlflow", action="store_true")
    ap.add_argument("--postgres", action="store_true",
                    help="medai on a throwaway PostgreSQL (.ci/postgres.sh) instead of the embedded SQLite")
    ap.add_argument("--distributed", action="store_true",
                    help="PostgreSQL plus the distributed job backend (procrastinate) with a medai worker running")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    a.postgres = a.postgres or a.distributed
    concurrencies = [int(x) for x in a.concurrency.split(",")]
    worker_counts = [int(x) for x in a.workers.split(",")]

    from medai.inference.package import resolve_package
    from medai.inference.predictor import Predictor
    from serving.auth import Role, create_key
    from serving.db import make_engine
    from serving.tools.kill9_durability import free_port

    pkg = resolve_package(a.model)
    pred = Predictor.from_package(a.model)
    ref = Predictor.from_package(a.model, compiled=False)
    cfg = pred.config
    patient = {k: cfg.reference.get(k) for k in pred.spec.names}
    hk = f"{cfg.primary_horizon:g}d"
    truth = ref.predict(patient).risks[0].horizons[hk]  # the scikit-learn pipeline's answer
    work = Path(tempfile.mkdtemp(prefix="medai-bench-"))
    results: dict[str, Any] = {"model": a.model, "engine": pred.engine, "cpus": os.cpu_count(),
                               "loadavg_start": os.getloadavg(), "client": "aiohttp, same machine",
                               "pipeline_risk": truth, "rows": []}
    py_env = {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
              "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    db_url = f"sqlite:///{work / 'api.db'}"
    pg_state = work / "postgres"
    if a.postgres:
        r = subprocess.run(["bash", str(REPO / ".ci" / "postgres.sh"), "start", str(pg_state)], capture_output=True,
                           text=True, timeout=120)
        if r.returncode != 0:
            raise SystemExit(f"PostgreSQL could not start: {r.stderr.strip()}")
        db_url = r.stdout.split()[1].rsplit("/", 1)[0] + "/postgres"
    results["database"] = db_url.split(":", 1)[0]
    env = {**os.environ, **py_env, "MEDAI_HOME": str(work / "home"),
           "MEDAI_API_DATABASE_URL": db_url, "MEDAI_API_STORAGE_ROOT": str(work / "store"),
           "MEDAI_API_MODELS": json.dumps([a.model]), "MEDAI_API_JOB_WORKERS": "0",
           "MEDAI_API_PRELOAD_MODELS": "true"}
    results["job_backend"] = "procrastinate" if a.distributed else "inprocess"
    if a.distributed:
        env["MEDAI_API_JOB_BACKEND"] = "procrastinate"
    key = create_key(make_engine(env["MEDAI_API_DATABASE_URL"]), Role.HOSPITAL_SYSTEM)[1]
    h = {"X-API-Key": key}
    if not a.skip_mlflow:
        save_mlflow_sklearn(ref.model, cfg.kind, work / "mlflow_model")

    def start(cmd: list[str], extra_env: dict[str, str] | None = None, log: str = "server.log") -> subprocess.Popen:
        return subprocess.Popen(cmd, cwd=REPO, env={**env, **(extra_env or {})}, start_new_session=True,
                                stdout=(work / log).open("ab"), stderr=subprocess.STDOUT)

    job_worker = None
    try:
        if a.distributed:  # the analysis worker runs beside the API for the whole bench, as deployed
            job_worker = start([str(Path(sys.executable).parent / "medai"), "worker"], log="worker.log")
        for w in worker_counts:
            # ---- medai
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            proc = start([str(Path(sys.executable).parent / "medai"), "serve", "--host", "127.0.0.1", "--port",
                          str(port), "--workers", str(w)])
            try:
                wait_http(f"{base}/ready", proc)
                url = f"{base}/v1/risk/{a.model}"
                got = asyncio.run(_one(url, patient, h))["risks"][0]["horizons"][hk]
                results["rows"] += phases("medai", w, {"max_abs_diff": abs(got - truth)}, proc, concurrencies,
                                          a.requests, poster(url, patient, h))
                if w == worker_counts[0]:
                    if a.uploads:
                        zdata = phantom_zip()

                        def upload_sender(session: Any, zdata: bytes = zdata, base: str = base) -> Send:
                            import aiohttp

                            async def send(_: Any) -> tuple[int, bytes]:
                                form = aiohttp.FormData()
                                form.add_field("files", zdata, filename="s.zip", content_type="application/zip")
                                async with session.post(f"{base}/v1/studies", data=form, headers=h) as r:
                                    return r.status, await r.read()

                            return send

                        with RssSampler(proc.pid) as mem:
                            up = asyncio.run(load(a.uploads, min(max(concurrencies), 4), upload_sender))
                        results["medai_upload"] = {**up, **mem.summary(), "zip_bytes": len(zdata)}
                    if a.soak:
                        rss = [rss_mb(proc.pid)]
                        for _ in range(max(1, a.soak // 1000)):
                            asyncio.run(load(1000, max(concurrencies), poster(url, patient, h)))
                            rss.append(rss_mb(proc.pid))
                        slope = float(np.polyfit(np.arange(len(rss) - 1), rss[1:], 1)[0]) if len(rss) > 2 else 0.0
                        results["medai_soak"] = {"requests": a.soak, "rss_mb_every_1k": [round(v, 1) for v in rss],
                                                 "rss_slope_mb_per_1k": round(slope, 3)}
                        ERR.print(f"  soak {a.soak} requests: RSS {rss[0]:.0f} -> {rss[-1]:.0f} MB "
                              f"(slope {slope:+.2f} MB per 1k)")
            finally:
                stop(proc)
            # ---- bare FastAPI on the pipeline
            port = free_port()
            proc = start([sys.executable, "-m", "uvicorn", "--factory", "bench.baselines.bare_risk:create_app",
                          "--host", "127.0.0.1", "--port", str(port), "--workers", str(w), "--log-level", "warning"],
                         {"BENCH_PACKAGE": str(pkg)})
            try:
                wait_http(f"http://127.0.0.1:{port}/ping", proc)
                url = f"http://127.0.0.1:{port}/predict"
                got = asyncio.run(_one(url, patient))["risk"]
                results["rows"] += phases("bare", w, {"max_abs_diff": abs(got - truth)}, proc, concurrencies,
                                          a.requests, poster(url, patient))
            finally:
                stop(proc)
            # ---- mlflow models serve, sklearn flavour
            if a.skip_mlflow:
                continue
            port = free_port()
            proc = start([sys.executable, "-m", "mlflow", "models", "serve", "-m", str(work / "mlflow_model"), "-h",
                          "127.0.0.1", "-p", str(port), "--env-manager", "local", "-w", str(w)], log="mlflow.log")
            try:
                wait_http(f"http://127.0.0.1:{port}/ping", proc)
                url = f"http://127.0.0.1:{port}/invocations"
                body = {"dataframe_records": [patient]}
                pr = asyncio.run(_one(url, body))["predictions"][0]
                got = pr[1] if isinstance(pr, list) else pr
                diff = abs(got - truth) if cfg.kind == "binary" else None  # survival flavour: log hazard only
                results["rows"] += phases("mlflow", w, {"max_abs_diff": diff}, proc, concurrencies,
                                          max(200, a.requests // 4), poster(url, body))
            except Exception as exc:  # noqa: BLE001 -- report why the baseline could not run
                log = (work / "mlflow.log").read_text()[-1500:]
                results["mlflow_error"] = f"{type(exc).__name__}: {exc}; log: {log}"
            finally:
                stop(proc)
    finally:
        if job_worker is not None:
            stop(job_worker)
        if a.postgres:
            subprocess.run(["bash", str(REPO / ".ci" / "postgres.sh"), "stop", str(pg_state)], timeout=60)
        shutil.rmtree(work, ignore_errors=True)

    rows = {(r["server"], r["workers"], r["concurrency"]): r for r in results["rows"]}
    ratios = {}
    for (srv, w, c), r in rows.items():
        if srv != "medai":
            continue
        for other in ("bare", "mlflow"):
            o = rows.get((other, w, c))
            if o:
                ratios[f"vs_{other}_w{w}_c{c}"] = round(r["throughput_rps"] / o["throughput_rps"], 1)
    results["throughput_ratios"] = ratios
    results["loadavg_end"] = os.getloadavg()
    lines = [f"{'server':7s} {'workers':>7s} {'conc':>5s} {'req/s':>8s} {'p50 ms':>7s} {'p99 ms':>7s} "
             f"{'cpu ms/req':>10s} {'RSS max MB':>10s} {'|risk - sklearn|':>16s}"]
    for r in results["rows"]:
        d = "n/a" if r["max_abs_diff"] is None else f"{r['max_abs_diff']:.1e}"
        lines.append(f"{r['server']:7s} {r['workers']:7d} {r['concurrency']:5d} {r['throughput_rps']:8.1f} "
                     f"{r['p50_ms']:7.2f} {r['p99_ms']:7.2f} {r['server_cpu_ms_per_req']:10.2f} "
                     f"{r['rss_max_mb']:10.1f} {d:>16s}")
    lines.append("medai throughput / baseline: " + ", ".join(f"{k} {v}x" for k, v in ratios.items()))
    ERR.print("\n".join(lines))
    text = json.dumps(results, indent=1)
    sys.stdout.write(text + "\n")
    if a.out:
        a.out.write_text(text)


if __name__ == "__main__":
    main()
