"""API keys (stored as SHA-256 of a 256-bit random key) and roles."""

from __future__ import annotations

import hashlib
import secrets
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
