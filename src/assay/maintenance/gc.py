"""Table rows that outlive their use, one function per kind.

Each `prune_*` function runs inside one transaction and removes at most `limit` rows: rows are
picked with `FOR UPDATE SKIP LOCKED` (on PostgreSQL a second sweeper, or a transaction still
using a row, makes it skip that row; SQLite has one writer and drops the clause) and deleted
by primary key. `drain` calls one until a batch comes back short, a transaction per batch, so
a backlog of millions never holds a lock for long.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, exists, select
from sqlalchemy.orm import Session

from assay.backends.blob.base import BlobStore, PresigningStore
from assay.kit.db import Database
from assay.maintenance.queries import CONFIRMED
from assay.models import Event, IdempotencyRecord, Upload, WebhookDelivery
from assay.objects import claims
from assay.webhooks.schemas import DELIVERED, FAILED


def never_stop() -> None:
    """The default checkpoint: a sweep run once is never asked to stop."""


def drain(
    db: Database,
    prune: Callable[[Session], int],
    limit: int,
    checkpoint: Callable[[], None] = never_stop,
) -> int:
    """Run `prune` in a transaction of its own until it removes fewer than `limit` rows;
    `checkpoint` runs between batches (it raises to stop a sweep at a shutdown)."""
    total = 0
    while True:
        checkpoint()
        removed = db.write_sync(prune)
        total += removed
        if removed < limit:
            return total


def _delete_picked(session: Session, column: Any, picked: Select[Any]) -> int:
    ids = list(session.scalars(picked.with_for_update(skip_locked=True)))
    if ids:
        session.execute(delete(column.class_).where(column.in_(ids)))
    return len(ids)


def prune_idempotency(session: Session, cutoff: dt.datetime, limit: int) -> int:
    """Idempotency records past their TTL (no request can replay them any more)."""
    r = IdempotencyRecord
    picked = select(r.scope_key).where(r.created_at < cutoff).limit(limit)
    return _delete_picked(session, r.scope_key, picked)


def prune_events(session: Session, cutoff: dt.datetime, limit: int) -> int:
    """Events fanned out before `cutoff` that no delivery row points at any more.

    Deliveries cascade from their event, so an event is kept as long as its delivery log is
    (`prune_deliveries` has its own retention); an undispatched event is never touched.
    """
    has_delivery = exists().where(WebhookDelivery.event_id == Event.event_id)
    picked = (
        select(Event.event_id)
        .where(Event.dispatched_at.is_not(None), Event.dispatched_at < cutoff, ~has_delivery)
        .limit(limit)
    )
    return _delete_picked(session, Event.event_id, picked)


def prune_deliveries(session: Session, cutoff: dt.datetime, limit: int) -> int:
    """Delivered or finally failed deliveries created before `cutoff`; pending ones stay."""
    d = WebhookDelivery
    picked = (
        select(d.delivery_id)
        .where(d.status.in_((DELIVERED, FAILED)), d.created_at < cutoff)
        .limit(limit)
    )
    return _delete_picked(session, d.delivery_id, picked)


def prune_claims(session: Session) -> int:
    """Blob claims of processes that died holding them (the bytes they may have left behind
    are found by the store walk in `orphans.py`)."""
    return claims.prune_expired(session)


# ---------------------------------------------------------------------------- uploads


@dataclass(frozen=True)
class ExpiredUpload:
    upload_id: str
    staging_key: str | None
    s3_upload_id: str | None


def _expired(cutoff: dt.datetime) -> ColumnElement[bool]:
    return (Upload.status != CONFIRMED) & (Upload.expires_at < cutoff)


def expired_uploads(session: Session, cutoff: dt.datetime, limit: int) -> list[ExpiredUpload]:
    """Unconfirmed uploads whose URLs expired before `cutoff`."""
    stmt = (
        select(Upload.upload_id, Upload.staging_key, Upload.s3_upload_id)
        .where(_expired(cutoff))
        .order_by(Upload.expires_at)
        .limit(limit)
    )
    return [ExpiredUpload(*row) for row in session.execute(stmt)]


def forget_uploads(session: Session, upload_ids: list[str], cutoff: dt.datetime) -> int:
    """Delete these upload rows if they are still expired (a confirm may have won meanwhile)."""
    picked = select(Upload.upload_id).where(Upload.upload_id.in_(upload_ids), _expired(cutoff))
    return _delete_picked(session, Upload.upload_id, picked)


def staging_files(folder: Path, upload_id: str) -> list[Path]:
    """The files a local upload keeps in the upload folder: the body, its parts, and the
    `.incoming` halves of transfers cut short."""
    return [p for p in folder.glob(f"{upload_id}*") if p.name.split(".", 1)[0] == upload_id]


def remove_staged(store: BlobStore, folder: Path, upload: ExpiredUpload) -> int:
    """Remove what an upload staged, here and in the store; safe to repeat."""
    removed = 0
    for path in staging_files(folder, upload.upload_id):
        path.unlink(missing_ok=True)
        removed += 1
    if upload.staging_key is not None:
        if upload.s3_upload_id and isinstance(store, PresigningStore):
            store.abort_multipart(upload.staging_key, upload.s3_upload_id)
        if store.exists(upload.staging_key):
            store.delete(upload.staging_key)
            removed += 1
    return removed


def sweep_uploads(
    db: Database,
    store: BlobStore,
    folder: Path,
    cutoff: dt.datetime,
    limit: int,
    checkpoint: Callable[[], None] = never_stop,
) -> tuple[int, int]:
    """Expired uploads: their staged bytes first, then their rows (a crash in between leaves
    the rows, and the next sweep removes the bytes again). Returns (rows, files) removed."""
    rows = files = 0
    while True:
        checkpoint()
        batch = db.read_sync(lambda s: expired_uploads(s, cutoff, limit))
        for upload in batch:
            files += remove_staged(store, folder, upload)
        deleted = _forget(db, [u.upload_id for u in batch], cutoff)
        rows += deleted
        if len(batch) < limit or not deleted:  # all done, or the rest is busy elsewhere
            return rows, files


def _forget(db: Database, upload_ids: list[str], cutoff: dt.datetime) -> int:
    return db.write_sync(lambda s: forget_uploads(s, upload_ids, cutoff)) if upload_ids else 0
