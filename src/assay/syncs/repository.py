"""SQL for syncs and their source keys.

Requests go through `SyncRepository`, whose queries start from `scoped()` (one namespace).
The module-level functions are the workers' view: the poller looks across namespaces by
design, and a run works on one sync it already holds by id and namespace.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from assay.kit.db import table_of, utcnow
from assay.kit.repository import NamespacedRepository
from assay.models import Job, Object, Sync, SyncKey

JOB_KIND = "sync.run"


class SyncRepository(NamespacedRepository[Sync]):
    model = Sync
    namespace_column = Sync.namespace_id
    id_column = Sync.sync_id

    def get(self, row_id: str, bucket_id: str | None = None) -> Sync | None:
        """The sync, if it is this namespace's (and of this bucket, when one is given)."""
        stmt = self.scoped().where(Sync.sync_id == row_id)
        if bucket_id is not None:
            stmt = stmt.where(Sync.bucket_id == bucket_id)
        return self.session.scalar(stmt)

    def delete(self, sync: Sync) -> None:
        # Core DELETE so ON DELETE CASCADE drops the key rows in the same statement.
        self.session.execute(delete(Sync).where(*self.scope(), Sync.sync_id == sync.sync_id))


def running_syncs(session: Session, sync_ids: Iterable[str]) -> set[str]:
    """Which of these syncs have a run in progress right now (a live lease, not a dead one)."""
    live = Job.leased_until > utcnow()
    return set(sync_ids) & set(_job_sync_ids(session, ("running",), live))


def _job_sync_ids(
    session: Session, statuses: Sequence[str], *conditions: ColumnElement[bool]
) -> dict[str, str]:
    """sync_id → job_id of `sync.run` jobs in these states (few: only unfinished ones)."""
    stmt = select(Job.job_id, Job.payload).where(
        Job.kind == JOB_KIND, Job.status.in_(statuses), *conditions
    )
    return {payload.get("sync_id"): job_id for job_id, payload in session.execute(stmt)}


def queued_job(session: Session, sync_id: str) -> str | None:
    """The id of a run of this sync that is waiting for a worker, if there is one."""
    return _job_sync_ids(session, ("queued",)).get(sync_id)


def cancel_queued(session: Session, namespace_id: str, sync_id: str) -> None:
    """Drop runs of a sync that have not started (a running one notices by itself)."""
    session.execute(
        update(Job)
        .where(
            Job.namespace_id == namespace_id,
            Job.kind == JOB_KIND,
            Job.status == "queued",
            Job.payload["sync_id"].as_string() == sync_id,
        )
        .values(status="done", last_error="sync deleted")
    )


def _due(now: dt.datetime) -> list[ColumnElement[bool]]:
    return [Sync.status == "ACTIVE", Sync.sync_mode == "continuous", Sync.next_run_at <= now]


def any_due(session: Session, now: dt.datetime) -> bool:
    """Whether any continuous sync's next run is due (a read, for the poller to ask first)."""
    return session.scalar(select(Sync.sync_id).where(*_due(now)).limit(1)) is not None


def due_syncs(session: Session, now: dt.datetime) -> list[Sync]:
    """Continuous, active syncs whose next run is due and that have none queued or running."""
    stmt = select(Sync).where(*_due(now))
    if session.get_bind().dialect.name == "postgresql":
        # Two pollers in different processes each skip what the other is enqueueing.
        stmt = stmt.with_for_update(skip_locked=True)
    busy = _job_sync_ids(session, ("queued", "running"))
    return [s for s in session.scalars(stmt) if s.sync_id not in busy]


def known_keys(session: Session, sync_id: str, keys: Sequence[str]) -> set[tuple[str, str]]:
    """The (key, ETag) pairs among `keys` that this sync has already taken."""
    if not keys:
        return set()
    rows = session.execute(
        select(SyncKey.key, SyncKey.etag).where(SyncKey.sync_id == sync_id, SyncKey.key.in_(keys))
    )
    return {(k, e) for k, e in rows}


def claim_keys(session: Session, rows: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """Insert key rows, skipping those already there; returns the (sync, key, ETag) inserted."""
    # On PostgreSQL a row another open transaction is inserting makes this wait for it, then
    # skip it; on SQLite writers are serialised. Either way exactly one claimant wins.
    if not rows:
        return set()
    table = table_of(SyncKey)
    insert_fn: Any = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = (
        insert_fn(table)
        .values(rows)
        .on_conflict_do_nothing()
        .returning(table.c.sync_id, table.c.key, table.c.etag)
    )
    return {(s, k, e) for s, k, e in session.execute(stmt)}


_SYNC_KEYS = table_of(SyncKey)
_SET_OBJECT = (
    update(_SYNC_KEYS)
    .where(
        _SYNC_KEYS.c.sync_id == bindparam("s_id"),
        _SYNC_KEYS.c.key == bindparam("k"),
        _SYNC_KEYS.c.etag == bindparam("e"),
    )
    .values(object_id=bindparam("o_id"))
)


def set_objects(session: Session, rows: list[tuple[str, str, str, str]]) -> None:
    """Record the object each claimed (sync, key, ETag) became."""
    if rows:
        params = [{"s_id": s, "k": k, "e": e, "o_id": o} for s, k, e, o in rows]
        session.execute(_SET_OBJECT, params)


def add_counts(session: Session, sync_id: str, **deltas: int) -> None:
    """Add to a sync's counters in SQL, so overlapping runs never lose each other's counts."""
    values = {name: getattr(Sync, name) + n for name, n in deltas.items() if n}
    if values:
        session.execute(update(Sync).where(Sync.sync_id == sync_id).values(**values))


def unbatched(session: Session, sync_id: str, namespace_id: str, limit: int) -> list[str]:
    """Registered objects of a sync not yet in a batch (objects deleted since are left out)."""
    stmt = (
        select(SyncKey.object_id)
        .join(Object, Object.object_id == SyncKey.object_id)
        .where(
            SyncKey.sync_id == sync_id,
            SyncKey.batch_id.is_(None),
            SyncKey.object_id.is_not(None),
            Object.namespace_id == namespace_id,
        )
        .order_by(SyncKey.object_id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(of=SyncKey, skip_locked=True)
    return [o for o in session.scalars(stmt) if o is not None]


def set_batch(session: Session, sync_id: str, object_ids: list[str], batch_id: str) -> None:
    session.execute(
        update(SyncKey)
        .where(SyncKey.sync_id == sync_id, SyncKey.object_id.in_(object_ids))
        .values(batch_id=batch_id)
    )
