"""People who sign in to the web app: users with argon2id password hashes, and browser sessions.

A session is a 256-bit random token in a ``Secure; HttpOnly; SameSite=Strict`` cookie; the database holds only its
SHA-256. Each session has a CSRF token that the page sends back in ``X-CSRF-Token`` on every state-changing
request (double submit: the same token is in a readable cookie); a request authenticated by the session cookie
without it is refused. Machines keep using API keys (:mod:`serving.auth`).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select, update
from sqlalchemy.engine import Engine

from serving import db
from serving.auth import Principal, Role

SESSION_COOKIE = "medai_session"
CSRF_COOKIE = "medai_csrf"
CSRF_HEADER = "X-CSRF-Token"
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_PASSWORD = 10

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# verifying against this keeps an unknown user as slow as a wrong password (no user enumeration by timing)
_DUMMY = _hasher.hash("medai-no-such-user")


class UserError(ValueError):
    """A user could not be created or changed (the message says why)."""


@dataclass(frozen=True)
class Session:
    """An open browser session."""

    token: str
    csrf: str
    principal: Principal
    expires: float


def principal_of(row: dict) -> Principal:
    """The caller a user row stands for (audited as ``user:<name>``)."""
    return Principal(user=f"user:{row['username']}", name=row["display_name"] or row["username"],
                     role=Role(row["role"]))


def create_user(engine: Engine, username: str, password: str, role: Role | str, display_name: str = "") -> None:
    """Add a user (argon2id hash of the password; the password itself is never stored).

    Raises:
        UserError: bad user name, short password, unknown role or existing user.
    """
    if not USERNAME.match(username or ""):
        raise UserError("user names are 2-64 characters: lower-case letters, digits, '.', '_' or '-'")
    if len(password or "") < MIN_PASSWORD:
        raise UserError(f"passwords need at least {MIN_PASSWORD} characters")
    try:
        role = Role(role)
    except ValueError:
        raise UserError(f"role must be one of {', '.join(r.value for r in Role)}") from None
    with engine.begin() as conn:
        if conn.execute(select(db.users.c.username).where(db.users.c.username == username)).first():
            raise UserError(f"user {username} exists; choose another name or use `medai users passwd`")
        conn.execute(db.users.insert().values(username=username, display_name=display_name or username,
                                              role=role.value, password_hash=_hasher.hash(password),
                                              created=time.time(), disabled=None))


def set_password(engine: Engine, username: str, password: str) -> None:
    """Change a user's password and end their sessions."""
    if len(password or "") < MIN_PASSWORD:
        raise UserError(f"passwords need at least {MIN_PASSWORD} characters")
    with engine.begin() as conn:
        res = conn.execute(update(db.users).where(db.users.c.username == username)
                           .values(password_hash=_hasher.hash(password)))
        if res.rowcount == 0:
            raise UserError(f"no user {username}")
        conn.execute(delete(db.sessions).where(db.sessions.c.username == username))


def disable_user(engine: Engine, username: str) -> bool:
    """Disable a user and end their sessions; False when no active user has that name."""
    with engine.begin() as conn:
        res = conn.execute(update(db.users).where(db.users.c.username == username, db.users.c.disabled.is_(None))
                           .values(disabled=time.time()))
        conn.execute(delete(db.sessions).where(db.sessions.c.username == username))
    return res.rowcount > 0


def list_users(engine: Engine) -> list[dict]:
    """Every user's name, display name, role, creation and disabling time (never the hash)."""
    c = db.users.c
    with engine.connect() as conn:
        rows = conn.execute(select(c.username, c.display_name, c.role, c.created, c.disabled)
                            .order_by(c.created)).mappings().all()
    return [dict(r) for r in rows]


def check_password(engine: Engine, username: str, password: str) -> Principal | None:
    """The user's principal when the password matches an active user, else None (same cost either way)."""
    with engine.connect() as conn:
        row = conn.execute(select(db.users).where(db.users.c.username == (username or ""),
                                                  db.users.c.disabled.is_(None))).mappings().first()
    try:
        _hasher.verify(row["password_hash"] if row else _DUMMY, password or "")
    except (VerificationError, InvalidHashError):
        return None
    if row is None:
        return None
    if _hasher.check_needs_rehash(row["password_hash"]):
        with engine.begin() as conn:
            conn.execute(update(db.users).where(db.users.c.username == username)
                         .values(password_hash=_hasher.hash(password)))
    return principal_of(dict(row))


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(engine: Engine, principal: Principal, ttl_s: float) -> Session:
    """A new session for a signed-in user (the token is returned once, only its hash is kept)."""
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    now = time.time()
    username = principal.user.removeprefix("user:")
    with engine.begin() as conn:
        conn.execute(delete(db.sessions).where(db.sessions.c.expires < now))  # housekeeping
        conn.execute(db.sessions.insert().values(token_hash=_hash(token), username=username, csrf=csrf,
                                                 created=now, last_seen=now, expires=now + ttl_s))
    return Session(token=token, csrf=csrf, principal=principal, expires=now + ttl_s)


def session_of(engine: Engine, token: str, idle_s: float) -> Session | None:
    """The open session of a cookie token (None when unknown, expired, idle too long or its user disabled)."""
    if not token:
        return None
    now = time.time()
    with engine.connect() as conn:
        row = conn.execute(select(db.sessions, db.users.c.display_name, db.users.c.role, db.users.c.disabled)
                           .join(db.users, db.users.c.username == db.sessions.c.username)
                           .where(db.sessions.c.token_hash == _hash(token))).mappings().first()
    if row is None or row["expires"] < now or row["last_seen"] + idle_s < now or row["disabled"] is not None:
        return None
    if now - row["last_seen"] > 60:  # sliding idle timeout, written at most once a minute
        with engine.begin() as conn:
            conn.execute(update(db.sessions).where(db.sessions.c.token_hash == row["token_hash"])
                         .values(last_seen=now))
    return Session(token=token, csrf=row["csrf"], principal=principal_of(dict(row)), expires=row["expires"])


def close_session(engine: Engine, token: str) -> None:
    """Sign out: forget the session."""
    with engine.begin() as conn:
        conn.execute(delete(db.sessions).where(db.sessions.c.token_hash == _hash(token or "")))
