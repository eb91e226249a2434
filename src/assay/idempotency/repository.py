"""SQL for idempotency records (scoped by the caller's credential inside the scope key)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from assay.errors import Conflict
from assay.kit.db import utcnow
from assay.models import IdempotencyRecord


class IdempotencyRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def find(self, scope_key: str, ttl_s: int) -> IdempotencyRecord | None:
        cutoff = utcnow() - dt.timedelta(seconds=ttl_s)
        stmt = select(IdempotencyRecord).where(
            IdempotencyRecord.scope_key == scope_key, IdempotencyRecord.created_at >= cutoff
        )
        return self.session.scalar(stmt)

    def claim(self, scope_key: str, request_hash: str, ttl_s: int) -> None:
        """Reserve the key for a running request; a live reservation or answer → 409."""
        existing = self.session.get(IdempotencyRecord, scope_key)
        if existing is not None:
            if existing.created_at >= utcnow() - dt.timedelta(seconds=ttl_s):
                raise Conflict("a request with this Idempotency-Key is already in progress")
            self.session.delete(existing)
            self.session.flush()
        self.session.add(IdempotencyRecord(scope_key=scope_key, request_hash=request_hash))

    def complete(self, scope_key: str, status: int, content_type: str, body: bytes) -> None:
        record = self.session.get(IdempotencyRecord, scope_key)
        if record is not None:
            record.status_code, record.content_type, record.body = status, content_type, body

    def release(self, scope_key: str) -> None:
        self.session.execute(
            delete(IdempotencyRecord).where(IdempotencyRecord.scope_key == scope_key)
        )

    def purge_expired(self, ttl_s: int) -> None:
        cutoff = utcnow() - dt.timedelta(seconds=ttl_s)
        self.session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff))
