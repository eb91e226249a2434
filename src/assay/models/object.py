from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from assay.kit.db import Base, utcnow


class Object(Base):
    __tablename__ = "objects"
    __table_args__ = (Index("ix_objects_bucket_id_object_id", "bucket_id", "object_id"),)

    object_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    namespace_id: Mapped[str] = mapped_column(
        ForeignKey("namespaces.namespace_id", ondelete="CASCADE"), index=True
    )
    bucket_id: Mapped[str] = mapped_column(ForeignKey("buckets.bucket_id", ondelete="CASCADE"))
    key_prefix: Mapped[str | None] = mapped_column(Text, default=None)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    # Values of the bucket's scalar properties (string, number, date, ...); files are blobs.
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(24), default="DRAFT")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    blobs: Mapped[list[Blob]] = relationship(
        back_populates="object",
        order_by="Blob.position",
        lazy="selectin",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    @property
    def id(self) -> str:
        return self.object_id


class Blob(Base):
    __tablename__ = "blobs"
    __table_args__ = (Index("ix_blobs_namespace_id_sha256", "namespace_id", "sha256"),)

    blob_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    object_id: Mapped[str] = mapped_column(
        ForeignKey("objects.object_id", ondelete="CASCADE"), index=True
    )
    namespace_id: Mapped[str] = mapped_column(String(32))
    position: Mapped[int] = mapped_column(default=0)
    property: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(16))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(200))
    storage_key: Mapped[str] = mapped_column(Text)
    filename: Mapped[str | None] = mapped_column(Text, default=None)
    source_url: Mapped[str | None] = mapped_column(Text, default=None)
    key_prefix: Mapped[str | None] = mapped_column(Text, default=None)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    object: Mapped[Object] = relationship(back_populates="blobs")
