"""Task look-ups, scoped to the caller's namespace."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from assay.batches.repository import BatchRepository
from assay.batches.schemas import progress_of
from assay.errors import NotFound
from assay.models import Batch, Task
from assay.tasks.schemas import TaskOut


def get(session: Session, namespace_id: str, task_id: str) -> TaskOut:
    stmt = select(Task).where(Task.namespace_id == namespace_id, Task.task_id == task_id)
    task = session.scalar(stmt)
    if task is None:
        raise NotFound(f"task '{task_id}' not found")
    out = TaskOut.model_validate(task)
    batch = session.get(Batch, task.subject_id) if task.subject_id else None
    if batch is not None and batch.namespace_id == namespace_id:
        repo = BatchRepository(session, namespace_id, batch.bucket_id)
        out.progress = progress_of(repo.counts(batch.batch_id))
        out.result = {"batch_id": batch.batch_id, "batch_status": batch.status}
    return out
