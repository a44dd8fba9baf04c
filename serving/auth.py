"""API keys (stored as SHA-256 of a 256-bit random key) and roles."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from serving import db

KEY_PREFIX = "medai_"


class Role(StrEnum):
    """Who may call what."""

    CLINICIAN = "clinician"
    DATA_SCIENTIST = "data_scientist"
    HOSPITAL_SYSTEM = "hospital_system"
    ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: key id (used as the user in the audit log), its name and role."""

    user: str
    name: str
    role: Role


def hash_key(key: str) -> str:
    """SHA-256 hex of a key (keys carry 256 random bits, so a fast hash is enough against guessing)."""
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(engine: Engine, role: Role | str, name: str = "") -> tuple[str, str]:
    """Create a key; returns ``(key_id, key)``. The key itself is never stored and cannot be shown again."""
    role = Role(role)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    key_id = secrets.token_hex(8)
    with engine.begin() as conn:
        conn.execute(db.api_keys.insert().values(id=key_id, name=name, role=role.value, key_hash=hash_key(key),
                                                 created=time.time(), revoked=None))
    return key_id, key


def list_keys(engine: Engine) -> list[dict]:
    """Every key's id, name, role, creation and revocation time (never the key)."""
    with engine.connect() as conn:
        rows = conn.execute(select(db.api_keys.c.id, db.api_keys.c.name, db.api_keys.c.role, db.api_keys.c.created,
                                   db.api_keys.c.revoked).order_by(db.api_keys.c.created)).mappings().all()
    return [dict(r) for r in rows]


def revoke_key(engine: Engine, key_id: str) -> bool:
    """Revoke a key; False when no active key has that id."""
    with engine.begin() as conn:
        res = conn.execute(update(db.api_keys).where(db.api_keys.c.id == key_id, db.api_keys.c.revoked.is_(None))
                           .values(revoked=time.time()))
    return res.rowcount > 0


def authenticate(engine: Engine, key: str) -> Principal | None:
    """The principal of an active key, or None."""
    if not key:
        return None
    with engine.connect() as conn:
        row = conn.execute(select(db.api_keys).where(db.api_keys.c.key_hash == hash_key(key),
                                                     db.api_keys.c.revoked.is_(None))).mappings().first()
    if row is None:
        return None
    return Principal(user=row["id"], name=row["name"], role=Role(row["role"]))


class KeyCache:
    """Principals of recently seen keys, for ``ttl`` seconds, so a busy client is not one database read per call.

    A key revoked through this process's API is dropped at once (:meth:`clear`); revoked elsewhere (the CLI, another
    worker or host), it stops working within ``ttl`` seconds. ``ttl`` 0 disables the cache. Unknown keys are never
    cached.
    """

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._d: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Principal | None:
        """The cached principal of ``key``, or None (not cached or expired)."""
        hit = self._d.get(hash_key(key)) if self.ttl > 0 else None
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, key: str, who: Principal) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            if len(self._d) > 10_000:  # bounded: drop expired entries, then everything if still full
                now = time.monotonic()
                self._d = {k: v for k, v in self._d.items() if v[0] >= now}
                if len(self._d) > 10_000:
                    self._d.clear()
            self._d[hash_key(key)] = (time.monotonic() + self.ttl, who)

    def clear(self) -> None:
        """Forget every cached key (after a revocation)."""
        with self._lock:
            self._d.clear()
