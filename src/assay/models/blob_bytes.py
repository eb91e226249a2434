from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from assay.kit.db import Base, utcnow


class BlobBytes(Base):
    """Small blobs' bytes, kept in the metadata database (faster than a file each, and
    written in the same transaction as the rows that reference them)."""

    __tablename__ = "blob_bytes"

    storage_key: Mapped[str] = mapped_column(String(120), primary_key=True)
    namespace_id: Mapped[str] = mapped_column(
        ForeignKey("namespaces.namespace_id", ondelete="CASCADE"), index=True
    )
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
