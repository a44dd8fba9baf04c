"""Alembic environment: medai runs its migrations itself (:func:`serving.db.migrate`), on the connection it passes."""

from __future__ import annotations

from alembic import context

from serving import db

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=db.metadata, render_as_batch=True, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
