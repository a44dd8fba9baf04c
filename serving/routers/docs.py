"""Offline API docs: Swagger UI served from local files, no CDN (hospital networks have no internet).

``install(app)`` mounts the Swagger UI dist files at ``/docs-assets`` and adds ``GET /docs`` and its OAuth2
redirect page, none of them in the schema; build the app with ``docs_url=None, redoc_url=None``. ReDoc is not
served.

The files are the ones the ``fastapi-offline`` package ships (Swagger UI 5.x; only its static folder is used, not
its app factory). ``swagger-ui-bundle`` 1.1.0, the newest on PyPI, has Swagger UI 4.15.5, which refuses FastAPI's
OpenAPI 3.1 document ("Unable to render this definition"). The online validator badge is switched off: it would
load an image from validator.swagger.io.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs-assets"
BUNDLE_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"
PARAMETERS = {"validatorUrl": None}  # no badge from validator.swagger.io


def _favicon() -> str | None:
    for name in ("favicon-32x32.png", "favicon.png", "favicon-16x16.png"):
        if (BUNDLE_DIR / name).is_file():
            return name
    return None


def install(app: FastAPI, *, docs_url: str = "/docs") -> None:
    """Serve Swagger UI at ``docs_url`` from local files under ``/docs-assets``: the page makes no outside request."""
    if not (BUNDLE_DIR / "swagger-ui-bundle.js").is_file():
        raise RuntimeError(f"Swagger UI files not found in {BUNDLE_DIR}; reinstall fastapi-offline")
    app.mount(ASSETS, StaticFiles(directory=BUNDLE_DIR), name="docs-assets")
    oauth2_url = f"{docs_url}/oauth2-redirect"
    favicon = _favicon()

    @app.get(docs_url, include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")  # behind a proxy that mounts the API under a prefix
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url or '/openapi.json'}", title=f"{app.title} - docs",
            oauth2_redirect_url=f"{root}{oauth2_url}",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js", swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/{favicon}" if favicon else "data:,",
            swagger_ui_parameters=PARAMETERS,
        )

    @app.get(oauth2_url, include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
