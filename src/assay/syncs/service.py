"""Sync use-cases: configure an S3 source for a bucket, pause, resume, trigger, delete; and
the bookkeeping a run does in its transactions (counters, errors, auto-submitted batches)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import anyio
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from assay.batches import service as batches
from assay.errors import Conflict, NotFound, ValidationFailed
from assay.jobs import repository as jobs
from assay.kit.db import utcnow
from assay.kit.fetch import FetchError, checked_url, resolve_checked
from assay.kit.ids import new_id
from assay.kit.paging import SortKey, build_filter, paginate
from assay.models import Sync
from assay.objects.service import BucketRef, find_bucket
from assay.syncs import repository as repo_fns
from assay.syncs.repository import JOB_KIND, SyncRepository
from assay.syncs.schemas import (
    LAST_ERRORS_MAX,
    RunSummary,
    SourceOut,
    SyncCreate,
    SyncKeyError,
    SyncListRequest,
    SyncOut,
    SyncTriggered,
)
from assay.syncs.source import file_properties, pattern_fits

RESOLVE_TIMEOUT_S = 5.0
JOB_ATTEMPTS = 3


async def endpoint_problem(url: str, allow_private: bool) -> str | None:
    """Why the SSRF guard refuses an S3 endpoint, or None when it may be reached."""
    try:
        checked = checked_url(url)
        if not allow_private:
            port = checked.port or (443 if checked.scheme == "https" else 80)
            with anyio.fail_after(RESOLVE_TIMEOUT_S):
                await resolve_checked(checked.host, port, allow_private=False)
    except FetchError as exc:
        return exc.message
    except TimeoutError:
        return "could not resolve the endpoint's host in time"
    return None


# --- use-cases -----------------------------------------------------------------------------


def _bucket_and_sync(
    session: Session, namespace_id: str, bucket_ident: str, sync_id: str
) -> tuple[BucketRef, Sync]:
    bucket = find_bucket(session, namespace_id, bucket_ident)
    sync = SyncRepository(session, namespace_id).get(sync_id, bucket.bucket_id)
    if sync is None:
        raise NotFound(f"sync '{sync_id}' not found")
    return bucket, sync


def _check_mapping(bucket: BucketRef, mapping: dict[str, str]) -> None:
    files = file_properties(bucket.bucket_schema)
    if not files:
        msg = "the bucket has no file property (image, text, json, ...) to sync into"
        raise ValidationFailed.at(["bucket_schema"], msg, "no_file_property")
    for pattern, name in mapping.items():
        where = ("property_mapping", pattern)
        if name not in files:
            known = ", ".join(sorted(files))
            msg = f"'{name}' is not a file property of the bucket (file properties: {known})"
            raise ValidationFailed.at(where, msg, "unknown_property")
        if not pattern_fits(pattern, files[name]):
            msg = f"property '{name}' has type '{files[name]}', which '{pattern}' does not fit"
            raise ValidationFailed.at(where, msg, "type_mismatch")


def create(session: Session, namespace_id: str, bucket_ident: str, body: SyncCreate) -> SyncOut:
    """Create a sync (its endpoint already checked) and queue its first run."""
    bucket = find_bucket(session, namespace_id, bucket_ident)
    _check_mapping(bucket, body.property_mapping)
    src, creds, now = body.source, body.source.credentials, utcnow()
    sync = SyncRepository(session, namespace_id).add(
        Sync(
            sync_id=new_id("sync"),
            namespace_id=namespace_id,
            bucket_id=bucket.bucket_id,
            provider=src.provider,
            source_bucket=src.bucket,
            prefix=src.prefix,
            endpoint_url=src.endpoint_url,
            region=src.region,
            access_key_id=creds.access_key_id if creds else None,
            secret_access_key=creds.secret_access_key if creds else None,
            session_token=creds.session_token if creds else None,
            sync_mode=body.sync_mode,
            status="ACTIVE",
            polling_interval_seconds=body.polling_interval_seconds,
            file_filters=body.file_filters.model_dump(exclude_none=True)
            if body.file_filters
            else {},
            property_mapping=body.property_mapping,
            batch_size=body.batch_size,
            auto_submit=body.auto_submit,
            # A continuous sync is due at once; its first run is queued right here anyway.
            next_run_at=now if body.sync_mode == "continuous" else None,
            created_at=now,
            updated_at=now,
        )
    )
    _enqueue(session, sync)
    return to_out(sync, running=False, warnings=body.warnings())


def _enqueue(session: Session, sync: Sync) -> str:
    payload = {"sync_id": sync.sync_id, "bucket_id": sync.bucket_id}
    return jobs.enqueue(session, sync.namespace_id, JOB_KIND, payload, JOB_ATTEMPTS).job_id


def get(session: Session, namespace_id: str, bucket_ident: str, sync_id: str) -> SyncOut:
    _, sync = _bucket_and_sync(session, namespace_id, bucket_ident, sync_id)
    return to_out(sync, running=bool(repo_fns.running_syncs(session, [sync.sync_id])))


def trigger(session: Session, namespace_id: str, bucket_ident: str, sync_id: str) -> SyncTriggered:
    """Queue a run now (or hand back the one already waiting)."""
    _, sync = _bucket_and_sync(session, namespace_id, bucket_ident, sync_id)
    if sync.status == "PAUSED":
        raise Conflict(f"sync {sync_id} is paused: resume it first")
    job_id = repo_fns.queued_job(session, sync.sync_id) or _enqueue(session, sync)
    return SyncTriggered(sync_id=sync.sync_id, job_id=job_id)


def set_paused(
    session: Session,
    namespace_id: str,
    bucket_ident: str,
    sync_id: str,
    paused: bool,
) -> SyncOut:
    """Pause (queued runs are dropped, a running one stops after its page) or resume."""
    _, sync = _bucket_and_sync(session, namespace_id, bucket_ident, sync_id)
    if paused and sync.status != "PAUSED":
        sync.status = "PAUSED"
        repo_fns.cancel_queued(session, namespace_id, sync.sync_id)
    elif not paused and sync.status == "PAUSED":
        sync.status = "ACTIVE"
        if sync.sync_mode == "continuous":
            sync.next_run_at = utcnow()  # catch up at the next poll
    session.flush()
    return to_out(sync, running=bool(repo_fns.running_syncs(session, [sync.sync_id])))


def delete(session: Session, namespace_id: str, bucket_ident: str, sync_id: str) -> str:
    """Delete a sync and its key records; the objects it created stay in the bucket."""
    _, sync = _bucket_and_sync(session, namespace_id, bucket_ident, sync_id)
    repo_fns.cancel_queued(session, namespace_id, sync.sync_id)
    SyncRepository(session, namespace_id).delete(sync)
    return sync.sync_id


_FILTER_FIELDS: dict[str, Any] = {
    "sync_mode": Sync.sync_mode,
    "status": Sync.status,
    "auto_submit": Sync.auto_submit,
}


def list_page(
    session: Session, namespace_id: str, bucket_ident: str, req: SyncListRequest
) -> tuple[list[SyncOut], str | None, int]:
    """A page of the bucket's syncs (newest first), the next cursor and the total."""
    bucket = find_bucket(session, namespace_id, bucket_ident)
    stmt = (
        SyncRepository(session, namespace_id)
        .scoped()
        .where(Sync.bucket_id == bucket.bucket_id)
        .where(build_filter(req.filters, _FILTER_FIELDS.get))
    )
    key = SortKey(Sync.sync_id, Sync.sync_id)
    rows, nxt = paginate(session, stmt, key, limit=req.limit, cursor=req.cursor)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    running = repo_fns.running_syncs(session, [s.sync_id for s in rows])
    return [to_out(s, running=s.sync_id in running) for s in rows], nxt, total


