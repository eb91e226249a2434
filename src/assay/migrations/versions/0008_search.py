"""search: document vectors as float32 rows, their change log, and the FTS5 text index

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 23:35:33.001855
"""

from __future__ import annotations

import struct
from typing import Any

import sqlalchemy as sa
from alembic import op

from assay.kit.ids import int_key

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# The index caches follow `document_vectors` through this log; triggers write it so that no
# code path (an object's cascade delete included) can change vectors without leaving a trace.
_SQLITE_TRIGGERS = (
    """CREATE TRIGGER document_vectors_logged_insert AFTER INSERT ON document_vectors BEGIN
        INSERT INTO vector_log (collection_id, feature_uri, doc_key, op)
        VALUES (new.collection_id, new.feature_uri, new.doc_key, '+'); END""",
    """CREATE TRIGGER document_vectors_logged_delete AFTER DELETE ON document_vectors BEGIN
        INSERT INTO vector_log (collection_id, feature_uri, doc_key, op)
        VALUES (old.collection_id, old.feature_uri, old.doc_key, '-'); END""",
    # External-content FTS5: the text lives once, in documents.search_text.
    """CREATE VIRTUAL TABLE document_text USING fts5(
        search_text, content='documents', content_rowid='doc_key',
        tokenize='porter unicode61 remove_diacritics 2')""",
    """CREATE TRIGGER documents_text_insert AFTER INSERT ON documents BEGIN
        INSERT INTO document_text (rowid, search_text) VALUES (new.doc_key, new.search_text);
        END""",
    """CREATE TRIGGER documents_text_delete AFTER DELETE ON documents BEGIN
        INSERT INTO document_text (document_text, rowid, search_text)
        VALUES ('delete', old.doc_key, old.search_text); END""",
)


def upgrade() -> None:
    op.create_table(
        "vector_log",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("collection_id", sa.String(length=32), nullable=False),
        sa.Column("feature_uri", sa.String(length=200), nullable=False),
        sa.Column("doc_key", sa.BigInteger(), nullable=False),
        sa.Column("op", sa.String(length=1), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_vector_log")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_vector_log_feature_seq", "vector_log", ["collection_id", "feature_uri", "seq"]
    )
    op.create_table(
        "document_vectors",
        sa.Column("document_id", sa.String(length=32), nullable=False),
        sa.Column("feature_uri", sa.String(length=200), nullable=False),
        sa.Column("doc_key", sa.BigInteger(), nullable=False),
        sa.Column("namespace_id", sa.String(length=32), nullable=False),
        sa.Column("collection_id", sa.String(length=32), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.document_id"],
            name=op.f("fk_document_vectors_document_id_documents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("document_id", "feature_uri", name=op.f("pk_document_vectors")),
    )
    op.create_index(
        "ix_document_vectors_feature", "document_vectors", ["collection_id", "feature_uri"]
    )
    op.create_index(
        "uq_document_vectors_key", "document_vectors", ["doc_key", "feature_uri"], unique=True
    )
    if op.get_bind().dialect.name == "sqlite":
        for ddl in _SQLITE_TRIGGERS[:2]:
            op.execute(ddl)
    old = _existing_documents()
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("doc_key", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("search_text", sa.Text(), nullable=False, server_default=""))
        batch_op.drop_column("features")
    _carry_over(old)
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.alter_column("doc_key", existing_type=sa.BigInteger(), nullable=False)
        batch_op.create_unique_constraint(batch_op.f("uq_documents_doc_key"), ["doc_key"])
    # After the last table rebuild: a batch alter recreates the table and drops its triggers.
    if op.get_bind().dialect.name == "sqlite":
        for ddl in _SQLITE_TRIGGERS[2:]:
            op.execute(ddl)
        op.execute("INSERT INTO document_text (document_text) VALUES ('rebuild')")


def _existing_documents() -> list[tuple[str, str, str, dict, dict]]:
    rows = op.get_bind().execute(
        sa.text("SELECT document_id, namespace_id, collection_id, content, features FROM documents")
    )
    return [(r[0], r[1], r[2], _json(r[3]), _json(r[4])) for r in rows]


def _json(value: Any) -> dict[str, Any]:
    import json

    return json.loads(value) if isinstance(value, str) else dict(value or {})


def _carry_over(old: list[tuple[str, str, str, dict, dict]]) -> None:
    """Documents written before this revision get their keys, text and vector rows."""
    from assay.documents.text import search_text

    bind = op.get_bind()
    for document_id, ns, collection_id, content, features in old:
        key = int_key(document_id)
        bind.execute(
            sa.text("UPDATE documents SET doc_key = :k, search_text = :t WHERE document_id = :d"),
            {"k": key, "t": search_text(content), "d": document_id},
        )
        for uri, values in features.items():
            bind.execute(
                sa.text(
                    "INSERT INTO document_vectors VALUES (:d, :u, :k, :ns, :c, :v)"
                ),
                {
                    "d": document_id, "u": uri, "k": key, "ns": ns, "c": collection_id,
                    "v": struct.pack(f"<{len(values)}f", *values),
                },
            )  # fmt: skip


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in (
            "document_vectors_logged_insert",
            "document_vectors_logged_delete",
            "documents_text_insert",
            "documents_text_delete",
        ):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS document_text")
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("features", sa.JSON(), nullable=False, server_default="{}"))
        batch_op.drop_constraint(batch_op.f("uq_documents_doc_key"), type_="unique")
        batch_op.drop_column("search_text")
        batch_op.drop_column("doc_key")
    op.drop_index("uq_document_vectors_key", table_name="document_vectors")
    op.drop_index("ix_document_vectors_feature", table_name="document_vectors")
    op.drop_table("document_vectors")
    op.drop_index("ix_vector_log_feature_seq", table_name="vector_log")
    op.drop_table("vector_log")
