"""Batch use-cases: group objects, submit them for extraction, follow and retry them."""

from __future__ import annotations

from sqlalchemy.orm import Session

from assay.batches import states
from assay.batches.repository import BatchRepository, Sized
from assay.batches.schemas import (
    BatchListItem,
    BatchOut,
    FailureOut,
    FailuresOut,
    TaskRef,
    progress_of,
)
from assay.collections.repository import CollectionRepository
from assay.errors import Conflict, NotFound, ValidationFailed
from assay.jobs import repository as jobs
from assay.kit.ids import new_id
from assay.kit.paging import SortKey, count_all, paginate
from assay.models import Batch, Task
from assay.objects.service import find_bucket

CHUNK = 50  # objects per job: small enough for progress to move, big enough to amortise
# Objects of text alone, a page at most, go 256 to a job: each takes a few ms of model time,
# so a job of 50 spent as much on its own claiming, loading and recording as on the model.
# (A small image costs as much model time as a large one: bytes say nothing there.)
SMALL_CHUNK, SMALL_OBJECT_BYTES = 256, 16 * 1024
JOB_BYTES = 256 * 1024 * 1024  # blob bytes per job, at most (a bigger object has a job alone)
JOB_KIND = "batch.extract"
TASK_TYPE = "api_buckets_batches_submit"


def _repo(session: Session, namespace_id: str, bucket_ident: str) -> BatchRepository:
    bucket = find_bucket(session, namespace_id, bucket_ident)
    return BatchRepository(session, namespace_id, bucket.bucket_id)


def _batch(repo: BatchRepository, batch_id: str) -> Batch:
    batch = repo.get(batch_id)
    if batch is None:
        raise NotFound(f"batch '{batch_id}' not found")
    return batch


def _check_objects(repo: BatchRepository, object_ids: list[str]) -> None:
    missing = repo.missing_objects(object_ids)
    if missing:
        shown = ", ".join(missing[:20]) + (" …" if len(missing) > 20 else "")
        raise ValidationFailed(
            f"unknown object ids in this bucket: {shown}",
            [{"loc": ["object_ids"], "msg": "unknown object ids", "type": "unknown_objects"}],
            unknown_object_ids=missing,
        )


def create(
    session: Session,
    namespace_id: str,
    bucket_ident: str,
    object_ids: list[str],
) -> BatchOut:
    repo = _repo(session, namespace_id, bucket_ident)
    _check_objects(repo, object_ids)
    batch = Batch(batch_id=new_id("btch"), namespace_id=namespace_id, bucket_id=repo.bucket_id)
    session.add(batch)
    session.flush()
    repo.add_items(batch.batch_id, object_ids)
    return to_out(repo, batch)


def add_objects(
    session: Session,
    namespace_id: str,
    bucket_ident: str,
    batch_id: str,
    object_ids: list[str],
) -> BatchOut:
    repo = _repo(session, namespace_id, bucket_ident)
    batch = _batch(repo, batch_id)
    if batch.status != "DRAFT":
        raise Conflict(f"objects can only be added while the batch is DRAFT (it is {batch.status})")
    _check_objects(repo, object_ids)
    repo.add_items(batch_id, object_ids)
    return to_out(repo, batch)


def submit(session: Session, namespace_id: str, bucket_ident: str, batch_id: str) -> TaskRef:
    """DRAFT → QUEUED: a task to poll, and one job per chunk of objects."""
    repo = _repo(session, namespace_id, bucket_ident)
    batch = _batch(repo, batch_id)
    if batch.status != "DRAFT":
        raise Conflict(f"batch {batch_id} was already submitted (it is {batch.status})")
    objects = repo.object_sizes(batch_id)
    if not objects:
        raise ValidationFailed.at(["object_ids"], "the batch has no objects to process")
    batch.extractors = [
        {
            "collection_id": c.collection_id,
            "feature_extractor_name": c.extractor_name,
            "version": c.extractor_version,
            "params": c.params,
            "input_mappings": c.input_mappings or {},
        }
        for c in CollectionRepository(session, namespace_id).for_bucket(repo.bucket_id)
    ]
    task = Task(
        task_id=new_id("task"), namespace_id=namespace_id, task_type=TASK_TYPE, subject_id=batch_id
    )
    session.add(task)
    batch.task_id = task.task_id
    states.move(session, batch, "QUEUED")
    _enqueue(session, batch, objects)
    return TaskRef(
        task_id=task.task_id,
        task_type=TASK_TYPE,
        status="QUEUED",
        batch_id=batch_id,
        estimated_wait_minutes=0,
    )


