"""The clinician's whole path in a real browser (Debian's Chromium driven by Playwright) against a fresh
``medai serve`` started by its own command line with the shipped models:

sign in -> upload a generated cine phantom -> wait for the analysis -> open the viewer (overlay colours on the heart)
-> play the cine -> erase part of the LV -> the panel's LV EDV changes and equals a fresh computation -> sign (the
SR read back is VERIFIED) -> download the PDF -> a risk calculator refuses an out-of-range value at the field.
No console errors, no request to a non-loopback host, no critical axe-core finding. Screenshots land in tmp_path.
"""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.web.conftest import CHROMIUM_ARGS
from tests.web.helpers import axe_critical, describe

PASSWORD = "correct horse battery"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _medai() -> list[str]:
    exe = Path(sys.executable).with_name("medai")
    return [str(exe)] if exe.is_file() else [sys.executable, "-c", "from medai.cli import main; main()"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A fresh ``medai serve`` on a free loopback port with one clinician created by ``medai users create``."""
    import httpx

    home = tmp_path_factory.mktemp("medai_home")
    env = {**os.environ, "MEDAI_HOME": str(home), "OMP_NUM_THREADS": "2", "MEDAI_API_JOB_WORKERS": "1"}
    made = subprocess.run([*_medai(), "users", "create", "jdoe", "--role", "clinician", "--name", "Dr Jane Doe",
                           "--password-stdin"], input=PASSWORD + "\n", env=env, capture_output=True, text=True,
                          timeout=120)
    assert made.returncode == 0, made.stderr
    port = _free_port()
    log = (home / "serve.log").open("w")
    proc = subprocess.Popen([*_medai(), "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, (home / "serve.log").read_text()
        assert time.monotonic() < deadline, "medai serve did not answer /health in 120 s"
        time.sleep(0.3)
    try:
        yield {"base": base, "home": home, "env": env}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated cine SAX phantom study as a zip (what a clinician would drop)."""
    from medai.dicom.phantoms import make_cine_sax_study

    blobs = make_cine_sax_study(rows=128, cols=128, n_slices=8, n_phases=12).to_bytes()
    path = tmp_path_factory.mktemp("upload") / "phantom_study.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for i, b in enumerate(blobs):
            zf.writestr(f"phantom/IM{i:04d}.dcm", b)
    return path


def test_fresh_serve_shows_sign_in_in_a_dom_dump(server: dict[str, Any], chromium_path: str, tmp_path: Path) -> None:
    """``GET /`` on a fresh ``medai serve``: a headless-Chromium DOM dump holds the password field."""
    out = subprocess.run([chromium_path, "--headless", *CHROMIUM_ARGS, f"--user-data-dir={tmp_path / 'profile'}",
                          "--dump-dom", server["base"] + "/"], capture_output=True, text=True, timeout=120)
    assert 'type="password"' in out.stdout, out.stderr[-2000:]
    assert 'id="signin-form"' in out.stdout


def test_audit_address_cannot_be_spoofed(server: dict[str, Any]) -> None:
    """``medai serve`` believes X-Forwarded-For only from MEDAI_API_TRUSTED_PROXIES (none by default): the audit
    log records the socket peer, not what the client claims."""
    import httpx

    made = subprocess.run([*_medai(), "keys", "create", "--role", "admin", "--name", "audit-check"],
                          env=server["env"], capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    key = made.stdout.split()[-1]
    h = {"X-API-Key": key, "X-Forwarded-For": "203.0.113.9"}
    assert httpx.get(f"{server['base']}/v1/worklist", headers=h, timeout=30).status_code == 200
    rows = httpx.get(f"{server['base']}/v1/audit", headers=h, timeout=30).json()
    mine = [r for r in rows if r["resource_type"] == "worklist"]
    assert mine and {r["client"] for r in mine} == {"127.0.0.1"}


def _shot(page: Any, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def _colour_pixels(png: bytes, colour: tuple[int, int, int], tol: int = 40) -> np.ndarray:
    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    d = np.abs(img - np.array(colour)).sum(axis=-1)
    return np.argwhere(d < tol)  # (row, col) of the pixels of that colour


def _no_critical(page: Any, where: str) -> None:
    crit = axe_critical(page)
    assert not crit, f"axe-core critical findings on the {where}: {describe(crit)}"


def test_clinician_flow(server: dict[str, Any], phantom: Path, page: Any, tmp_path: Path) -> None:
    import pydicom
    from playwright.sync_api import expect

    base = server["base"]
    stats: dict[str, Any] = {}
    # 1. sign in
    page.goto(base + "/")
    assert page.url.endswith("/ui/")
    expect(page.locator('input[type="password"]')).to_be_visible()
    _no_critical(page, "sign-in page")
    _shot(page, tmp_path, "01-sign-in")
    page.fill("#username", "jdoe")
    page.fill("#password", "wrong password")
    page.click("#signin-form button[type=submit]")
    expect(page.locator("#signin-error")).to_contain_text("wrong password")
    # the only console error allowed: the browser logs the deliberate wrong password's 401
    assert all("401" in e for e in page.medai_console_errors), page.medai_console_errors
    page.medai_console_errors.clear()
    page.fill("#password", PASSWORD)
    page.keyboard.press("Enter")
    expect(page.locator("#whoami")).to_contain_text("Dr Jane Doe")
    assert page.evaluate("document.cookie").find("medai_session") == -1  # HttpOnly: never visible to scripts
    assert page.evaluate("JSON.stringify(localStorage) + JSON.stringify(sessionStorage)") == "{}{}"
    # 2. upload the phantom; 3. wait for the analysis
    page.set_input_files("#file-input", str(phantom))
    expect(page.locator("#upload-text")).to_contain_text("stored", timeout=60_000)
    status = page.locator("#worklist tbody tr").first.locator(".status")
    expect(status).to_have_text(re.compile("queued|running|review|done"))
    t0 = time.monotonic()
    expect(status).to_have_text(re.compile("^(review|done)$"), timeout=600_000)
    stats["analysis_s"] = round(time.monotonic() - t0, 1)
    _no_critical(page, "worklist")
    _shot(page, tmp_path, "02-worklist")
    # 4. the viewer: overlay colours on the heart
    page.locator("#worklist tbody tr").first.get_by_role("link", name="Open").click()
    # predicates as functions: the page's CSP (no 'unsafe-eval') refuses strings evaluated as code
    page.wait_for_function("() => window.medaiViewer && window.medaiViewer.loaded >= window.medaiViewer.T * "
                           "window.medaiViewer.Z", timeout=120_000)
    job = page.evaluate("window.medaiViewer.job")
    doc = page.request.get(f"{base}/v1/analyses/{job}/viewer").json()
    # the follow-up panel asked the serial timeline of this patient's pseudonym: one analysis so far
    expect(page.locator("#vw-followup")).to_contain_text("First analysis of this patient")
    layer = next(x for x in doc["layers"] if x["kind"] == "cine_function")
    colour = {lab["name"]: tuple(lab["color"]) for lab in layer["labels"]}
    page.click("#vw-ed")
    canvas = page.locator("#vw-canvas")
    png = canvas.screenshot(path=str(tmp_path / "03-viewer-canvas.png"))
    _shot(page, tmp_path, "03-viewer")
    lv_px = _colour_pixels(png, colour["lv"])
    assert len(lv_px) > 50, f"LV overlay colour {colour['lv']} not on the canvas"
    for name in ("myo", "rv"):
        assert len(_colour_pixels(png, colour[name])) > 50, f"{name} overlay colour {colour[name]} not on the canvas"
    h, w = canvas.bounding_box()["height"], canvas.bounding_box()["width"]
    cy, cx = lv_px.mean(axis=0)
    assert 0.2 * h < cy < 0.8 * h and 0.2 * w < cx < 0.8 * w, "the LV overlay is not over the heart (centre)"
    _no_critical(page, "viewer")
    # Cornerstone3D renders the image; its tools move the view and the overlay follows the image
    assert page.evaluate("window.medaiViewer.renderer").startswith("Cornerstone3D"), page.evaluate("window.medaiViewer")
    box = canvas.bounding_box()
    wl0 = page.evaluate("window.medaiViewer.window")
    page.mouse.move(box["x"] + 100, box["y"] + 100)
    page.mouse.down(button="right")  # window/level on the right button whatever tool is selected
    page.mouse.move(box["x"] + 160, box["y"] + 140, steps=5)
    page.mouse.up(button="right")
    wl1 = page.evaluate("window.medaiViewer.window")
    assert wl1["w"] != pytest.approx(wl0["w"]) and wl1["c"] != pytest.approx(wl0["c"]), (wl0, wl1)
    page.click('[data-tool="pan"]')
    page.mouse.move(box["x"] + 200, box["y"] + 200)
    page.mouse.down()
    page.mouse.move(box["x"] + 260, box["y"] + 230, steps=5)
    page.mouse.up()
    page.wait_for_timeout(200)
    moved = _colour_pixels(canvas.screenshot(), colour["lv"]).mean(axis=0)
    assert moved == pytest.approx(np.array([cy + 30, cx + 60]), abs=3), ("the overlay did not follow the pan", moved)
    zoom0 = page.evaluate("window.medaiViewer.zoom")
    page.mouse.move(box["x"] + 280, box["y"] + 280)
    page.mouse.wheel(0, -300)  # zoom on the wheel
    page.wait_for_function(f"() => window.medaiViewer.zoom > {zoom0} * 1.01")
    page.click("#vw-reset")
    page.wait_for_function("() => Math.abs(window.medaiViewer.zoom - 1) < 1e-6")
    after_reset = _colour_pixels(canvas.screenshot(), colour["lv"]).mean(axis=0)
    assert after_reset == pytest.approx(np.array([cy, cx]), abs=1.5), (cy, cx, after_reset)
    page.click('[data-tool="wl"]')
    # keyboard: slice navigation from the focused canvas
    canvas.focus()
    z0 = page.evaluate("window.medaiViewer.z")
    page.keyboard.press("ArrowUp")
    page.wait_for_function(f"() => window.medaiViewer.z !== {z0}")
    page.keyboard.press("ArrowDown")
    # 5. play the cine
    t_before = page.evaluate("window.medaiViewer.t")
    page.click("#vw-play")
    page.wait_for_timeout(1500)
    stats["cine_fps"] = page.evaluate("window.medaiViewer.fps")
    stats["cine_plane"] = [page.evaluate("window.medaiViewer.Y"), page.evaluate("window.medaiViewer.X")]
    assert page.evaluate("window.medaiViewer.playing")
    assert page.evaluate("window.medaiViewer.t") != t_before or stats["cine_fps"] > 1
    page.click("#vw-play")
    # 6. erase part of the LV on the ED frame of this slice
    page.click("#vw-ed")
    edv_before = float(page.locator('tr[data-name="lv_edv"] td[data-value]').get_attribute("data-value"))
    page.click('[data-tool="eraser"]')
    page.select_option("#vw-edit-label", label="lv")
    page.fill("#vw-radius", "6")
    page.locator("#vw-radius").dispatch_event("change")
    box = canvas.bounding_box()
    png = canvas.screenshot()
    lv_px = _colour_pixels(png, colour["lv"])
    cy, cx = lv_px.mean(axis=0)
    page.mouse.move(box["x"] + cx - 20, box["y"] + cy)
    page.mouse.down()
    for dx in range(-20, 21, 4):
        page.mouse.move(box["x"] + cx + dx, box["y"] + cy)
    page.mouse.up()
    expect(page.locator("#vw-edits")).to_contain_text("1 plane(s) edited")
    page.click("#vw-save")
    expect(page.locator("#vw-version")).to_have_value("2", timeout=120_000)
    edv_after = float(page.locator('tr[data-name="lv_edv"] td[data-value]').get_attribute("data-value"))
    assert edv_after < edv_before, (edv_before, edv_after)
    # ... and equals a fresh computation from the stored corrected label map by the library's measurement code
    from medai.measurements import function_measurements, patient_info
    from medai.reports.labelmaps import read_labelmap

    versions = page.request.get(f"{base}/v1/analyses/{job}/versions").json()
    v2 = versions[-1]
    assert v2["version"] == 2 and v2["parent"] == 1 and v2["created_by"] == "user:jdoe"
    labels = tmp_path / "labels_v2.npz"
    labels.write_bytes(page.request.get(base + v2["results"]["labels"]).body())
    report = page.request.get(base + v2["results"]["json"]).json()
    summary = report["sections"][0]["summary"]
    lm = read_labelmap(labels, "cine_function", "cine_sax")
    from medai.dicom.ingest import ingest

    study_dir = tmp_path / "study"
    zipfile.ZipFile(phantom).extractall(study_dir)
    study = ingest(study_dir).studies[0]
    from medai.dicom.classify import select_series
    from medai.domain.study import SeriesType

    fresh = function_measurements(lm, summary["ed_frame"], summary["es_frame"],
                                  patient_info(study, select_series(study, SeriesType.CINE_SAX)))
    fresh_edv = next(m.value for m in fresh if m.name == "lv_edv")
    assert edv_after == pytest.approx(fresh_edv, rel=1e-9)
    stats["lv_edv_ml"] = {"model": edv_before, "corrected": edv_after, "fresh": fresh_edv}
    _shot(page, tmp_path, "04-corrected")
    # 7. sign; the SR read back is VERIFIED
    page.click("#vw-sign")
    page.click("#vw-confirm")
    expect(page.locator("#vw-signed")).to_contain_text("Signed by Dr Jane Doe", timeout=60_000)
    signed = page.request.get(f"{base}/v1/analyses/{job}/versions").json()[-1]
    sr = pydicom.dcmread(io.BytesIO(page.request.get(base + signed["results"]["sr"]).body()))
    assert sr.VerificationFlag == "VERIFIED"
    assert "Jane Doe" in str(sr.VerifyingObserverSequence[0].VerifyingObserverName)
    expect(page.locator('[data-tool="eraser"]')).to_be_disabled()  # locked
    _shot(page, tmp_path, "05-signed")
    # 8. download the PDF
    with page.expect_download() as dl:
        page.click('a[data-download="pdf"]')
    pdf_path = tmp_path / "report.pdf"
    dl.value.save_as(str(pdf_path))
    from pypdf import PdfReader

    text = "".join(p.extract_text() for p in PdfReader(str(pdf_path)).pages)
    assert "Dr Jane Doe" in text and "version 2" in text
    # 9. a risk calculator: an out-of-range value gets a field error
    page.click('nav a[href="#/risk"]')
    page.get_by_role("link", name="stroke_ist_death_6m").click()
    page.locator("#f-AGE").wait_for()
    page.fill("#f-AGE", "300")
    page.click("#rk-form button[type=submit]")
    expect(page.locator("#f-AGE-err")).to_contain_text("at most 110")
    assert page.locator("#f-AGE").get_attribute("aria-invalid") == "true"
    _no_critical(page, "risk calculator")
    # a valid entry gives the risk, its group and the contributing factors
    page.fill("#f-AGE", "72")
    for field, value in (("SEX", "M"), ("RCONSC", "F"), ("STYPE", "PACS")):
        page.select_option(f"#f-{field}", value)
    page.fill("#f-RDELAY", "12")
    page.fill("#f-RSBP", "160")
    page.click("#rk-form button[type=submit]")
    expect(page.locator("#rk-result")).to_contain_text("Risk group")
    assert page.locator("#rk-result .bar-row").count() > 0
    _shot(page, tmp_path, "06-risk")
    assert not page.medai_console_errors, page.medai_console_errors
    assert not page.medai_external_requests, page.medai_external_requests
    (tmp_path / "stats.json").write_text(json.dumps(stats, indent=1))


def test_lge_scar_in_the_viewer(server: dict[str, Any], page: Any, tmp_path: Path) -> None:
    """An LGE study in the Cornerstone3D viewer: the scar layer of a 3-D (one phase) stack, its label-table colours
    over the image, a label toggled off and on, slice navigation, and a brush correction saved as version 2 (the
    LGE analysis measured again on the server)."""
    from playwright.sync_api import expect

    from medai.dicom.phantoms import make_lge_scar_study

    blobs = make_lge_scar_study(rows=128, cols=128, seed=4).to_bytes()
    upload = tmp_path / "lge_study.zip"
    with zipfile.ZipFile(upload, "w") as zf:
        for i, b in enumerate(blobs):
            zf.writestr(f"lge/IM{i:04d}.dcm", b)
    base = server["base"]
    page.goto(base + "/")
    page.fill("#username", "jdoe")
    page.fill("#password", PASSWORD)
    page.keyboard.press("Enter")
    expect(page.locator("#whoami")).to_contain_text("Dr Jane Doe")
    page.set_input_files("#file-input", str(upload))
    expect(page.locator("#upload-text")).to_contain_text("stored", timeout=60_000)
    row = page.locator("#worklist tbody tr", has_text="viability").first  # the phantom's study description
    expect(row.locator(".status")).to_have_text(re.compile("^(review|done)$"), timeout=300_000)
    row.get_by_role("link", name="Open").click()
    page.wait_for_function("() => window.medaiViewer && window.medaiViewer.loaded >= window.medaiViewer.T * "
                           "window.medaiViewer.Z", timeout=120_000)
    assert page.evaluate("window.medaiViewer.renderer").startswith("Cornerstone3D")
    job = page.evaluate("window.medaiViewer.job")
    doc = page.request.get(f"{base}/v1/analyses/{job}/viewer").json()
    index = next(i for i, x in enumerate(doc["layers"]) if x["kind"] == "lge_scar")
    layer = doc["layers"][index]
    page.select_option("#vw-layer", str(index))
    page.wait_for_function("() => window.medaiViewer && window.medaiViewer.layer.startsWith('lge_scar') && "
                           "window.medaiViewer.loaded >= window.medaiViewer.Z")
    assert page.evaluate("[window.medaiViewer.T, window.medaiViewer.Z]") == [1, layer["shape"][0]]
    colour = {lab["name"]: tuple(lab["color"]) for lab in layer["labels"]}
    canvas = page.locator("#vw-canvas")
    # the slice where the model's labels cover the most pixels, reached with the slice slider
    found = {}
    for z in range(layer["shape"][0]):
        page.locator("#vw-slice").fill(str(z))
        page.wait_for_function(f"() => window.medaiViewer.z === {z}")
        png = canvas.screenshot()
        counts = {name: len(_colour_pixels(png, c)) for name, c in colour.items()}
        name, n = max(counts.items(), key=lambda kv: kv[1])
        if n > found.get("n", 0):
            found = {"z": z, "name": name, "n": n}
    assert found.get("n", 0) > 20, f"no label colour of {colour} on any slice"
    page.locator("#vw-slice").fill(str(found["z"]))
    page.wait_for_function(f"() => window.medaiViewer.z === {found['z']}")
    toggle = page.locator(f'[data-label="{next(x["value"] for x in layer["labels"] if x["name"] == found["name"])}"]')
    toggle.uncheck()
    page.wait_for_timeout(200)
    assert len(_colour_pixels(canvas.screenshot(), colour[found["name"]])) < 0.1 * found["n"]
    toggle.check()
    page.wait_for_timeout(200)
    assert len(_colour_pixels(canvas.screenshot(), colour[found["name"]])) > 0.9 * found["n"]
    # a brush stroke of myocardium in the image centre, saved: version 2 holds it, measured again
    page.click('[data-tool="brush"]')
    page.select_option("#vw-edit-label", label="myo")
    box = canvas.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx - 30, cy)
    page.mouse.down()
    page.mouse.move(cx + 30, cy, steps=8)
    page.mouse.up()
    expect(page.locator("#vw-edits")).to_contain_text("1 plane(s) edited")
    assert len(_colour_pixels(canvas.screenshot(), colour["myo"])) > 30
    page.click("#vw-save")
    expect(page.locator("#vw-version")).to_have_value("2", timeout=120_000)
    v2 = page.request.get(f"{base}/v1/analyses/{job}/versions").json()[-1]
    assert v2["version"] == 2 and v2["parent"] == 1 and v2["created_by"] == "user:jdoe"
    from medai.reports.labelmaps import read_labelmap

    stored = tmp_path / "lge_v2.npz"
    stored.write_bytes(page.request.get(base + v2["results"]["labels"]).body())
    lm = read_labelmap(stored, "lge_scar", layer["role"])
    myo_value = next(x["value"] for x in layer["labels"] if x["name"] == "myo")
    assert (np.asarray(lm.volume.array)[found["z"]] == myo_value).sum() > 30
    _shot(page, tmp_path, "lge-viewer")
    assert not page.medai_console_errors, page.medai_console_errors
    assert not page.medai_external_requests, page.medai_external_requests
