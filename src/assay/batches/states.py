"""The batch lifecycle: the one table of legal transitions and the only writer of `status`.

    DRAFT ──submit──▶ QUEUED ──first work──▶ PROCESSING ──all done──▶ COMPLETED | FAILED
                        │                        │
                        └────────cancel──────────┴──▶ CANCELED

A retry of failed objects sends a finished batch back to QUEUED.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from assay.errors import Conflict
from assay.events.outbox import emit
from assay.kit.db import utcnow
from assay.kit.logs import event_on_commit
from assay.models import Batch, Task

log = logging.getLogger("assay.batches")

TRANSITIONS: dict[str, frozenset[str]] = {
    "DRAFT": frozenset({"QUEUED"}),
    "QUEUED": frozenset({"PROCESSING", "CANCELED", "COMPLETED", "FAILED"}),
    "PROCESSING": frozenset({"COMPLETED", "FAILED", "CANCELED"}),
    "COMPLETED": frozenset({"QUEUED"}),  # retry of the failed objects
    "FAILED": frozenset({"QUEUED"}),
    "CANCELED": frozenset(),
}
TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELED"})
_EVENTS = {
    "QUEUED": "batch.queued",
    "PROCESSING": "batch.processing",
    "COMPLETED": "batch.completed",
    "FAILED": "batch.failed",
    "CANCELED": "batch.canceled",
}
# The task a caller polls mirrors its batch, in the hosted product's status words.
_TASK_STATUS = {
    "QUEUED": "PENDING",
    "PROCESSING": "PROCESSING",
    "COMPLETED": "COMPLETED",
    "FAILED": "FAILED",
    "CANCELED": "CANCELED",
}


class IllegalTransition(Conflict):
    """A status change the lifecycle does not have (409)."""


def can_move(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, frozenset())


def move(session: Session, batch: Batch, target: str, *, reason: str | None = None) -> None:
    """Change a batch's status, stamp its times, mirror its task and record the event."""
    if not can_move(batch.status, target):
        raise IllegalTransition(f"batch {batch.batch_id} cannot go from {batch.status} to {target}")
    now = utcnow()
    batch.status = target
    batch.updated_at = now
    if target == "QUEUED":
        batch.started_at, batch.completed_at, batch.error = None, None, None
    elif target == "PROCESSING":
        batch.started_at = batch.started_at or now
    elif target in TERMINAL:
        batch.completed_at = now
        batch.error = reason
    if batch.task_id:
        task = session.get(Task, batch.task_id)
        if task is not None:
            task.status, task.error, task.updated_at = _TASK_STATUS[target], reason, now
    data = {"batch_id": batch.batch_id, "bucket_id": batch.bucket_id, "status": target}
    if reason:
        data["reason"] = reason
    emit(session, batch.namespace_id, _EVENTS[target], ("batch", batch.batch_id), data)
    event_on_commit(
        session, log, _EVENTS[target], batch_id=batch.batch_id,
        namespace=batch.namespace_id, reason=reason,
    )  # fmt: skip
