"""vector_log written by the documents layer, not by SQLite triggers

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 10:00:00.000000

`assay.documents` now logs every vector it writes or removes, in the same transaction, on
SQLite and PostgreSQL alike (PostgreSQL never had these triggers). Kept, the triggers would
log each change twice. The FTS5 triggers on `documents` stay.
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_TRIGGERS = {
    "document_vectors_logged_insert": (
        """CREATE TRIGGER document_vectors_logged_insert AFTER INSERT ON document_vectors BEGIN
        INSERT INTO vector_log (collection_id, feature_uri, doc_key, op)
        VALUES (new.collection_id, new.feature_uri, new.doc_key, '+'); END"""
    ),
    "document_vectors_logged_delete": (
        """CREATE TRIGGER document_vectors_logged_delete AFTER DELETE ON document_vectors BEGIN
        INSERT INTO vector_log (collection_id, feature_uri, doc_key, op)
        VALUES (old.collection_id, old.feature_uri, old.doc_key, '-'); END"""
    ),
}


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in _TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for ddl in _TRIGGERS.values():
            op.execute(ddl)
