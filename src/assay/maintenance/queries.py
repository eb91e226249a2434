"""Reads the sweeps and backups share; they span domains by design (garbage collection looks
at what every domain still points at), and never run on a request's path."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from assay.batches.service import JOB_KIND as BATCH_JOB
from assay.models import Collection, Document, Job, Upload

CONFIRMED = "CONFIRMED"  # the one upload status whose row is a record, not work in progress
ACTIVE_JOBS = ("queued", "running")
_THUMBNAIL_SHA = Document.content[("thumbnail", "sha256")].as_string()


def extraction_active(
    session: Session, namespace_id: str, since: dt.datetime | None = None
) -> bool:
    """Whether a batch job of the namespace is queued or running, or was touched `since`."""
    busy = Job.status.in_(ACTIVE_JOBS)
    stmt = select(Job.job_id).where(
        Job.namespace_id == namespace_id,
        Job.kind == BATCH_JOB,
        busy if since is None else or_(busy, Job.updated_at >= since),
    )
    return session.scalar(stmt.limit(1)) is not None


def referenced_thumbnails(session: Session, namespace_id: str, shas: set[str]) -> set[str]:
    """Which of these SHA-256s a document of the namespace holds as its thumbnail."""
    sha = _THUMBNAIL_SHA
    stmt = select(sha).where(Document.namespace_id == namespace_id, sha.in_(shas)).distinct()
    return set(session.scalars(stmt))


def all_thumbnails(session: Session) -> Iterator[tuple[str, str]]:
    """(namespace id, SHA-256) of every thumbnail a document holds, each once."""
    stmt = (
        select(Document.namespace_id, _THUMBNAIL_SHA)
        .where(_THUMBNAIL_SHA.is_not(None))
        .distinct()
        .execution_options(yield_per=10_000)
    )
    for namespace_id, sha in session.execute(stmt):
        yield str(namespace_id), str(sha)


def unconfirmed_uploads(session: Session, upload_ids: set[str]) -> set[str]:
    stmt = select(Upload.upload_id).where(
        Upload.upload_id.in_(upload_ids), Upload.status != CONFIRMED
    )
    return set(session.scalars(stmt))


def existing_collections(session: Session, collection_ids: set[str]) -> set[str]:
    if not collection_ids:
        return set()
    stmt = select(Collection.collection_id).where(Collection.collection_id.in_(collection_ids))
    return set(session.scalars(stmt))