def _enqueue(session: Session, batch: Batch, objects: list[Sized]) -> None:
    for object_ids in job_chunks(objects):
        payload = {
            "batch_id": batch.batch_id,
            "bucket_id": batch.bucket_id,
            "object_ids": object_ids,
        }
        jobs.enqueue(session, batch.namespace_id, JOB_KIND, payload)


def job_chunks(objects: list[Sized]) -> list[list[str]]:
    """Objects cut into jobs of at most CHUNK objects (SMALL_CHUNK while they are all small
    texts) and JOB_BYTES, smallest first.

    Ordered by size, a job's inputs are alike: a text model pads short texts to their
    neighbours' length, not to a long outlier's, and large media never hold up many small
    objects nor share a job's scratch space with each other. Ties keep their order.
    """
    chunks: list[list[str]] = []
    current: list[str] = []
    held = 0
    for object_id, size, text_only in sorted(objects, key=lambda o: o.size):
        most = SMALL_CHUNK if text_only and size <= SMALL_OBJECT_BYTES else CHUNK
        if current and (len(current) >= most or held + size > JOB_BYTES):
            chunks.append(current)
            current, held = [], 0
        current.append(object_id)
        held += size
    if current:
        chunks.append(current)
    return chunks


def cancel(session: Session, namespace_id: str, bucket_ident: str, batch_id: str) -> BatchOut:
    repo = _repo(session, namespace_id, bucket_ident)
    batch = _batch(repo, batch_id)
    states.move(session, batch, "CANCELED", reason="canceled by request")
    jobs.cancel_for(session, namespace_id, batch_id)
    return to_out(repo, batch)


def retry(session: Session, namespace_id: str, bucket_ident: str, batch_id: str) -> TaskRef:
    """Reprocess only the failed objects of a finished batch."""
    repo = _repo(session, namespace_id, bucket_ident)
    batch = _batch(repo, batch_id)
    failed = repo.object_sizes(batch_id, "FAILED")
    if not failed:
        raise Conflict(f"batch {batch_id} has no failed objects to retry")
    states.move(session, batch, "QUEUED")
    ids = [o.object_id for o in failed]
    repo.set_items(batch_id, ids, status="PENDING", error_type=None, message=None, attempts=0)
    _enqueue(session, batch, failed)
    return TaskRef(
        task_id=batch.task_id or "",
        task_type=TASK_TYPE,
        status="QUEUED",
        batch_id=batch_id,
        estimated_wait_minutes=0,
    )


def get(session: Session, namespace_id: str, bucket_ident: str, batch_id: str) -> BatchOut:
    repo = _repo(session, namespace_id, bucket_ident)
    return to_out(repo, _batch(repo, batch_id))


def failures(session: Session, namespace_id: str, bucket_ident: str, batch_id: str) -> FailuresOut:
    repo = _repo(session, namespace_id, bucket_ident)
    _batch(repo, batch_id)
    rows = [
        FailureOut(
            object_id=i.object_id, error_type=i.error_type, message=i.message, attempts=i.attempts
        )
        for i in repo.failures(batch_id)
    ]
    return FailuresOut(batch_id=batch_id, results=rows, total_count=len(rows))


def list_page(
    session: Session, namespace_id: str, bucket_ident: str, *, limit: int, cursor: str | None
) -> tuple[list[BatchListItem], str | None, int]:
    repo = _repo(session, namespace_id, bucket_ident)
    rows, nxt = paginate(
        session, repo.scoped(), SortKey(Batch.batch_id, Batch.batch_id), limit=limit, cursor=cursor
    )
    items = [BatchListItem.model_validate(b) for b in rows]
    return items, nxt, count_all(session, repo.scoped())


def to_out(repo: BatchRepository, batch: Batch) -> BatchOut:
    counts = repo.counts(batch.batch_id)
    return BatchOut(
        batch_id=batch.batch_id,
        bucket_id=batch.bucket_id,
        status=batch.status,
        object_ids=repo.object_ids(batch.batch_id),
        task_id=batch.task_id,
        progress=progress_of(counts),
        error_summary=repo.error_summary(batch.batch_id) if counts.get("FAILED") else {},
        error=batch.error,
        collections=[e["collection_id"] for e in batch.extractors],
        created_at=batch.created_at,
        started_at=batch.started_at,
        completed_at=batch.completed_at,
        lifecycle_reason=batch.error,
    )
