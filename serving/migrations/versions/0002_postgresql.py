"""PostgreSQL-ready types and an append-only audit log on PostgreSQL too.

- ``jobs.lease_owner`` 64 -> 255 characters: the owner is ``host:pid:uuid``, and host names reach 253.
- ``instances.size`` and ``audit.id`` become 64-bit: files over 2 GiB (enhanced multi-frame), and an audit log
  that at 1,000 rows/s passes 2^31 in 25 days.
- PostgreSQL: a trigger refuses UPDATE, DELETE and TRUNCATE on ``audit`` for every role, the owner included, and
  UPDATE/DELETE/TRUNCATE are revoked from PUBLIC (grant the app role only SELECT, INSERT; see the README).

SQLite gets the two column types as well (it does not enforce them, but one declared schema holds everywhere);
its ``audit.id`` stays INTEGER (the rowid alias) and its audit triggers came in 0001.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite gets the declared types too (by copying the two tables), so one schema holds everywhere
    with op.batch_alter_table("jobs") as t:
        t.alter_column("lease_owner", type_=sa.String(255), existing_type=sa.String(64), existing_nullable=True)
    with op.batch_alter_table("instances") as t:
        t.alter_column("size", type_=sa.BigInteger, existing_type=sa.Integer, existing_nullable=False)
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite: audit.id stays INTEGER (its rowid alias) and its append-only triggers came in 0001
    op.alter_column("audit", "id", type_=sa.BigInteger, existing_type=sa.Integer, existing_nullable=False)
    op.execute("ALTER SEQUENCE IF EXISTS audit_id_seq AS BIGINT")
    op.execute("""
        CREATE OR REPLACE FUNCTION medai_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'audit is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
        END $$""")
    op.execute("CREATE TRIGGER audit_no_update_delete BEFORE UPDATE OR DELETE ON audit "
               "FOR EACH ROW EXECUTE FUNCTION medai_audit_append_only()")
    op.execute("CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit "
               "FOR EACH STATEMENT EXECUTE FUNCTION medai_audit_append_only()")
    op.execute("REVOKE UPDATE, DELETE, TRUNCATE ON audit FROM PUBLIC")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        with op.batch_alter_table("instances") as t:
            t.alter_column("size", type_=sa.Integer, existing_type=sa.BigInteger)
        with op.batch_alter_table("jobs") as t:
            t.alter_column("lease_owner", type_=sa.String(64), existing_type=sa.String(255))
        return
    op.execute("DROP TRIGGER IF EXISTS audit_no_truncate ON audit")
    op.execute("DROP TRIGGER IF EXISTS audit_no_update_delete ON audit")
    op.execute("DROP FUNCTION IF EXISTS medai_audit_append_only()")
    op.alter_column("audit", "id", type_=sa.Integer, existing_type=sa.BigInteger)
    with op.batch_alter_table("instances") as t:
        t.alter_column("size", type_=sa.Integer, existing_type=sa.BigInteger)
    with op.batch_alter_table("jobs") as t:
        t.alter_column("lease_owner", type_=sa.String(64), existing_type=sa.String(255))