def enqueue_due(session: Session, now: dt.datetime) -> int:
    """Queue a run of every continuous sync that is due; returns how many were queued."""
    due = repo_fns.due_syncs(session, now)
    for sync in due:
        _enqueue(session, sync)
        # Provisional: the run sets it again when it ends. Keeps a slow run from being re-queued.
        sync.next_run_at = now + dt.timedelta(seconds=sync.polling_interval_seconds)
    session.flush()
    return len(due)


# --- a run's bookkeeping, inside its transactions ------------------------------------------


def save_run(
    session: Session,
    namespace_id: str,
    sync_id: str,
    skipped: int,
    errors: int,
    new_errors: list[dict[str, Any]],
    summary: dict[str, Any] | None = None,
) -> None:
    """Add a run's skips and errors to its sync; at its end (`summary`), record the run too."""
    repo_fns.add_counts(session, sync_id, objects_skipped=skipped, errors=errors)
    sync = SyncRepository(session, namespace_id).get(sync_id)
    if sync is None:  # deleted while it ran
        return
    if new_errors:
        sync.last_errors = [*sync.last_errors, *new_errors][-LAST_ERRORS_MAX:]
    if summary is not None:
        sync.last_run, sync.last_run_at = summary, utcnow()
        if sync.sync_mode == "continuous":
            interval = dt.timedelta(seconds=sync.polling_interval_seconds)
            sync.next_run_at = sync.last_run_at + interval


def submit_unbatched(
    session: Session,
    namespace_id: str,
    sync_id: str,
    bucket_id: str,
    batch_size: int,
    *,
    final: bool,
) -> int:
    """Batch and submit a sync's unbatched objects, `batch_size` at a time (all at the end)."""
    made = 0
    while True:
        ids = repo_fns.unbatched(session, sync_id, namespace_id, batch_size)
        if not ids or (len(ids) < batch_size and not final):
            return made
        batch = batches.create(session, namespace_id, bucket_id, ids)
        batches.submit(session, namespace_id, bucket_id, batch.batch_id)
        repo_fns.set_batch(session, sync_id, ids, batch.batch_id)
        made += 1


def to_out(sync: Sync, *, running: bool, warnings: list[str] | None = None) -> SyncOut:
    """The API view of a sync; credentials only as whether they are set."""
    status = "PAUSED" if sync.status == "PAUSED" else ("RUNNING" if running else "ACTIVE")
    return SyncOut(
        sync_id=sync.sync_id,
        sync_config_id=sync.sync_id,
        bucket_id=sync.bucket_id,
        namespace_id=sync.namespace_id,
        source=SourceOut(
            provider=sync.provider,
            bucket=sync.source_bucket,
            prefix=sync.prefix,
            endpoint_url=sync.endpoint_url,
            region=sync.region,
            credentials_set=bool(sync.access_key_id),
        ),
        sync_mode=sync.sync_mode,  # type: ignore[arg-type]
        status=status,  # type: ignore[arg-type]
        polling_interval_seconds=sync.polling_interval_seconds,
        file_filters=sync.file_filters,
        property_mapping=sync.property_mapping,
        batch_size=sync.batch_size,
        auto_submit=sync.auto_submit,
        last_run_at=sync.last_run_at,
        next_run_at=sync.next_run_at,
        objects_created=sync.objects_created,
        objects_skipped=sync.objects_skipped,
        errors=sync.errors,
        last_errors=[SyncKeyError.model_validate(e) for e in sync.last_errors],
        last_run=RunSummary.model_validate(sync.last_run) if sync.last_run else None,
        created_at=sync.created_at,
        updated_at=sync.updated_at,
        warnings=warnings or [],
    )
