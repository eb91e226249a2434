from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from assay.kit.db import Base, utcnow


class Collection(Base):
    """Documents one extractor makes from the objects of some buckets (all, by default)."""

    __tablename__ = "collections"
    __table_args__ = (UniqueConstraint("namespace_id", "collection_name"),)

    collection_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    namespace_id: Mapped[str] = mapped_column(
        ForeignKey("namespaces.namespace_id", ondelete="CASCADE"), index=True
    )
    collection_name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    extractor_name: Mapped[str] = mapped_column(String(100))
    extractor_version: Mapped[str] = mapped_column(String(20))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    input_mappings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # None: every bucket of the namespace (the default collections of its extractors).
    source_bucket_ids: Mapped[list[Any] | None] = mapped_column(default=None)
    is_default: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
