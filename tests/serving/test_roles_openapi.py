"""Role matrix over EVERY route (a new route without an entry fails), and the OpenAPI document's completeness."""

from __future__ import annotations

import re

import pytest
from fastapi.routing import APIRoute
from starlette.routing import Route

from serving.auth import Role
from tests.serving.conftest import Api

C, D, H, A = Role.CLINICIAN, Role.DATA_SCIENTIST, Role.HOSPITAL_SYSTEM, Role.ADMIN
CLINICAL = {C, H, A}
EVERYONE = {C, D, H, A}
#: routes anyone may call (no key): liveness/readiness and the API description itself
#: and the web app's entry and sign-in (POST answers 401 for bad credentials, GET says whether one is signed in;
#: DELETE, signing out, needs a session: tests/serving/test_webapp_api.py)
PUBLIC = {"/health", "/ready", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/", "/v1/session"}

MATRIX: dict[tuple[str, str], set[Role]] = {
    ("POST", "/v1/studies"): CLINICAL,
    ("GET", "/v1/studies"): CLINICAL,
    ("GET", "/v1/studies/{study_uid}"): CLINICAL,
    ("POST", "/v1/dicomweb/studies"): CLINICAL,
    ("GET", "/v1/dicomweb/studies"): CLINICAL,
    ("GET", "/v1/dicomweb/studies/{study_uid}/series"): CLINICAL,
    ("GET", "/v1/dicomweb/studies/{study_uid}/series/{series_uid}/instances"): CLINICAL,
    ("GET", "/v1/dicomweb/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}"): CLINICAL,
    ("POST", "/v1/analyses"): CLINICAL,
    ("GET", "/v1/analyses/kinds"): CLINICAL,
    ("GET", "/v1/analyses/{job_id}"): CLINICAL,
    ("DELETE", "/v1/analyses/{job_id}"): CLINICAL,
    ("GET", "/v1/analyses/{job_id}/results/{kind}"): CLINICAL,
    ("GET", "/v1/patients/{patient_id}/timeline"): CLINICAL,
    ("POST", "/v1/pacs/pull"): CLINICAL,
    ("POST", "/v1/pacs/push/{job_id}"): CLINICAL,
    ("GET", "/v1/models"): EVERYONE,
    ("GET", "/v1/models/{name}"): EVERYONE,
    ("POST", "/v1/models/{name}/predict"): EVERYONE,
    ("GET", "/v1/models/{name}/overlays/{oid}"): EVERYONE,  # only the caller who made it: test_image_predict.py
    ("POST", "/v1/models/{name}/reload"): {D, A},
    ("POST", "/v1/risk/{name}"): EVERYONE,
    ("POST", "/v1/keys"): {A},
    ("GET", "/v1/keys"): {A},
    ("DELETE", "/v1/keys/{key_id}"): {A},
    ("GET", "/v1/audit"): {A},
    ("GET", "/v1/worklist"): EVERYONE,
    ("GET", "/v1/dicomweb/series"): CLINICAL,
    ("POST", "/v1/dicomweb/studies/{study_uid}"): CLINICAL,
    ("GET", "/v1/dicomweb/instances"): CLINICAL,
    ("GET", "/v1/dicomweb/studies/{study_uid}/instances"): CLINICAL,  # data scientists see pseudonyms only
    ("GET", "/v1/dicomweb/studies/{study_uid}/series/{series_uid}/metadata"): CLINICAL,
    ("GET", "/v1/dicomweb/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}/metadata"): CLINICAL,
    ("GET", "/v1/dicomweb/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}/frames/{frames}"): CLINICAL,
    ("GET", "/v1/dicomweb/studies/{study_uid}"): CLINICAL,
    ("GET", "/v1/dicomweb/studies/{study_uid}/series/{series_uid}"): CLINICAL,
    ("GET", "/v1/dicomweb/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}/rendered"): CLINICAL,
    ("GET", "/v1/dicomweb/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}/frames/{frame}/rendered"):
        CLINICAL,
    ("GET", "/v1/analyses/{job_id}/versions"): CLINICAL,
    ("GET", "/v1/analyses/{job_id}/versions/{version}/results/{kind}"): CLINICAL,
    ("GET", "/v1/analyses/{job_id}/viewer"): CLINICAL,
    ("GET", "/v1/analyses/{job_id}/versions/{version}/labels/{kind}/{role}"): CLINICAL,
    ("POST", "/v1/analyses/{job_id}/versions"): CLINICAL,
    ("POST", "/v1/analyses/{job_id}/versions/{version}/sign"): {C},  # a clinician signs
    ("POST", "/v1/analyses/{job_id}/versions/{version}/send"): CLINICAL,
}


def all_routes(app, routes=None, prefix: str = "") -> list[tuple[str, str]]:  # noqa: ANN001
    """(method, path) of every route, descending into included routers (FastAPI >= 0.16x wraps them)."""
    out = []
    for r in app.routes if routes is None else routes:
        if hasattr(r, "original_router"):
            sub = prefix + (getattr(r.include_context, "prefix", "") or "")
            out += all_routes(app, r.original_router.routes, sub)
        elif isinstance(r, APIRoute | Route):
            for m in sorted(r.methods or ()):
                if m not in ("HEAD", "OPTIONS"):
                    out.append((m, prefix + r.path))
    return out


def test_every_route_is_in_the_matrix_or_public(api: Api) -> None:
    routes = all_routes(api.app)
    missing = [r for r in routes if r not in MATRIX and r[1] not in PUBLIC]
    assert not missing, f"routes without a role-matrix entry: {missing}"
    assert set(MATRIX) <= set(routes), f"matrix entries without a route: {set(MATRIX) - set(routes)}"


def test_role_matrix(api: Api) -> None:
    for (method, path), allowed in MATRIX.items():
        url = re.sub(r"\{[^}]+\}", "stroke_ist_death_6m", path)
        r = api.client.request(method, url)
        assert r.status_code == 401, (method, path, r.status_code)
        for role in Role:
            r = api.client.request(method, url, headers=api.h(role), json={})
            if role in allowed:
                assert r.status_code not in (401, 403), (method, path, role, r.status_code, r.text)
            else:
                assert r.status_code == 403, (method, path, role, r.status_code)
                assert r.json()["type"].endswith("forbidden")
    for path in ("/health", "/ready"):
        assert api.client.get(path).status_code == 200


def test_openapi_documents_every_route_error_and_auth(api: Api) -> None:
    doc = api.client.get("/openapi.json").json()
    schemes = doc["components"]["securitySchemes"]
    assert {"APIKeyHeader", "HTTPBearer"} <= set(schemes)
    for method, path in MATRIX:
        op = doc["paths"][path][method.lower()]
        assert op.get("summary"), (method, path)
        assert {"APIKeyHeader", "HTTPBearer"} <= {k for s in op["security"] for k in s}, (method, path)
        for status in ("401", "403", "422"):
            resp = op["responses"][status]
            assert "application/problem+json" in resp["content"], (method, path, status)
    assert "Problem" in doc["components"]["schemas"]


@pytest.mark.parametrize("role", list(Role))
def test_keys_are_stored_hashed(api: Api, role: Role) -> None:
    from sqlalchemy import select

    from serving import db

    with api.app.state.engine.connect() as conn:
        hashes = [r[0] for r in conn.execute(select(db.api_keys.c.key_hash))]
    assert api.keys[role] not in hashes and all(len(h) == 64 for h in hashes)
