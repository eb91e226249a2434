from __future__ import annotations

import datetime as dt

from sqlalchemy import LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from assay.kit.db import Base, utcnow


class IdempotencyRecord(Base):
    """The first answer to a POST carrying an `Idempotency-Key`, replayed for 24 h."""

    __tablename__ = "idempotency_records"

    # sha256 of (caller's credential, key); the credential keeps one caller's keys from another's.
    scope_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(default=0)  # 0 while the first request is running
    content_type: Mapped[str] = mapped_column(String(100), default="application/json")
    body: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    # While the first request runs, its process renews this; a claim whose lease ran out
    # belongs to a process that died mid-request, and the next request with the key takes it.
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(default=None)
