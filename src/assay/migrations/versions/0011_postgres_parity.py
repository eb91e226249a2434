"""PostgreSQL at parity: pgvector vectors, a tsvector text index, jsonb, a 64-bit change log

Nothing changes on SQLite. On PostgreSQL:
- `document_vectors.vector` becomes pgvector's `vector` (any dimension; each collection
  feature gets its own HNSW index over a `halfvec(d)` cast, made by the pgvector index);
- `documents.search_vector` is a stored `tsvector` of `search_text` with a GIN index, the
  counterpart of SQLite's FTS5 table;
- every `json` column becomes `jsonb` (equality, containment and indexes work on it);
- `vector_log.seq` is 64-bit, as SQLite's rowid is.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TEXT_CONFIG = "english"  # Snowball English stemming, as FTS5's porter tokenizer does


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    _retype_json(bind, "json", "jsonb")
    op.execute("ALTER TABLE vector_log ALTER COLUMN seq TYPE bigint")
    sequence = bind.scalar(sa.text("SELECT pg_get_serial_sequence('vector_log', 'seq')"))
    if sequence:
        op.execute(f"ALTER SEQUENCE {sequence} AS bigint")
    op.execute(
        "ALTER TABLE documents ADD COLUMN search_vector tsvector GENERATED ALWAYS AS "
        f"(to_tsvector('{TEXT_CONFIG}', search_text)) STORED"
    )
    op.execute("CREATE INDEX ix_documents_search_vector ON documents USING gin (search_vector)")
    _vectors_to_pgvector()


def _retype_json(bind: sa.Connection, old: str, new: str) -> None:
    rows = bind.execute(
        sa.text(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND data_type = :t"
        ),
        {"t": old},
    ).all()
    for table, column in rows:
        op.execute(
            f'ALTER TABLE "{table}" ALTER COLUMN "{column}" TYPE {new} USING "{column}"::{new}'
        )


def _vectors_to_pgvector() -> None:
    """float32 bytes → pgvector, row by row (PostgreSQL held no vectors before this)."""
    import numpy as np

    bind = op.get_bind()
    op.execute("ALTER TABLE document_vectors ADD COLUMN embedding vector")
    rows = bind.execute(sa.text("SELECT document_id, feature_uri, vector FROM document_vectors"))
    for document_id, feature_uri, data in rows.all():
        values = np.frombuffer(bytes(data), dtype="<f4")
        bind.execute(
            sa.text(
                "UPDATE document_vectors SET embedding = CAST(:v AS vector) "
                "WHERE document_id = :d AND feature_uri = :u"
            ),
            {"v": "[" + ",".join(map(repr, values.tolist())) + "]", "d": document_id,
             "u": feature_uri},
        )  # fmt: skip
    op.execute("ALTER TABLE document_vectors DROP COLUMN vector")
    op.execute("ALTER TABLE document_vectors RENAME COLUMN embedding TO vector")
    op.execute("ALTER TABLE document_vectors ALTER COLUMN vector SET NOT NULL")


def _vectors_to_bytes(bind: sa.Connection) -> None:
    import json

    import numpy as np

    rows = bind.execute(
        sa.text("SELECT document_id, feature_uri, vector::text FROM document_vectors")
    ).all()
    for document_id, feature_uri, values in rows:
        data = np.asarray(json.loads(values), dtype="<f4").tobytes()
        bind.execute(
            sa.text(
                "UPDATE document_vectors SET raw = :v WHERE document_id = :d AND feature_uri = :u"
            ),
            {"v": data, "d": document_id, "u": feature_uri},
        )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for (name,) in bind.execute(
        sa.text(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'document_vectors' "
            "AND starts_with(indexname, 'ix_vec_')"
        )
    ).all():
        op.execute(f'DROP INDEX IF EXISTS "{name}"')
    op.execute("ALTER TABLE document_vectors ADD COLUMN raw bytea")
    _vectors_to_bytes(bind)
    op.execute("ALTER TABLE document_vectors DROP COLUMN vector")
    op.execute("ALTER TABLE document_vectors RENAME COLUMN raw TO vector")
    op.execute("ALTER TABLE document_vectors ALTER COLUMN vector SET NOT NULL")
    op.execute("DROP INDEX IF EXISTS ix_documents_search_vector")
    op.execute("ALTER TABLE documents DROP COLUMN IF EXISTS search_vector")
    _retype_json(bind, "jsonb", "json")
