"""Baseline: the schema as wave 2 created it with ``metadata.create_all`` (before migrations existed).

A database created that way (tables, no ``alembic_version``) is stamped at this revision by
:func:`serving.db.migrate` and upgraded from here.

Revision ID: 0001
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("revoked", sa.Float, nullable=True),
    )
    op.create_table(
        "studies",
        sa.Column("study_uid", sa.String(64), primary_key=True),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(32), nullable=False),
    )
    op.create_table(
        "instances",
        sa.Column("sop_uid", sa.String(64), primary_key=True),
        sa.Column("study_uid", sa.String(64), nullable=False),
        sa.Column("series_uid", sa.String(64), nullable=False),
        sa.Column("sop_class_uid", sa.String(64), nullable=False),
        sa.Column("modality", sa.String(16), nullable=False),
        sa.Column("series_number", sa.Integer, nullable=True),
        sa.Column("instance_number", sa.Integer, nullable=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("derived", sa.Integer, nullable=False),
        sa.Column("source_job", sa.String(32), nullable=True),
    )
    for col in ("study_uid", "series_uid", "source_job"):
        op.create_index(f"ix_instances_{col}", "instances", [col])
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(255), nullable=False),
        sa.Column("study_uid", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("updated", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(32), nullable=False),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_expires", sa.Float, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("stage", sa.String(64), nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("callback_url", sa.Text, nullable=True),
        sa.Column("callback_status", sa.String(64), nullable=True),
        sa.Column("files", sa.Text, nullable=True),
        sa.Column("completions", sa.Integer, nullable=False),
    )
    op.create_index("ix_jobs_study_uid", "jobs", ["study_uid"])
    op.create_index("ix_jobs_status", "jobs", ["status"])
    op.create_table(
        "users",
        sa.Column("username", sa.String(64), primary_key=True),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("disabled", sa.Float, nullable=True),
    )
    op.create_table(
        "sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("last_seen", sa.Float, nullable=False),
        sa.Column("expires", sa.Float, nullable=False),
    )
    op.create_index("ix_sessions_username", "sessions", ["username"])
    op.create_table(
        "study_info",
        sa.Column("study_uid", sa.String(64), primary_key=True),
        *[sa.Column(c, sa.String(n), nullable=False) for c, n in (
            ("patient_id", 64), ("patient_name", 200), ("patient_sex", 16), ("study_date", 16),
            ("description", 200), ("accession", 64), ("study_time", 16), ("birth_date", 16), ("referring", 200),
            ("study_id", 16))],
    )
    op.create_table(
        "report_versions",
        sa.Column("job_id", sa.String(32), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("parent", sa.Integer, nullable=True),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("folder", sa.String(255), nullable=False),
        sa.Column("files", sa.Text, nullable=False),
        sa.Column("edits", sa.Text, nullable=True),
        sa.Column("signed_by", sa.String(64), nullable=True),
        sa.Column("signed_name", sa.String(200), nullable=True),
        sa.Column("signed_at", sa.Float, nullable=True),
    )
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("time", sa.Float, nullable=False),
        sa.Column("user", sa.String(64), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("client", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("resource_type", sa.String(32), nullable=False),
        sa.Column("resource_id", sa.String(128), nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
    )
    if op.get_bind().dialect.name == "sqlite":  # append-only, as wave 2 had it
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER IF NOT EXISTS audit_no_{verb.lower()} BEFORE {verb} ON audit "
                       "BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END")


def downgrade() -> None:
    for t in ("audit", "report_versions", "study_info", "sessions", "users", "jobs", "instances", "studies",
              "api_keys"):
        op.drop_table(t)
