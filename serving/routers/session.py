"""Web-app sign-in: ``POST /v1/session`` (user name + password -> session cookie), ``GET`` (who am I),
``DELETE`` (sign out). Sign-ins and failures are audited; five failures in ten minutes lock the name briefly.
"""

from __future__ import annotations

import threading
import time

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from serving import audit, db
from serving.auth import Principal
from serving.deps import everyone, get_settings, optional_principal
from serving.problems import ApiProblem, responses
from serving.settings import ApiSettings
from serving.users import CSRF_COOKIE, SESSION_COOKIE, check_password, close_session, open_session

router = APIRouter(prefix="/v1/session", tags=["session"])

MAX_FAILURES, WINDOW_S = 5, 600.0
_failures: dict[str, list[float]] = {}
_lock = threading.Lock()


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


def _recent_failures(username: str) -> int:
    now = time.time()
    with _lock:
        kept = [t for t in _failures.get(username, []) if t > now - WINDOW_S]
        _failures[username] = kept
        return len(kept)


def _audit_failure(request: Request, username: str) -> None:
    client = request.client.host if request.client else ""
    with request.app.state.engine.begin() as conn:
        conn.execute(db.audit.insert().values(time=time.time(), user=f"user:{username}"[:64], role="",
                                              client=client, action="sign-in", resource_type="session",
                                              resource_id="", status=401))


@router.post("", response_model=SessionOut, summary="Sign in (web app)", responses=responses(401, 429))
async def sign_in(body: SignIn, request: Request, settings: ApiSettings = Depends(get_settings)) -> JSONResponse:
    """Check the password and open a session: an ``HttpOnly; Secure; SameSite=Strict`` session cookie plus a
    readable CSRF cookie."""
    username = body.username.strip().lower()
    if _recent_failures(username) >= MAX_FAILURES:
        raise ApiProblem(429, "too-many-attempts", "too many failed sign-ins for this user; wait ten minutes or "
                         "ask an admin to reset the password (`medai users passwd`)")
    engine = request.app.state.engine
    who = await run_in_threadpool(check_password, engine, username, body.password)
    if who is None:
        with _lock:
            _failures.setdefault(username, []).append(time.time())
        _audit_failure(request, username)
        raise ApiProblem(401, "bad-credentials", "unknown user name or wrong password")
    with _lock:
        _failures.pop(username, None)
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


@router.get("", response_model=SessionOut, summary="The signed-in user", responses=responses())
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
