"""The append-only audit log: who read or wrote which study, report or risk, when and from where.

Rows hold the key id and role, never patient data; the database refuses UPDATE and DELETE on the table.
"""

from __future__ import annotations

import csv
import io
import time
from typing import Any

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.engine import Engine

from serving import db
from serving.auth import Principal


def record(engine: Engine, who: Principal, request: Request, action: str, resource_type: str, resource_id: str = "",
           status: int = 200) -> None:
    """Append one audit row."""
    client = request.client.host if request.client else ""
    with engine.begin() as conn:
        conn.execute(db.audit.insert().values(time=time.time(), user=who.user, role=who.role.value, client=client,
                                              action=action, resource_type=resource_type,
                                              resource_id=str(resource_id)[:128], status=status))


def rows(engine: Engine, since: float | None = None, limit: int = 10000) -> list[dict[str, Any]]:
    """Audit rows, oldest first."""
    q = select(db.audit).order_by(db.audit.c.id).limit(limit)
    if since is not None:
        q = q.where(db.audit.c.time >= since)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]


def to_csv(items: list[dict[str, Any]]) -> str:
    """CSV export of audit rows."""
    buf = io.StringIO()
    cols = [c.name for c in db.audit.columns]
    w = csv.DictWriter(buf, fieldnames=cols)
    w.writeheader()
    for r in items:
        w.writerow(r)
    return buf.getvalue()
