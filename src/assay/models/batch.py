from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from assay.kit.db import Base, utcnow


class Batch(Base):
    __tablename__ = "batches"
    __table_args__ = (Index("ix_batches_bucket_id_batch_id", "bucket_id", "batch_id"),)

    batch_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    namespace_id: Mapped[str] = mapped_column(
        ForeignKey("namespaces.namespace_id", ondelete="CASCADE"), index=True
    )
    bucket_id: Mapped[str] = mapped_column(ForeignKey("buckets.bucket_id", ondelete="CASCADE"))
    # Only batches/states.py writes this column.
    status: Mapped[str] = mapped_column(String(16), default="DRAFT")
    task_id: Mapped[str | None] = mapped_column(String(32), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    extractors: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    completed_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class BatchItem(Base):
    """One object of a batch and how its processing went."""

    __tablename__ = "batch_items"
    __table_args__ = (Index("ix_batch_items_batch_id_status", "batch_id", "status"),)

    batch_id: Mapped[str] = mapped_column(
        ForeignKey("batches.batch_id", ondelete="CASCADE"), primary_key=True
    )
    object_id: Mapped[str] = mapped_column(
        ForeignKey("objects.object_id", ondelete="CASCADE"), primary_key=True
    )
    status: Mapped[str] = mapped_column(String(16), default="PENDING")
    attempts: Mapped[int] = mapped_column(default=0)
    error_type: Mapped[str | None] = mapped_column(String(64), default=None)
    message: Mapped[str | None] = mapped_column(Text, default=None)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
