"""Database tables (SQLAlchemy Core): API keys, studies, instances, jobs, and the append-only audit log."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine

metadata = MetaData()

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False, default=""),
    Column("role", String(32), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("created", Float, nullable=False, default=time.time),
    Column("revoked", Float, nullable=True),
)

studies = Table(
    "studies",
    metadata,
    Column("study_uid", String(64), primary_key=True),
    Column("created", Float, nullable=False),
    Column("created_by", String(32), nullable=False, default=""),
)

instances = Table(
    "instances",
    metadata,
    Column("sop_uid", String(64), primary_key=True),
    Column("study_uid", String(64), nullable=False, index=True),
    Column("series_uid", String(64), nullable=False, index=True),
    Column("sop_class_uid", String(64), nullable=False, default=""),
    Column("modality", String(16), nullable=False, default=""),
    Column("series_number", Integer, nullable=True),
    Column("instance_number", Integer, nullable=True),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("created", Float, nullable=False),
    Column("derived", Integer, nullable=False, default=0),
    Column("source_job", String(32), nullable=True, index=True),  # the job that derived it (SEG/SR)
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", String(255), nullable=False),  # comma-separated analysis kinds, or "all"
    Column("study_uid", String(64), nullable=False, index=True),
    Column("status", String(16), nullable=False, index=True),
    Column("created", Float, nullable=False),
    Column("updated", Float, nullable=False),
    Column("created_by", String(32), nullable=False, default=""),
    Column("lease_owner", String(255), nullable=True),
    Column("lease_expires", Float, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("stage", String(64), nullable=False, default=""),
    Column("error", Text, nullable=True),
    Column("error_code", String(64), nullable=True),
    Column("callback_url", Text, nullable=True),
    Column("callback_status", String(64), nullable=True),
    Column("files", Text, nullable=True),  # JSON: kind -> file name inside the result folder
    Column("completions", Integer, nullable=False, default=0),
)

users = Table(  # people who sign in to the web app (machines use API keys)
    "users",
    metadata,
    Column("username", String(64), primary_key=True),
    Column("display_name", String(200), nullable=False, default=""),
    Column("role", String(32), nullable=False),
    Column("password_hash", String(255), nullable=False),  # argon2id (argon2-cffi)
    Column("created", Float, nullable=False),
    Column("disabled", Float, nullable=True),
)

sessions = Table(  # browser sessions: the cookie holds the token, the row its SHA-256
    "sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("username", String(64), nullable=False, index=True),
    Column("csrf", String(64), nullable=False),
    Column("created", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("expires", Float, nullable=False),
)

study_info = Table(  # worklist columns, read from the first stored instance of each study
    "study_info",
    metadata,
    Column("study_uid", String(64), primary_key=True),
    Column("patient_id", String(64), nullable=False, default=""),
    Column("patient_name", String(200), nullable=False, default=""),
    Column("patient_sex", String(16), nullable=False, default=""),
    Column("study_date", String(16), nullable=False, default=""),
    Column("description", String(200), nullable=False, default=""),
    Column("accession", String(64), nullable=False, default=""),
    Column("study_time", String(16), nullable=False, default=""),
    Column("birth_date", String(16), nullable=False, default=""),
    Column("referring", String(200), nullable=False, default=""),
    Column("study_id", String(16), nullable=False, default=""),
)

report_versions = Table(  # version 1 is the job's own result; corrections add versions; signing locks one
    "report_versions",
    metadata,
    Column("job_id", String(32), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("parent", Integer, nullable=True),
    Column("created", Float, nullable=False),
    Column("created_by", String(64), nullable=False, default=""),
    Column("folder", String(255), nullable=False),  # relative to the job's result folder ("" for version 1)
    Column("files", Text, nullable=False),  # JSON: kind -> file name inside the folder
    Column("edits", Text, nullable=True),  # JSON: what the correction changed
    Column("signed_by", String(64), nullable=True),
    Column("signed_name", String(200), nullable=True),
    Column("signed_at", Float, nullable=True),
)

audit = Table(
    "audit",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("time", Float, nullable=False),
    Column("user", String(64), nullable=False),
    Column("role", String(32), nullable=False),
    Column("client", String(64), nullable=False, default=""),
    Column("action", String(32), nullable=False),
    Column("resource_type", String(32), nullable=False),
    Column("resource_id", String(128), nullable=False, default=""),
    Column("status", Integer, nullable=False, default=200),
    Index("ix_audit_user_time", "user", "time"),  # the sign-in lockout reads a name's recent rows (0003)
)


def make_engine(url: str) -> Engine:
    """Engine for ``url``, its schema migrated to the newest revision (:func:`migrate`); SQLite gets WAL, a busy
    timeout and full fsync so commits are durable."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _rec):  # noqa: ANN001
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()
    else:
        engine = create_engine(url, pool_pre_ping=True)
    migrate(engine)
    return engine


#: the revision a database made by wave 2's ``create_all`` (tables, no ``alembic_version``) is at
BASELINE = "0001"
#: a fixed key for PostgreSQL's advisory lock: one process migrates at a time
_MIGRATION_LOCK = 727_001


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` with the Alembic migrations in ``serving/migrations``.

    Safe to call from every process at start-up: PostgreSQL serialises them with an advisory lock, SQLite with a
    lock file beside the database. A database from before migrations (tables, no ``alembic_version``) is stamped at
    :data:`BASELINE` first, so its rows are kept and only the later revisions run.
    """
    import contextlib

    from alembic import command
    from alembic.config import Config
    from sqlalchemy import inspect

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    with contextlib.ExitStack() as stack:
        if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
            import fcntl

            fh = stack.enter_context(open(f"{engine.url.database}.migrate.lock", "a"))  # noqa: SIM115
            fcntl.flock(fh, fcntl.LOCK_EX)
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
            cfg.attributes["connection"] = conn
            tables = set(inspect(conn).get_table_names())
            if "alembic_version" not in tables and "api_keys" in tables:
                command.stamp(cfg, BASELINE)
            command.upgrade(cfg, revision)
