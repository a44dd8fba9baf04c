"""Web-app sign-in: ``POST /v1/session`` (user name + password -> session cookie), ``GET`` (who am I),
``DELETE`` (sign out). Sign-ins and failures are audited; five failures in ten minutes lock the name briefly
(counted from the audit log, so across every server process and host).
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import and_, func, select

from serving import audit, db
from serving.auth import Principal
from serving.deps import everyone, get_settings, optional_principal
from serving.problems import ApiProblem, responses
from serving.settings import ApiSettings
from serving.users import CSRF_COOKIE, SESSION_COOKIE, check_password, close_session, open_session

router = APIRouter(prefix="/v1/session", tags=["session"])

MAX_FAILURES, WINDOW_S = 5, 600.0


class SignIn(BaseModel):
    """User name and password of a web-app user (``medai users create``)."""

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class SessionOut(BaseModel):
    """The signed-in user and the session's CSRF token (send it as ``X-CSRF-Token`` on changes)."""

    signed_in: bool = True
    user: str = ""
    name: str = ""
    role: str = ""
    csrf: str = ""
    expires: float = 0.0
    sees_identities: bool = Field(False, description="false: patient names and IDs are shown as pseudonyms only")


def _recent_failures(engine: Any, username: str) -> int:
    """Failed sign-ins of ``username`` in the last ``WINDOW_S`` seconds since its last success, read from the audit
    log: every server process and host shares the count (a per-process counter let N workers allow N times as
    many guesses)."""
    user = f"user:{username}"[:64]
    since = time.time() - WINDOW_S
    a = db.audit.c
    mine = and_(a.user == user, a.action == "sign-in", a.resource_type == "session", a.time > since)
    with engine.connect() as conn:
        last_ok = conn.execute(select(func.max(a.time)).where(mine, a.status == 200)).scalar()
        return int(conn.execute(select(func.count()).select_from(db.audit).where(
            mine, a.status == 401, a.time > (last_ok or since))).scalar() or 0)


def _audit_failure(request: Request, username: str, status: int = 401) -> None:
    client = request.client.host if request.client else ""
    request.state.audited = True
    with request.app.state.engine.begin() as conn:
        conn.execute(db.audit.insert().values(time=time.time(), user=f"user:{username}"[:64], role="",
                                              client=client, action="sign-in", resource_type="session",
                                              resource_id="", status=status))


@router.post("", response_model=SessionOut, summary="Sign in (web app)", responses=responses(401, 429))
async def sign_in(body: SignIn, request: Request, settings: ApiSettings = Depends(get_settings)) -> JSONResponse:
    """Check the password and open a session: an ``HttpOnly; Secure; SameSite=Strict`` session cookie plus a
    readable CSRF cookie."""
    username = body.username.strip().lower()
    engine = request.app.state.engine
    if await run_in_threadpool(_recent_failures, engine, username) >= MAX_FAILURES:
        await run_in_threadpool(_audit_failure, request, username, 429)
        raise ApiProblem(429, "too-many-attempts", "too many failed sign-ins for this user; wait ten minutes or "
                         "ask an admin to reset the password (`medai users passwd`)")
    who = await run_in_threadpool(check_password, engine, username, body.password)
    if who is None:
        await run_in_threadpool(_audit_failure, request, username)
        raise ApiProblem(401, "bad-credentials", "unknown user name or wrong password")
    ttl = settings.session_hours * 3600
    sess = open_session(engine, who, ttl)
    audit.record(engine, who, request, "sign-in", "session", "")
    out = SessionOut(user=who.user, name=who.name, role=who.role.value, csrf=sess.csrf, expires=sess.expires,
                     sees_identities=sees_identities(who))
    resp = JSONResponse(out.model_dump())
    resp.set_cookie(SESSION_COOKIE, sess.token, max_age=int(ttl), path="/", secure=settings.cookie_secure,
                    httponly=True, samesite="strict")
    resp.set_cookie(CSRF_COOKIE, sess.csrf, max_age=int(ttl), path="/", secure=settings.cookie_secure,
                    httponly=False, samesite="strict")
    return resp


@router.get("", response_model=SessionOut, summary="The signed-in user", responses=responses(),
            openapi_extra={"security": [{}, {"APIKeyHeader": []}, {"HTTPBearer": []}]})  # optional: public
def whoami(request: Request, who: Principal | None = Depends(optional_principal)) -> SessionOut:
    """Who the session (or API key) belongs to; ``signed_in: false`` without one (the page asks on load)."""
    if who is None:
        return SessionOut(signed_in=False)
    sess = getattr(request.state, "session", None)
    return SessionOut(user=who.user, name=who.name, role=who.role.value, csrf=sess.csrf if sess else "",
                      expires=sess.expires if sess else 0.0, sees_identities=sees_identities(who))


@router.delete("", status_code=204, summary="Sign out", responses=responses(401))
def sign_out(request: Request, who: Principal = Depends(everyone),
             settings: ApiSettings = Depends(get_settings)) -> Response:
    """End the session and clear its cookies."""
    close_session(request.app.state.engine, request.cookies.get(SESSION_COOKIE, ""))
    audit.record(request.app.state.engine, who, request, "sign-out", "session", "")
    resp = Response(status_code=204)
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        resp.delete_cookie(name, path="/", secure=settings.cookie_secure, samesite="strict")
    return resp


def sees_identities(who: Principal) -> bool:
    """Whether the role may see patient names and IDs (data scientists see pseudonyms only)."""
    from serving.auth import Role

    return who.role != Role.DATA_SCIENTIST
