"""Benchmark of the clinician web app, measured in the browser (Debian's Chromium driven by Playwright).

* **Worklist of N studies** (default 1,000; goal: renders in under 1 s): N stored studies (one real DICOM instance
  each, a third with a failed job) on a fresh app; the time from opening ``#/worklist`` to the table of all N
  painted (rows are windowed: those in view are in the DOM), as seen from Playwright, with the page's own split
  (``/v1/worklist`` fetch + JSON vs building the rows), a re-sort by clicking a column header and a scroll to the
  last study. Baseline, in the same page: a bare ``innerHTML`` of the same rows without
  formatting, escaping, filtering or sorting.
* **Cine playback** (goal: >= 20 frames/s at 256x256): a generated 256x256 cine phantom analysed by the shipped
  model, opened in the viewer (Cornerstone3D's stack viewport with medai's label overlay), played at the fastest
  setting (40 fps); frames drawn per second over 5 s (median of per-second counts). Baseline, in the same page: a
  bare ``requestAnimationFrame`` loop that only ``putImageData``s a ready 256x256 frame (the browser's ceiling for a
  software-rendered canvas here).

Each is run with Chromium pinned to one CPU (``taskset -c 0``) and to two; ratios are printed against the goals and
the baselines. Usage::

    .venv/bin/python bench/web.py [--studies 1000] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PASSWORD = "bench password 1"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(tmp: Path) -> tuple[str, Any]:
    import httpx
    import uvicorn

    from serving.app import create_app
    from serving.settings import ApiSettings

    settings = ApiSettings(database_url=f"sqlite:///{tmp / 'api.db'}", storage_root=tmp / "store", job_workers=1)
    app = create_app(settings)
    port = _port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    from serving.auth import Role
    from serving.users import create_user

    create_user(app.state.engine, "bench", PASSWORD, Role.CLINICIAN, "Bench Clinician")
    return base, app


def seed_studies(app: Any, n: int) -> None:
    """N studies of one instance each through the store (a third with a failed job row)."""
    import pydicom
    from pydicom.uid import generate_uid

    from medai.dicom.phantoms import make_cine_sax_study
    from serving import db

    template = pydicom.dcmread(io.BytesIO(make_cine_sax_study(rows=32, cols=32, n_slices=1, n_phases=1).to_bytes()[0]))
    parts = []
    for i in range(n):
        ds = template.copy()
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid(), generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.PatientName, ds.PatientID = f"Patient^{i:04d}", f"P{i:05d}"
        ds.StudyDate = f"2026{1 + i % 12:02d}{1 + i % 28:02d}"
        ds.StudyDescription = ["CMR function", "CMR LGE", "CMR stress"][i % 3]
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        parts.append((f"s{i}", buf.getvalue()))
    out = app.state.store.store(parts, user="bench")
    now = time.time()
    with app.state.engine.begin() as conn:
        for i, s in enumerate(out.stored):
            if i % 3 == 0:
                conn.execute(db.jobs.insert().values(id=f"bench{i:019d}", kind="all", study_uid=s.study_uid,
                                                     status="failed", created=now, updated=now, created_by="bench",
                                                     attempts=1, stage="", error="no cine series", files="{}"))


def analyse_cine(base: str, tmp: Path) -> str:
    """Upload a 256x256 cine phantom and analyse it with the shipped models; the job id."""
    import httpx

    from medai.dicom.phantoms import make_cine_sax_study

    blobs = make_cine_sax_study(rows=256, cols=256, pixel_spacing=0.75, n_slices=6, n_phases=25).to_bytes()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i, b in enumerate(blobs):
            zf.writestr(f"IM{i:04d}.dcm", b)
    c = httpx.Client(base_url=base, timeout=600)
    r = c.post("/v1/session", json={"username": "bench", "password": PASSWORD})
    c.cookies.set("medai_session", r.cookies["medai_session"])
    h = {"X-CSRF-Token": r.json()["csrf"]}
    up = c.post("/v1/studies", files={"files": ("cine.zip", buf.getvalue())}, headers=h).json()
    uid = next(s["study_instance_uid"] for s in up["studies"] if s["n_instances"] == len(blobs))
    job = c.post("/v1/analyses", json={"study_instance_uid": uid}, headers=h).json()
    while True:
        j = c.get(f"/v1/analyses/{job['id']}").json()
        if j["status"] in ("succeeded", "failed"):
            break
        time.sleep(1)
    if j["status"] != "succeeded":
        raise SystemExit(f"the cine analysis failed: {j['error']}")
    return job["id"]


def chromium(cpus: str, tmp: Path) -> str:
    """A wrapper that runs Debian's Chromium pinned to ``cpus``."""
    exe = tmp / f"chromium-{cpus.replace(',', '_')}"
    exe.write_text(f'#!/bin/sh\nexec taskset -c {cpus} /usr/bin/chromium "$@"\n')
    exe.chmod(0o755)
    return str(exe)


