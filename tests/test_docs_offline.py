"""Offline API docs: /docs is Swagger UI from local files (no CDN: hospital networks are closed); no ReDoc."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from tests.serving.conftest import make_settings

URL_ATTR = re.compile(r"""\b(?:src|href)\s*=\s*["']([^"']*)["']""", re.IGNORECASE)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(make_settings(tmp_path, job_workers=0))
    with TestClient(app) as c:
        yield c


def _local_urls(html: str) -> list[str]:
    urls = URL_ATTR.findall(html)
    for url in urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, f"/docs references another origin: {url}"
        assert "cdn." not in url.lower(), url
    return urls


def test_docs_page_uses_only_local_assets(client: TestClient) -> None:
    r = client.get("/docs")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    html = r.text
    assert "SwaggerUIBundle" in html
    assert "http://" not in html and "https://" not in html, "the docs page names an outside URL"
    assert "cdn." not in html.lower()
    urls = _local_urls(html)
    js = [u for u in urls if u.endswith(".js")]
    css = [u for u in urls if u.endswith(".css")]
    assert js == ["/docs-assets/swagger-ui-bundle.js"] and css == ["/docs-assets/swagger-ui.css"], urls
    for url in urls:
        asset = client.get(url)
        assert asset.status_code == 200, url
        if url in js + css:
            assert len(asset.content) > 10_000, f"{url}: {len(asset.content)} bytes"
    assert client.get(js[0]).headers["content-type"].split(";")[0] in ("application/javascript", "text/javascript")
    assert client.get(css[0]).headers["content-type"].startswith("text/css")
    # the page loads the schema it documents, from this app
    assert "url: '/openapi.json'" in html
    assert client.get("/openapi.json").status_code == 200


def test_oauth2_redirect_is_local(client: TestClient) -> None:
    r = client.get("/docs/oauth2-redirect")
    assert r.status_code == 200
    _local_urls(r.text)


def test_no_redoc_and_docs_not_in_schema(client: TestClient) -> None:
    assert client.get("/redoc").status_code == 404
    paths = client.get("/openapi.json").json()["paths"]
    assert not any(p.startswith(("/docs", "/redoc")) for p in paths), sorted(paths)
