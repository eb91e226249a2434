from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from assay.kit.db import Base, utcnow


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
    # Vectors by feature URI (`assay://text_extractor@v1/text_embedding`), until the vector
    # index holds them.
    features: Mapped[dict[str, Any]] = mapped_column(default=dict)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
