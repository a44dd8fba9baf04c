"""An index on ``audit (user, time)``: the sign-in lockout counts a name's recent failures from the audit log
(shared by every server process and host) instead of each process's memory.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_audit_user_time", "audit", ["user", "time"])


def downgrade() -> None:
    op.drop_index("ix_audit_user_time", table_name="audit")
