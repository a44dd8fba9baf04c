"""Admin: API keys and the audit export."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from serving import audit
from serving.auth import Principal, Role, create_key, list_keys, revoke_key
from serving.deps import admin_only, get_engine
from serving.problems import ApiProblem, responses

router = APIRouter(prefix="/v1", tags=["admin"])


class KeyRequest(BaseModel):
    """A new key's role and name."""

    role: Role
    name: str = Field("", max_length=200)


class KeyOut(BaseModel):
    """A key's id, name, role and times (never the key)."""

    id: str
    name: str
    role: str
    created: float
    revoked: float | None = None


class NewKey(KeyOut):
    """A just-created key: ``key`` is shown this once."""

    key: str


class AuditRow(BaseModel):
    """One audit row."""

    id: int
    time: float
    user: str
    role: str
    client: str
    action: str
    resource_type: str
    resource_id: str
    status: int


@router.post("/keys", status_code=201, response_model=NewKey, summary="Create an API key", responses=responses())
def new_key(body: KeyRequest, request: Request, who: Principal = Depends(admin_only),
            engine: Any = Depends(get_engine)) -> NewKey:
    key_id, key = create_key(engine, body.role, body.name)
    audit.record(engine, who, request, "create", "key", key_id, 201)
    row = next(k for k in list_keys(engine) if k["id"] == key_id)
    return NewKey(**row, key=key)


@router.get("/keys", response_model=list[KeyOut], summary="List API keys", responses=responses())
def keys(who: Principal = Depends(admin_only), engine: Any = Depends(get_engine)) -> list[KeyOut]:
    return [KeyOut(**k) for k in list_keys(engine)]


@router.delete("/keys/{key_id}", status_code=204, summary="Revoke an API key", responses=responses(404, 409))
def revoke(key_id: str, request: Request, who: Principal = Depends(admin_only),
           engine: Any = Depends(get_engine)) -> None:
    """Revoke a key; the last way in for an admin (the only active admin key, no active admin user) is refused."""
    from serving.users import list_users

    active = [k for k in list_keys(engine) if k["revoked"] is None]
    target = next((k for k in active if k["id"] == key_id), None)
    admin_keys = [k for k in active if k["role"] == Role.ADMIN.value]
    admin_users = [u for u in list_users(engine) if u["role"] == Role.ADMIN.value and u["disabled"] is None]
    if target is not None and target["role"] == Role.ADMIN.value and len(admin_keys) == 1 and not admin_users:
        audit.record(engine, who, request, "revoke", "key", key_id, 409)
        raise ApiProblem(409, "last-admin-key", "this is the only active admin key and no admin user exists: "
                         "revoking it would lock every admin out; create another admin key first")
    if not revoke_key(engine, key_id):
        raise ApiProblem(404, "key-not-found", f"no active key {key_id}")
    cache = getattr(request.app.state, "key_cache", None)
    if cache is not None:  # this process stops accepting it at once (others within key_cache_seconds)
        cache.clear()
    audit.record(engine, who, request, "revoke", "key", key_id, 204)


@router.get("/audit", response_model=list[AuditRow], summary="Export the audit log",
            responses={**responses(), 200: {"content": {"application/json": {}, "text/csv": {}}}})
def export_audit(request: Request, fmt: str = Query("json", alias="format", pattern="^(json|csv)$"),
                 since: float | None = Query(None, ge=0, le=1e11, description="epoch seconds"),
                 limit: int = Query(10000, ge=1, le=1_000_000),
                 who: Principal = Depends(admin_only), engine: Any = Depends(get_engine)) -> Any:
    """Audit rows oldest first, as JSON or CSV."""
    items = audit.rows(engine, since, limit)
    audit.record(engine, who, request, "export", "audit", fmt)
    if fmt == "csv":
        return PlainTextResponse(audit.to_csv(items), media_type="text/csv")
    return [AuditRow(**r) for r in items]
