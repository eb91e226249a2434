"""SQL for idempotency records (scoped by the caller's credential inside the scope key)."""

from __future__ import annotations

import datetime as dt
import math

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from assay.errors import Conflict, InProgress
from assay.kit.db import utcnow
from assay.models import IdempotencyRecord

# `status_code` of a record whose request is running: 0 until one of its write transactions
# commits, then this, until the answer is kept (its HTTP status).
CARRIED_OUT = -1
IN_PROGRESS = "a request with this Idempotency-Key is already in progress"


class IdempotencyRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def find(self, scope_key: str, ttl_s: int) -> IdempotencyRecord | None:
        cutoff = utcnow() - dt.timedelta(seconds=ttl_s)
        stmt = select(IdempotencyRecord).where(
            IdempotencyRecord.scope_key == scope_key, IdempotencyRecord.created_at >= cutoff
        )
        return self.session.scalar(stmt)

    def claim(self, scope_key: str, request_hash: str, ttl_s: int, lease_s: float) -> None:
        """Reserve the key for a running request for `lease_s` (renewed while it runs).

        A live reservation, or an answer younger than `ttl_s`, is a 409. A reservation whose
        lease ran out was left by a process that died mid-request: if none of the request's
        work had committed, it is taken over, so the client's retry runs the request instead of
        being refused for the whole TTL; if some had, running it again could do it twice, so
        the retry is told the answer was lost.
        """
        existing = self.session.get(IdempotencyRecord, scope_key, with_for_update=True)
        now = utcnow()
        if existing is not None:
            if existing.status_code > 0:
                if existing.created_at >= now - dt.timedelta(seconds=ttl_s):
                    raise InProgress(IN_PROGRESS)
            elif (left := _lease_left(existing, now, lease_s)) > 0:
                raise InProgress(IN_PROGRESS, retry_after_s=math.ceil(left))
            elif existing.status_code == CARRIED_OUT:
                raise Conflict(
                    "the request with this Idempotency-Key was carried out, but the server "
                    "stopped before its answer was kept: look its result up instead of "
                    "sending it again"
                )
            self.session.delete(existing)
            self.session.flush()
        lease_end = now + dt.timedelta(seconds=lease_s)
        record = IdempotencyRecord(
            scope_key=scope_key, request_hash=request_hash, lease_expires_at=lease_end
        )
        self.session.add(record)

    def mark_carried_out(self, scope_key: str) -> None:
        """Run in the request's own write transactions: its work is committed with this."""
        self.session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.scope_key == scope_key, IdempotencyRecord.status_code == 0)
            .values(status_code=CARRIED_OUT)
        )

    def renew(self, scope_key: str, lease_s: float) -> None:
        """Extend a running request's reservation."""
        self.session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.scope_key == scope_key, IdempotencyRecord.status_code <= 0)
            .values(lease_expires_at=utcnow() + dt.timedelta(seconds=lease_s))
        )

    def complete(self, scope_key: str, status: int, content_type: str, body: bytes) -> None:
        record = self.session.get(IdempotencyRecord, scope_key)
        if record is not None:
            record.status_code, record.content_type, record.body = status, content_type, body
            record.lease_expires_at = None

    def release(self, scope_key: str) -> None:
        self.session.execute(
            delete(IdempotencyRecord).where(IdempotencyRecord.scope_key == scope_key)
        )

    def purge_expired(self, ttl_s: int) -> None:
        cutoff = utcnow() - dt.timedelta(seconds=ttl_s)
        self.session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff))


def _lease_left(record: IdempotencyRecord, now: dt.datetime, lease_s: float) -> float:
    # Rows claimed before leases existed have none: their lease is counted from creation.
    end = record.lease_expires_at or record.created_at + dt.timedelta(seconds=lease_s)
    return (end - now).total_seconds()
