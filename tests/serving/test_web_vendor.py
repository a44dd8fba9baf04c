"""The vendored Cornerstone3D bundle the viewer loads: built from the pinned lockfile, licences beside it, shipped in
the wheel, and served under the web app's CSP. The browser tests (tests/web) check it renders and fetches nothing
from outside."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "serving" / "web"
BUNDLE = WEB / "vendor" / "cornerstone.js"


def _locked(name: str) -> str:
    lock = json.loads((WEB / "build" / "package-lock.json").read_text())
    return lock["packages"][f"node_modules/{name}"]["version"]


def test_the_bundle_is_the_locked_cornerstone_and_carries_its_licences() -> None:
    head = BUNDLE.read_text(encoding="utf-8")[:200]
    banner = re.match(r"/\* Cornerstone3D (\S+) for medai", head)
    assert banner, head
    core, tools = _locked("@cornerstonejs/core"), _locked("@cornerstonejs/tools")
    assert banner.group(1) == core == tools
    pins = json.loads((WEB / "build" / "package.json").read_text())["dependencies"]
    assert pins == {"@cornerstonejs/core": core, "@cornerstonejs/tools": tools}
    licences = (WEB / "vendor" / "cornerstone.licenses.txt").read_text(encoding="utf-8")
    listed = dict(re.findall(r"^(\S+@[\d.]+): (.+)$", licences, flags=re.M))
    assert listed[f"@cornerstonejs/core@{core}"] == "MIT"
    assert listed[f"@cornerstonejs/tools@{tools}"] == "MIT"
    assert any(k.startswith("@kitware/vtk.js@") for k in listed)
    assert licences.count("=" * 78) >= 2 * len(listed)  # every package's own licence text follows the list


def test_the_viewer_imports_the_bundle_and_the_wheel_ships_it() -> None:
    viewer = (WEB / "viewer.js").read_text(encoding="utf-8")
    assert 'import("./vendor/cornerstone.js")' in viewer
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["serving"]
    assert "web/vendor/*" in data


def test_the_bundle_is_served_as_a_script_under_the_csp() -> None:
    from fastapi import FastAPI

    from serving.routers import ui

    app = FastAPI()
    ui.install(app)
    r = TestClient(app).get("/ui/vendor/cornerstone.js")
    assert r.status_code == 200
    assert r.headers["content-type"].split(";")[0] in ("text/javascript", "application/javascript")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert len(r.content) == BUNDLE.stat().st_size
