from __future__ import annotations

import datetime as dt

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from assay.kit.db import Base


class BlobClaim(Base):
    """A process's hold on stored bytes, seen by every process sharing the database.

    `use`: a request is writing or reusing the bytes and will commit rows that point at them;
    `remove`: a process found them unreferenced and is deleting them. Uses may overlap; a
    removal waits for no use and excludes new ones until it is done. Claims of a process that
    died expire (`expires_at`).
    """

    __tablename__ = "blob_claims"
    __table_args__ = (Index("ix_blob_claims_key", "storage_key", "kind"),)

    claim_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    storage_key: Mapped[str] = mapped_column(String(160))
    kind: Mapped[str] = mapped_column(String(8))
    expires_at: Mapped[dt.datetime]
