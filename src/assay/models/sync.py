from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from assay.kit.db import Base, utcnow


class Sync(Base):
    """A sync configuration: an S3 source whose keys become objects of a bucket."""

    __tablename__ = "syncs"
    __table_args__ = (
        Index("ix_syncs_bucket_id_sync_id", "bucket_id", "sync_id"),
        # The poller's query: continuous, active syncs whose next run is due.
        Index("ix_syncs_status_next_run_at", "status", "next_run_at"),
    )

    sync_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    namespace_id: Mapped[str] = mapped_column(
        ForeignKey("namespaces.namespace_id", ondelete="CASCADE"), index=True
    )
    bucket_id: Mapped[str] = mapped_column(ForeignKey("buckets.bucket_id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(16), default="s3")
    source_bucket: Mapped[str] = mapped_column(String(255))
    prefix: Mapped[str] = mapped_column(Text, default="")
    endpoint_url: Mapped[str | None] = mapped_column(Text, default=None)
    region: Mapped[str | None] = mapped_column(String(64), default=None)
    # Kept as given, like webhook secrets: every run signs its S3 requests with them.
    # Responses only ever say whether they are set.
    access_key_id: Mapped[str | None] = mapped_column(Text, default=None)
    secret_access_key: Mapped[str | None] = mapped_column(Text, default=None)
    session_token: Mapped[str | None] = mapped_column(Text, default=None)
    sync_mode: Mapped[str] = mapped_column(String(16))  # one_time continuous
    status: Mapped[str] = mapped_column(String(16), default="ACTIVE")  # ACTIVE PAUSED
    polling_interval_seconds: Mapped[int] = mapped_column(default=300)
    file_filters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    property_mapping: Mapped[dict[str, Any]] = mapped_column(default=dict)
    batch_size: Mapped[int] = mapped_column(default=100)
    auto_submit: Mapped[bool] = mapped_column(default=False)
    last_run_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    next_run_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    objects_created: Mapped[int] = mapped_column(default=0)
    objects_skipped: Mapped[int] = mapped_column(default=0)
    errors: Mapped[int] = mapped_column(default=0)
    last_errors: Mapped[list[Any]] = mapped_column(default=list)
    last_run: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SyncKey(Base):
    """One (key, ETag) of a sync's source that a run has taken: registered, or failed for good.

    The primary key is the guarantee that a (key, ETag) is never registered twice: a run inserts
    this row in the same transaction as the object, so of two overlapping runs only one can.
    """

    __tablename__ = "sync_keys"
    __table_args__ = (
        # Auto-submit's query: a sync's registered objects not yet in a batch.
        Index("ix_sync_keys_sync_id_batch_id", "sync_id", "batch_id"),
    )

    sync_id: Mapped[str] = mapped_column(
        ForeignKey("syncs.sync_id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    etag: Mapped[str] = mapped_column(String(200), primary_key=True)
    # No foreign key: deleting an object must not make its key look new to the next run.
    object_id: Mapped[str | None] = mapped_column(String(32), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)  # set when it failed for good
    batch_id: Mapped[str | None] = mapped_column(String(32), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
