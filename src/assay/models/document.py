from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from assay.kit.db import Base, FloatVector, utcnow


class Document(Base):
    """What an extractor made of (a segment of) a blob; unique per lineage key, so re-runs
    replace instead of duplicating."""

    __tablename__ = "documents"
    __table_args__ = (
        UniqueConstraint(
            "collection_id", "object_id", "blob_id", "segment_key", "extractor",
            "extractor_version", name="uq_documents_lineage",
        ),
    )  # fmt: skip

    document_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # `int_key(document_id)`: the row id of the full-text index and the key in vector indexes.
    doc_key: Mapped[int] = mapped_column(BigInteger, unique=True)
    namespace_id: Mapped[str] = mapped_column(
        ForeignKey("namespaces.namespace_id", ondelete="CASCADE"), index=True
    )
    collection_id: Mapped[str] = mapped_column(String(32), index=True)
    object_id: Mapped[str] = mapped_column(
        ForeignKey("objects.object_id", ondelete="CASCADE"), index=True
    )
    blob_id: Mapped[str] = mapped_column(String(32))
    property: Mapped[str] = mapped_column(String(200))
    segment_key: Mapped[str] = mapped_column(String(64), default="")
    segment: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    extractor: Mapped[str] = mapped_column(String(100))
    extractor_version: Mapped[str] = mapped_column(String(20))
    content: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Chunk text, OCR text, transcript and labels in one string: what BM25 searches.
    search_text: Mapped[str] = mapped_column(Text, default="")
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class DocumentVector(Base):
    """One vector of a document under one feature URI, as little-endian float32 bytes.

    The table is the truth; the vector indexes under the data dir are caches of it, kept in
    step through `vector_log`. Rows are written and removed only through
    `assay.documents.writer`, which logs each change.
    """

    __tablename__ = "document_vectors"
    __table_args__ = (
        Index("ix_document_vectors_feature", "collection_id", "feature_uri"),
        # Looking vectors up by key must not fall back to scanning a whole collection.
        Index("uq_document_vectors_key", "doc_key", "feature_uri", unique=True),
    )

    document_id: Mapped[str] = mapped_column(
        ForeignKey("documents.document_id", ondelete="CASCADE"), primary_key=True
    )
    feature_uri: Mapped[str] = mapped_column(String(200), primary_key=True)
    doc_key: Mapped[int] = mapped_column(BigInteger)
    namespace_id: Mapped[str] = mapped_column(String(32))
    collection_id: Mapped[str] = mapped_column(String(32))
    vector: Mapped[bytes] = mapped_column(FloatVector())


class VectorLogEntry(Base):
    """Every insert (`+`) and delete (`-`) of a document vector, so an index that saved its
    watermark `seq` can replay what happened since — even what a crash or another process did.

    Written by `assay.documents` (the writer, and before every delete that removes vectors,
    cascades included) in the same transaction as the change, on SQLite and PostgreSQL alike;
    no trigger writes it since revision 0010.
    """

    __tablename__ = "vector_log"
    __table_args__ = (
        Index("ix_vector_log_feature_seq", "collection_id", "feature_uri", "seq"),
        # Never reuse a seq, even the last one after a prune: watermarks depend on it.
        {"sqlite_autoincrement": True},
    )

    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    collection_id: Mapped[str] = mapped_column(String(32))
    feature_uri: Mapped[str] = mapped_column(String(200))
    doc_key: Mapped[int] = mapped_column(BigInteger)
    op: Mapped[str] = mapped_column(String(1))
