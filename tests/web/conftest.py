"""Real-browser fixtures: Playwright driving Debian's Chromium (``/usr/bin/chromium``; browsers cannot be downloaded).

``page`` records console errors (``page.medai_console_errors``) and requests to any host other than
127.0.0.1/localhost (``page.medai_external_requests``), and leaves ``final.png`` in the test's ``tmp_path``.
Accessibility: ``tests.web.helpers.axe_critical(page)``. Everything skips with a reason when Chromium or
Playwright is missing (``.ci/services.sh`` installs the ``chromium`` package).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root: Chromium refuses its sandbox there
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """The system Chromium; skips when it or the ``playwright`` package is absent."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"playwright is not importable ({exc}); install the 'test' extra")
    path = "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else shutil.which("chromium")
    if not path:
        pytest.skip("Chromium not found (/usr/bin/chromium or 'chromium' on PATH): apt-get install chromium "
                    "(.ci/services.sh does)")
    return path


@pytest.fixture(scope="session")
def browser(chromium_path: str) -> Iterator[Any]:
    """One headless Chromium for the session."""
    from playwright.sync_api import sync_playwright

    p = sync_playwright().start()
    try:
        b = p.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()
    finally:
        p.stop()


def _is_external(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about", "javascript"):
        return False
    return (parts.hostname or "") not in LOCAL_HOSTS


@pytest.fixture
def page(browser: Any, tmp_path: Path) -> Iterator[Any]:
    """A fresh context (1400x900, downloads accepted) and page; screenshot ``final.png`` into ``tmp_path`` after.

    Requests to hosts other than loopback are recorded in ``page.medai_external_requests`` and aborted.
    """
    context = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    # recorded below, then refused here: a test never waits on a DNS lookup or leaves the machine
    context.route(lambda url: _is_external(url), lambda route: route.abort("blockedbyclient"))
    pg = context.new_page()
    pg.medai_console_errors = []
    pg.medai_external_requests = []

    def on_console(msg: Any) -> None:
        if msg.type == "error":
            pg.medai_console_errors.append(f"console: {msg.text} ({msg.location.get('url', '')})")

    def on_request(req: Any) -> None:
        if _is_external(req.url):
            pg.medai_external_requests.append(req.url)

    pg.on("console", on_console)
    pg.on("pageerror", lambda err: pg.medai_console_errors.append(f"pageerror: {err}"))
    pg.on("request", on_request)
    try:
        yield pg
    finally:
        try:
            pg.screenshot(path=str(tmp_path / "final.png"), full_page=True)
        except Exception:  # noqa: BLE001 - a crashed or closed page must not hide the test's own failure
            pass
        context.close()
