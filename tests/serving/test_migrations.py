"""The schema under Alembic, on SQLite and on a real PostgreSQL: a fresh database reaches head and matches the
tables the code uses; a database from before migrations is upgraded with its rows kept; the audit log is
append-only in the database itself; 64-bit sizes and long lease owners fit; concurrent start-ups migrate once."""

from __future__ import annotations

import threading

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import DBAPIError

from serving import db

BACKENDS = ("sqlite", "postgresql")


def _head(engine) -> str:  # noqa: ANN001
    with engine.connect() as conn:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()


def test_fresh_database_reaches_head_and_matches_the_code(database_url: str) -> None:
    engine = db.make_engine(database_url)
    assert _head(engine) == "0003"
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), db.metadata)
    assert diff == [], diff
    db.migrate(engine)  # idempotent
    assert _head(engine) == "0003"
    engine.dispose()


def test_a_database_from_before_migrations_is_upgraded_with_its_rows(database_url: str) -> None:
    """Wave 2 made its tables with create_all and no alembic_version: stamped at the baseline, then upgraded."""
    engine = create_engine(database_url)
    db.migrate(engine, "0001")
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE alembic_version")  # exactly what create_all left behind
        conn.execute(db.api_keys.insert().values(id="k1", name="old", role="admin", key_hash="h" * 64, created=1.0))
        conn.execute(db.audit.insert().values(time=1.0, user="k1", role="admin", client="", action="create",
                                              resource_type="key", resource_id="k1", status=201))
    engine.dispose()
    engine = db.make_engine(database_url)
    assert _head(engine) == "0003"
    with engine.connect() as conn:
        assert conn.execute(text("SELECT name FROM api_keys")).scalars().all() == ["old"]
        assert conn.execute(text("SELECT count(*) FROM audit")).scalar_one() == 1
    engine.dispose()


def test_audit_is_append_only_in_the_database(database_url: str) -> None:
    engine = db.make_engine(database_url)
    with engine.begin() as conn:
        conn.execute(db.audit.insert().values(time=1.0, user="u", role="admin", client="", action="read",
                                              resource_type="study", resource_id="1", status=200))
    for sql in ("UPDATE audit SET status = 500", "DELETE FROM audit"):
        with pytest.raises(DBAPIError, match="append-only"):
            with engine.begin() as conn:
                conn.exec_driver_sql(sql)
    if engine.dialect.name == "postgresql":
        with pytest.raises(DBAPIError, match="append-only"):
            with engine.begin() as conn:
                conn.exec_driver_sql("TRUNCATE audit")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT status FROM audit")).scalars().all() == [200]
    engine.dispose()


def test_large_files_and_long_lease_owners_fit(database_url: str) -> None:
    engine = db.make_engine(database_url)
    owner = "h" * 200 + ":12345:" + "f" * 32
    with engine.begin() as conn:
        conn.execute(db.instances.insert().values(sop_uid="1.2", study_uid="1", series_uid="1.1", sop_class_uid="",
                                                  modality="MR", sha256="0" * 64, size=5 * 2**30, created=1.0,
                                                  derived=0))
        conn.execute(db.jobs.insert().values(id="j", kind="all", study_uid="1", status="running", created=1.0,
                                             updated=1.0, created_by="", lease_owner=owner, attempts=1, stage="",
                                             completions=0))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT size FROM instances")).scalar_one() == 5 * 2**30
        assert conn.execute(text("SELECT lease_owner FROM jobs")).scalar_one() == owner
    if engine.dialect.name == "postgresql":
        cols = {c["name"]: c["type"] for c in inspect(engine).get_columns("audit")}
        assert cols["id"].python_type is int and "BIGINT" in str(cols["id"]).upper()
    engine.dispose()


def test_concurrent_start_ups_migrate_once(database_url: str) -> None:
    errors: list[BaseException] = []

    def start() -> None:
        try:
            db.make_engine(database_url).dispose()
        except BaseException as exc:  # noqa: BLE001 -- reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    engine = db.make_engine(database_url)
    assert _head(engine) == "0003"
    engine.dispose()
