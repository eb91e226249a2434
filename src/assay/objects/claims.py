"""SQL of blob claims: who uses or removes which stored bytes, across every process.

Each function runs inside one write transaction. On PostgreSQL a transaction-scoped advisory
lock per key makes "look, then claim" atomic between processes (READ COMMITTED would let two
transactions each miss the other's uncommitted claim); SQLite's single writer already does.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.orm import Session

from assay.kit.db import utcnow
from assay.kit.ids import new_id
from assay.models import BlobClaim
from assay.objects.repository import unreferenced_keys

USE_TTL = dt.timedelta(hours=1)  # a registration may stream a large file for a long while
REMOVE_TTL = dt.timedelta(minutes=1)  # a removal is one delete call


def _lock_keys(session: Session, keys: list[str]) -> None:
    if session.get_bind().dialect.name != "postgresql":
        return
    for key in sorted(keys):  # one order everywhere: no deadlocks between two key sets
        session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": key})


def _live(session: Session, key: str, kind: str) -> bool:
    stmt = select(func.count()).where(
        BlobClaim.storage_key == key, BlobClaim.kind == kind, BlobClaim.expires_at > utcnow()
    )
    return bool(session.scalar(stmt))


def claim_use(session: Session, key: str) -> str | None:
    """Claim `key` for use; None while a removal of it is under way (try again shortly)."""
    _lock_keys(session, [key])
    if _live(session, key, "remove"):
        return None
    return _add(session, key, "use", USE_TTL)


def release(session: Session, claim_ids: list[str]) -> None:
    if claim_ids:
        session.execute(delete(BlobClaim).where(BlobClaim.claim_id.in_(claim_ids)))


def claim_removal(
    session: Session, namespace_id: str, key: str, own_use: str | None = None
) -> str | None:
    """Claim `key` for removal if no row references it and nobody else uses it; else None.
    `own_use` (the caller's own use claim, released here) does not count as somebody."""
    _lock_keys(session, [key])
    release(session, [own_use] if own_use else [])
    if _live(session, key, "use") or _live(session, key, "remove"):
        return None
    if not unreferenced_keys(session, namespace_id, {key}):
        return None
    return _add(session, key, "remove", REMOVE_TTL)


def _add(session: Session, key: str, kind: str, ttl: dt.timedelta) -> str:
    claim_id = new_id("clm")
    row = {"claim_id": claim_id, "storage_key": key, "kind": kind, "expires_at": utcnow() + ttl}
    session.execute(insert(BlobClaim), [row])
    return claim_id


def prune_expired(session: Session) -> int:
    """Forget claims of processes that died holding them."""
    result = session.execute(delete(BlobClaim).where(BlobClaim.expires_at <= utcnow()))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
