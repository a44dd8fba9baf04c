"""RFC 7807 problem documents for every error the API answers with."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from medai.errors import MedaiError

logger = logging.getLogger(__name__)

PROBLEM_TYPE = "https://medai.example/problems/"
PROBLEM_MEDIA = "application/problem+json"


class Problem(BaseModel):
    """An RFC 7807 problem document."""

    type: str
    title: str
    status: int
    detail: str
    instance: str = ""
    errors: list[dict[str, Any]] | dict[str, Any] | None = None


class ApiProblem(Exception):
    """Raise inside a route to answer with a problem document."""

    def __init__(self, status: int, code: str, detail: str, errors: Any = None, headers: dict | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.errors, self.headers = status, code, detail, errors, headers


_TITLES = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found", 405: "Method not allowed",
           406: "Not acceptable", 409: "Conflict", 413: "Payload too large", 415: "Unsupported media type",
           422: "Unprocessable content", 500: "Internal server error", 503: "Service unavailable"}


def problem(status: int, code: str, detail: str, request: Request | None = None, errors: Any = None,
            headers: dict | None = None) -> JSONResponse:
    """A problem+json response."""
    body = Problem(type=PROBLEM_TYPE + code, title=_TITLES.get(status, "Error"), status=status, detail=detail,
                   instance=request.url.path if request is not None else "", errors=_finite(errors))
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, media_type=PROBLEM_MEDIA,
                        headers=headers)


def _finite(v: Any) -> Any:
    """``v`` with NaN and infinities as strings: a problem that echoes a bad value (``{"age": NaN}``) must still be
    valid JSON, not a 500."""
    import math

    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_finite(x) for x in v]
    return v


def _jsonable_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for e in errors:
        out.append({"field": ".".join(str(p) for p in e.get("loc", ())), "problem": str(e.get("msg", "")),
                    "type": str(e.get("type", ""))})
    return out


async def audit_failure(request: Request, status: int) -> None:
    """One audit row for a request that ended in an error and was not audited by its route: ``denied`` (401/403)
    or ``failed`` (other 4xx, 5xx), by the caller when known (else ``anonymous``), resource ``METHOD path``."""
    if status < 400 or getattr(request.state, "audited", False) or not request.url.path.startswith("/v1/"):
        return
    engine = getattr(request.app.state, "engine", None)
    if engine is None:
        return
    from serving import audit

    action = "denied" if status in (401, 403) else "failed"
    try:
        await audit.record_async(engine, getattr(request.state, "principal", None), request, action, "request",
                                 f"{request.method} {request.url.path}", status)
    except Exception:  # noqa: BLE001 -- the answer is an error already; a failed audit write is logged
        logger.exception("could not audit the failed request %s %s", request.method, request.url.path)


async def _auth_problem(request: Request) -> JSONResponse | None:
    """401/403 for a request the matched route would refuse anyway: its own authentication and role check
    (:func:`serving.deps.require`) runs before the body or parameters are judged (an anonymous caller learns
    nothing from validation messages)."""
    route = request.scope.get("route")
    check = next((d.call for d in getattr(getattr(route, "dependant", None), "dependencies", None) or []
                  if getattr(d.call, "roles", None)), None)
    if check is None:
        return None
    from fastapi.security import HTTPAuthorizationCredentials

    from serving.deps import current_principal

    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    cred = HTTPAuthorizationCredentials(scheme=scheme, credentials=token) if scheme.lower() == "bearer" else None
    try:
        await check(request, await current_principal(request, request.headers.get("x-api-key"), cred))
    except ApiProblem as exc:
        return problem(exc.status, exc.code, exc.detail, request, exc.errors, exc.headers)
    return None


def install(app: FastAPI) -> None:
    """Register the exception handlers that turn every error into problem+json (each audited once)."""

    @app.exception_handler(ApiProblem)
    async def _api(request: Request, exc: ApiProblem) -> JSONResponse:
        await audit_failure(request, exc.status)
        return problem(exc.status, exc.code, exc.detail, request, exc.errors, exc.headers)

    @app.exception_handler(MedaiError)
    async def _medai(request: Request, exc: MedaiError) -> JSONResponse:
        await audit_failure(request, exc.http_status)
        return problem(exc.http_status, exc.code, exc.message, request, exc.details)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        if (denied := await _auth_problem(request)) is not None:
            await audit_failure(request, denied.status_code)
            return denied
        resp = _invalid(request, exc)
        await audit_failure(request, resp.status_code)
        return resp

    def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        raw = list(exc.errors())
        errs = _jsonable_errors(raw)
        detail = "; ".join(f"{e['field']}: {e['problem']}" for e in errs[:5]) or "invalid request"
        if request.url.path.startswith("/v1/dicomweb/") and raw and all(
                (e.get("loc") or ("",))[0] in ("path", "query") for e in raw):
            # PS3.18: a malformed DICOMweb request (a frame list, a limit) is a 400 Bad Request
            return problem(400, "bad-request", f"the request is malformed: {detail}", request, errs)
        return problem(422, "request-validation-error", f"the request is invalid: {detail}", request, errs)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, f"http-{exc.status_code}")
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route {request.url.path}; see /openapi.json for the API"
        if exc.status_code == 405:  # every method of the path (Starlette names only the first route's)
            allowed = allowed_methods(request)
            headers["Allow"] = ", ".join(allowed)
            detail = f"{request.method} is not allowed on {request.url.path}; it allows {', '.join(allowed)}"
        await audit_failure(request, exc.status_code)
        return problem(exc.status_code, code, detail, request, headers=headers or None)

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        await audit_failure(request, 500)
        return problem(500, "internal-error", "internal error; the incident was logged", request)


def allowed_methods(request: Request) -> list[str]:
    """The methods the API documents for this request's path (HEAD with GET), from the OpenAPI paths: the most
    literal template wins, so ``/v1/analyses/kinds`` is its own resource, not ``/v1/analyses/{job_id}``."""
    import re

    path = request.url.path
    best: tuple[int, int] | None = None
    found: set[str] = set()
    for template, ops in request.app.openapi().get("paths", {}).items():
        if not re.fullmatch(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)), path):
            continue
        rank = (template.count("{"), -len(template))
        if best is None or rank < best:
            best, found = rank, {m.upper() for m in ops if m in ("get", "post", "put", "patch", "delete")}
    if "GET" in found:
        found.add("HEAD")
    return sorted(found)


def document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Every operation of the OpenAPI ``schema`` lists the problems any request can get, whatever the route
    declared: 400 (a parameter or body that cannot be parsed) where it takes any, 413 where it takes a body, 401
    and 403 where it needs a key or session."""
    ref = {"$ref": "#/components/schemas/Problem"}
    for ops in schema.get("paths", {}).values():
        for method, op in ops.items():
            if method not in ("get", "post", "put", "patch", "delete") or not isinstance(op, dict):
                continue
            wanted = []
            if op.get("parameters") or op.get("requestBody"):
                wanted.append(400)
            if op.get("requestBody"):
                wanted.append(413)
            if any(op.get("security") or []):
                wanted += [401, 403]
            for status in wanted:
                op.setdefault("responses", {}).setdefault(str(status), {
                    "description": _TITLES[status], "content": {PROBLEM_MEDIA: {"schema": ref}}})
    return schema


#: OpenAPI ``responses`` for the errors every authenticated route can answer.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    s: {"model": Problem, "description": _TITLES[s], "content": {PROBLEM_MEDIA: {}}} for s in (401, 403, 422)
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The common problem responses plus ``statuses``."""
    out = dict(PROBLEM_RESPONSES)
    for s in statuses:
        out[s] = {"model": Problem, "description": _TITLES.get(s, "Error"), "content": {PROBLEM_MEDIA: {}}}
    return out
