"""Dependencies, declared once: settings, engine, stores, model registry, job runner, the caller and role checks.

The cheap ones are ``async def``: FastAPI runs a plain ``def`` dependency in its thread pool, one hop per call.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from fastapi import Depends, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine

from serving.auth import Principal, Role, authenticate
from serving.jobs import JobRunner
from serving.models import ModelRegistry
from serving.problems import ApiProblem
from serving.settings import ApiSettings
from serving.storage import StudyStore
from serving.users import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE, session_of

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key from `medai keys create`.")
bearer = HTTPBearer(auto_error=False, description="The same API key sent as an OAuth2-style bearer token.")


async def get_settings(request: Request) -> ApiSettings:
    """The app's settings."""
    return request.app.state.settings


async def get_engine(request: Request) -> Engine:
    """The database engine."""
    return request.app.state.engine


async def get_store(request: Request) -> StudyStore:
    """The study store."""
    return request.app.state.store


async def get_models(request: Request) -> ModelRegistry:
    """The served models."""
    return request.app.state.models


async def get_jobs(request: Request) -> JobRunner:
    """The job runner."""
    return request.app.state.jobs


async def current_principal(
    request: Request,
    key: str | None = Security(api_key_header),
    cred: HTTPAuthorizationCredentials | None = Security(bearer),
) -> Principal:
    """The authenticated caller (401 problem when the key is missing, unknown or revoked).

    Async, so a cached key (:class:`~serving.auth.KeyCache`) costs no thread hop; database reads run in the pool.
    """
    token = key or (cred.credentials if cred is not None else None)
    if not token and request.cookies.get(SESSION_COOKIE):
        return await run_in_threadpool(session_principal, request)
    if not token:
        raise ApiProblem(401, "unauthenticated", "send an API key in X-API-Key or Authorization: Bearer, "
                         "or sign in at /ui/", headers={"WWW-Authenticate": "Bearer"})
    cache = getattr(request.app.state, "key_cache", None)
    who = cache.get(token) if cache is not None else None
    if who is not None:
        return who
    who = await run_in_threadpool(authenticate, request.app.state.engine, token)
    if who is not None and cache is not None:
        cache.put(token, who)
    if who is None:
        raise ApiProblem(401, "invalid-key", "the API key is unknown or revoked; ask an admin for a new one",
                         headers={"WWW-Authenticate": "Bearer"})
    return who


async def optional_principal(
    request: Request,
    key: str | None = Security(api_key_header),
    cred: HTTPAuthorizationCredentials | None = Security(bearer),
) -> Principal | None:
    """The caller, or None when the request carries no valid credentials (for "am I signed in?" probes)."""
    try:
        return await current_principal(request, key, cred)
    except ApiProblem:
        return None


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def session_principal(request: Request) -> Principal:
    """The signed-in user of the session cookie; state-changing requests must echo the session's CSRF token."""
    settings: ApiSettings = request.app.state.settings
    sess = session_of(request.app.state.engine, request.cookies.get(SESSION_COOKIE, ""),
                      settings.session_idle_minutes * 60)
    if sess is None:
        raise ApiProblem(401, "session-expired", "the session ended or is unknown; sign in again at /ui/")
    if request.method not in SAFE_METHODS and not hmac.compare_digest(
            request.headers.get(CSRF_HEADER, ""), sess.csrf):
        raise ApiProblem(403, "csrf-token-missing", f"a signed-in request that changes state must send the "
                         f"session's {CSRF_HEADER} header (the {CSRF_COOKIE} cookie's value)")
    request.state.session = sess
    return sess.principal


def require(*roles: Role) -> Callable[..., Principal]:
    """Dependency: the caller, who must hold one of ``roles`` (403 problem otherwise)."""
    allowed = frozenset(roles)

    async def _check(request: Request, who: Principal = Depends(current_principal)) -> Principal:
        request.state.principal = who  # who a refused or failed request is audited as
        if who.role not in allowed:
            raise ApiProblem(403, "forbidden", f"role {who.role.value} may not do this; allowed: "
                             + ", ".join(sorted(r.value for r in allowed)))
        return who

    _check.roles = allowed  # type: ignore[attr-defined]
    return _check


CLINICAL = (Role.CLINICIAN, Role.HOSPITAL_SYSTEM, Role.ADMIN)
EVERYONE = tuple(Role)
MODEL_ADMIN = (Role.DATA_SCIENTIST, Role.ADMIN)
ADMIN = (Role.ADMIN,)

clinical = require(*CLINICAL)
everyone = require(*EVERYONE)
model_admin = require(*MODEL_ADMIN)
admin_only = require(*ADMIN)