BASELINE_ROWS = """(rows) => { const t0 = performance.now(); const tb = document.createElement('tbody');
  tb.innerHTML = rows.map(r => '<tr><td>' + r.patient + '</td><td>' + r.patient_id + '</td><td>' + r.study_date +
  '</td><td>' + r.description + '</td></tr>').join(''); document.body.appendChild(tb);
  const dt = performance.now() - t0; tb.remove(); return dt; }"""

BASELINE_CINE = """async ([w, h]) => { const c = document.createElement('canvas'); c.width = w; c.height = h;
  document.body.appendChild(c); const ctx = c.getContext('2d'); const im = ctx.createImageData(w, h);
  for (let i = 0; i < im.data.length; i++) im.data[i] = (i * 7) % 255;
  let n = 0; const t0 = performance.now();
  await new Promise(res => { const f = () => { ctx.putImageData(im, 0, 0); n++;
    if (performance.now() - t0 < 3000) requestAnimationFrame(f); else res(); }; requestAnimationFrame(f); });
  c.remove(); return n / 3; }"""


def measure(base: str, exe: str, n: int, job: str | None) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    out: dict[str, Any] = {}
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, headless=True, args=ARGS)
        page = b.new_page(viewport={"width": 1400, "height": 900})
        page.goto(base + "/ui/")
        page.fill("#username", "bench")
        page.fill("#password", PASSWORD)
        page.keyboard.press("Enter")
        page.locator("#worklist tbody tr").first.wait_for(timeout=120_000)
        times, fetch, build, sort = [], [], [], []
        for _ in range(5):
            page.goto(base + "/ui/#/risk")
            page.locator("#rk-list").wait_for()
            t0 = time.perf_counter()
            page.goto(base + "/ui/#/worklist")
            page.wait_for_function(f"() => (document.getElementById('wl-count') || {{}}).textContent === "
                                   f"'{n} of {n} studies' && document.querySelector('#worklist tbody tr td')",
                                   timeout=120_000, polling="raf")
            page.evaluate("() => new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)))")  # painted
            times.append(time.perf_counter() - t0)
            st = page.evaluate("window.medaiStats")
            fetch.append(st["worklistMs"] / 1000)
            build.append(st["renderMs"] / 1000)
            page.click('#worklist th button[data-sort="patient"]')
            sort.append(page.evaluate("window.medaiStats.renderMs") / 1000)
        # scrolling to the end shows the last study (rows are windowed)
        t0 = time.perf_counter()
        page.evaluate("() => { const w = document.querySelector('.table-wrap'); w.scrollTop = w.scrollHeight; }")
        page.wait_for_function(f"() => document.querySelector('#worklist tbody tr[aria-rowindex=\"{n + 1}\"]')",
                               timeout=30_000, polling=5)
        scroll = time.perf_counter() - t0
        rows = page.evaluate("async () => (await fetch('/v1/worklist', {credentials: 'same-origin'})).json()")
        baseline = statistics.median(page.evaluate(BASELINE_ROWS, rows) / 1000 for _ in range(5))
        out["worklist"] = {"studies": len(rows), "open_to_rows_s": statistics.median(times),
                           "fetch_and_build_s": statistics.median(fetch), "build_rows_s": statistics.median(build),
                           "resort_s": statistics.median(sort), "scroll_to_end_s": scroll,
                           "baseline_bare_innerhtml_s": baseline}
        if job is None:
            b.close()
            return out
        page.goto(f"{base}/ui/#/viewer/{job}")
        page.wait_for_function("() => window.medaiViewer && window.medaiViewer.loaded >= window.medaiViewer.T * "
                               "window.medaiViewer.Z", timeout=300_000)
        page.select_option("#vw-fps", "40")
        page.click("#vw-play")
        page.wait_for_timeout(1200)
        samples = []
        for _ in range(5):
            page.wait_for_timeout(1000)
            samples.append(page.evaluate("window.medaiViewer.fps"))
        page.click("#vw-play")
        plane = [page.evaluate("window.medaiViewer.Y"), page.evaluate("window.medaiViewer.X")]
        out["cine"] = {"renderer": page.evaluate("window.medaiViewer.renderer"), "plane": plane, "set_fps": 40,
                       "fps": statistics.median(samples), "samples": samples,
                       "baseline_putimagedata_fps": page.evaluate(BASELINE_CINE, plane)}
        b.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--studies", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--no-cine", action="store_true", help="only the worklist (no cine analysis, no playback)")
    args = ap.parse_args()
    if not Path("/usr/bin/chromium").is_file() or not shutil.which("taskset"):
        raise SystemExit("needs Debian's chromium (/usr/bin/chromium; bash .ci/services.sh installs it) and taskset")
    tmp = Path(tempfile.mkdtemp(prefix="medai-bench-web-"))
    base, app = start_app(tmp)
    from rich.console import Console
    from rich.table import Table

    con = Console()
    con.print(f"seeding {args.studies} studies ...")
    seed_studies(app, args.studies)
    job = None
    if not args.no_cine:
        con.print("analysing a 256x256 cine phantom with the shipped models ...")
        job = analyse_cine(base, tmp)
    results: dict[str, Any] = {"studies": args.studies + (0 if job is None else 1)}
    for label, cpus in (("1 cpu", "0"), ("2 cpus", "0,1")):
        con.print(f"measuring with Chromium on {label} ...")
        results[label] = measure(base, chromium(cpus, tmp), results["studies"], job)
    if args.no_cine:
        for label in ("1 cpu", "2 cpus"):
            con.print(label, results[label]["worklist"])
        return
    t = Table("Chromium", "worklist open->rows", "vs 1 s goal", "build rows", "vs bare innerHTML", "re-sort",
              "cine fps", "vs 20 fps goal", "vs bare canvas loop",
              title=f"web app in the browser: worklist of {results['studies']} studies, cine "
                    f"{results['1 cpu']['cine']['plane'][0]}x{results['1 cpu']['cine']['plane'][1]} played at 40 fps")
    for label in ("1 cpu", "2 cpus"):
        w, c = results[label]["worklist"], results[label]["cine"]
        bare_rows, bare_fps = max(w["baseline_bare_innerhtml_s"], 1e-6), max(c["baseline_putimagedata_fps"], 1e-6)
        t.add_row(label, f"{w['open_to_rows_s']:.3f} s", f"{w['open_to_rows_s'] / 1.0:.2f}x",
                  f"{w['build_rows_s']:.3f} s", f"{w['build_rows_s'] / bare_rows:.2f}x", f"{w['resort_s']:.3f} s",
                  f"{c['fps']:.1f}", f"{c['fps'] / 20:.2f}x", f"{c['fps'] / bare_fps:.2f}x")
    con.print(t)
    con.print("worklist ratios: time / goal (below 1 is better); cine: fps / goal (above 1 is better); the bare "
              "baselines ran in the same page")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
        con.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
