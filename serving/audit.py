"""The append-only audit log: who read or wrote which study, report or risk, when and from where.

Rows hold the key id and role, never patient data; the database refuses UPDATE and DELETE on the table.

Writes are group-committed (:class:`AuditWriter`): a caller returns only once its row is committed, and rows that
arrive while a commit is under way share the next one, so a busy server commits (and fsyncs) once per batch rather
than once per request, without ever answering before its audit row is durable.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import csv
import io
import queue
import threading
import time
import weakref
from typing import Any

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.engine import Engine

from serving import db
from serving.auth import Principal

#: the most rows one commit takes
MAX_BATCH = 512
#: a writer thread with nothing to do for this long ends (a later row starts a new one)
IDLE_S = 1.0


class AuditWriter:
    """Group commit of audit rows into one engine's ``audit`` table (one thread while there is work)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._alive = False

    def submit(self, row: dict[str, Any]) -> concurrent.futures.Future:
        """Queue ``row``; the future resolves once it is committed (or raises the database's error)."""
        fut: concurrent.futures.Future = concurrent.futures.Future()
        with self._lock:
            self._q.put((row, fut))
            if not self._alive:
                self._alive = True
                threading.Thread(target=self._run, name="audit-writer", daemon=True).start()
        return fut

    def _run(self) -> None:
        while True:
            try:
                batch = [self._q.get(timeout=IDLE_S)]
            except queue.Empty:
                with self._lock:
                    if self._q.empty():
                        self._alive = False
                        return
                continue
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._q.get_nowait())
                except queue.Empty:
                    break
            try:
                with self.engine.begin() as conn:
                    conn.execute(db.audit.insert(), [r for r, _ in batch])
            except Exception as exc:  # noqa: BLE001 -- every waiting request gets the error (fails closed)
                for _, f in batch:
                    f.set_exception(exc)
            else:
                for _, f in batch:
                    f.set_result(None)


_writers: weakref.WeakKeyDictionary[Engine, AuditWriter] = weakref.WeakKeyDictionary()
_writers_lock = threading.Lock()


def writer_for(engine: Engine) -> AuditWriter:
    """The engine's audit writer."""
    with _writers_lock:
        w = _writers.get(engine)
        if w is None:
            w = _writers[engine] = AuditWriter(engine)
        return w


def _row(who: Principal | None, request: Request, action: str, resource_type: str, resource_id: str, status: int
         ) -> dict[str, Any]:
    """An audit row; ``who`` None is an unauthenticated caller (``anonymous``, no role)."""
    client = request.client.host if request.client else ""
    if (state := getattr(request, "state", None)) is not None:
        state.audited = True  # the error handlers add no second row for this request
    return {"time": time.time(), "user": who.user if who else "anonymous", "role": who.role.value if who else "",
            "client": client, "action": action, "resource_type": resource_type,
            "resource_id": str(resource_id)[:128], "status": status}


def record(engine: Engine, who: Principal, request: Request, action: str, resource_type: str, resource_id: str = "",
           status: int = 200) -> None:
    """Append one audit row; returns once it is committed."""
    writer_for(engine).submit(_row(who, request, action, resource_type, resource_id, status)).result()


async def record_async(engine: Engine, who: Principal | None, request: Request, action: str, resource_type: str,
                       resource_id: str = "", status: int = 200) -> None:
    """:func:`record` for async endpoints: awaits the commit without holding a worker thread."""
    fut = writer_for(engine).submit(_row(who, request, action, resource_type, resource_id, status))
    await asyncio.wrap_future(fut)


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
