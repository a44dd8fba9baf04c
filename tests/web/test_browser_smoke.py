"""The browser plumbing itself: system Chromium via Playwright, axe-core, console and network recording."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.web.helpers import axe_critical, describe

PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>medai smoke</title><link rel="icon" href="data:,"></head>
<body>
<main>
  <h1>Sign in</h1>
  <form>
    <input type="password" aria-label="Password" autocomplete="current-password">
    <button type="submit">Sign in</button>
  </form>
</main>
</body>
</html>
"""


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


@pytest.fixture
def static_site(tmp_path: Path) -> Iterator[str]:
    """A loopback http.server on a free port serving one page; its base URL."""
    root = tmp_path / "site"
    root.mkdir()
    (root / "index.html").write_text(PAGE, encoding="utf-8")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, name="static-site", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_static_page_is_accessible_and_quiet(page: Any, static_site: str) -> None:
    resp = page.goto(f"{static_site}/index.html")
    assert resp is not None and resp.status == 200
    pw = page.locator('input[type="password"]')
    assert pw.count() == 1
    assert pw.get_attribute("aria-label") == "Password"
    page.get_by_label("Password").fill("not-a-secret")
    critical = axe_critical(page)
    assert critical == [], describe(critical)
    assert page.medai_console_errors == []
    assert page.medai_external_requests == []


def test_recorders_and_axe_see_problems(page: Any) -> None:
    """The checks above are not vacuous: an unlabelled field, a script error and an outside image are all caught."""
    page.set_content('<!doctype html><html lang="en"><head><title>bad</title></head><body><main>'
                     '<input type="password"><img alt="" src="http://cdn.example.invalid/x.png">'
                     '<script>undefined_function()</script></main></body></html>')
    ids = {v["id"] for v in axe_critical(page)}
    assert "label" in ids, ids
    assert any("undefined_function" in e for e in page.medai_console_errors), page.medai_console_errors
    assert page.medai_external_requests == ["http://cdn.example.invalid/x.png"]


@pytest.fixture
def api_server(tmp_path: Path) -> Iterator[str]:
    """The real app under uvicorn on a free loopback port (no job workers); its base URL."""
    import socket

    import uvicorn

    from serving.app import create_app
    from tests.serving.conftest import make_settings

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(make_settings(tmp_path, job_workers=0))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="api-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def test_swagger_ui_renders_the_openapi_document_offline(page: Any, api_server: str) -> None:
    """/docs renders every operation of the app's OpenAPI 3.1 document from local files (Swagger UI 4 could not)."""
    page.goto(f"{api_server}/docs")
    page.locator(".opblock").first.wait_for(timeout=15_000)
    assert page.locator(".opblock-summary-path", has_text="/health").count() >= 1
    assert "Unable to render this definition" not in page.content()
    assert page.medai_console_errors == []
    assert page.medai_external_requests == []
