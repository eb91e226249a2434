from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from assay.kit.db import Base, utcnow


class Upload(Base):
    """A direct upload: a signed URL handed out, bytes received, then confirmed into an object."""

    __tablename__ = "uploads"
    __table_args__ = (Index("ix_uploads_bucket_id_upload_id", "bucket_id", "upload_id"),)

    upload_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    namespace_id: Mapped[str] = mapped_column(
        ForeignKey("namespaces.namespace_id", ondelete="CASCADE"), index=True
    )
    bucket_id: Mapped[str] = mapped_column(ForeignKey("buckets.bucket_id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(String(200))
    file_size_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
    file_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    blob_property: Mapped[str] = mapped_column(String(100))
    blob_type: Mapped[str] = mapped_column(String(16))
    object_metadata: Mapped[dict[str, Any]] = mapped_column(default=dict)
    key_prefix: Mapped[str | None] = mapped_column(Text, default=None)
    skip_duplicates: Mapped[bool] = mapped_column(default=True)
    multipart: Mapped[bool] = mapped_column(default=False)
    part_size_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # With an S3 blob store the client sends bytes to S3 itself, under this staging key.
    staging_key: Mapped[str | None] = mapped_column(Text, default=None)
    s3_upload_id: Mapped[str | None] = mapped_column(Text, default=None)
    status: Mapped[str] = mapped_column(String(16), default="PENDING")
    received_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
    received_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    object_id: Mapped[str | None] = mapped_column(String(32), default=None)
    duplicate: Mapped[bool] = mapped_column(default=False)
    presigned_url_expiration: Mapped[int] = mapped_column(default=3600)
    expires_at: Mapped[dt.datetime] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(default=None)
