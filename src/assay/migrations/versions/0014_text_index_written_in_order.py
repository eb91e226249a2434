"""text index written in order: documents' FTS5 rows come from the documents layer, not a trigger

On SQLite the `documents_text_insert` trigger indexed each new document's text as the row went
in. Each of those trigger statements made FTS5 write out what it held in memory, so a job's
256 documents became 256 tiny index segments, merged again right away: three quarters of the
time of inserting documents. The documents layer (`documents.text.index_texts`) now adds the
rows itself, one statement for a job's documents in `doc_key` order. Removal keeps its trigger:
a database cascade removes documents too. Nothing changes on PostgreSQL (a stored tsvector).

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS documents_text_insert")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            """CREATE TRIGGER documents_text_insert AFTER INSERT ON documents BEGIN
            INSERT INTO document_text (rowid, search_text) VALUES (new.doc_key, new.search_text);
            END"""
        )
