from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import Field

from assay.kit.schemas import RequestSchema, Schema

MAX_OBJECTS = 10_000


class BatchCreate(RequestSchema):
    object_ids: list[str] = Field(default_factory=list, max_length=MAX_OBJECTS)


class BatchAddObjects(RequestSchema):
    object_ids: list[str] = Field(min_length=1, max_length=MAX_OBJECTS)


class Progress(Schema):
    total: int = 0
    pending: int = 0
    processing: int = 0
    succeeded: int = 0
    failed: int = 0
    percent: float = 0.0


class BatchListItem(Schema):
    """A batch as lists show it; with the fields the hosted product's batch model requires."""

    batch_id: str
    bucket_id: str
    status: str
    task_id: str | None = None
    created_at: dt.datetime
    completed_at: dt.datetime | None = None
    lifecycle: str | None = None
    lifecycle_reason: str | None = None
    max_node_death_resubmits: int = 5
    max_deploy_resubmits: int = 5


class BatchOut(BatchListItem):
    object_ids: list[str]
    progress: Progress
    error_summary: dict[str, int] = Field(default_factory=dict)
    error: str | None = None
    collections: list[str] = Field(default_factory=list)
    started_at: dt.datetime | None = None


class TaskRef(Schema):
    """The hosted product's answer to an asynchronous call."""

    task_id: str
    task_type: str
    status: str
    estimated_wait_minutes: int | None = None
    batch_id: str | None = None


class FailureOut(Schema):
    object_id: str
    error_type: str | None
    message: str | None
    attempts: int


class FailuresOut(Schema):
    batch_id: str
    results: list[FailureOut]
    total_count: int


def progress_of(counts: dict[str, Any]) -> Progress:
    total = sum(counts.values())
    done = counts.get("SUCCEEDED", 0) + counts.get("FAILED", 0)
    return Progress(
        total=total,
        pending=counts.get("PENDING", 0),
        processing=counts.get("PROCESSING", 0),
        succeeded=counts.get("SUCCEEDED", 0),
        failed=counts.get("FAILED", 0),
        percent=round(100.0 * done / total, 1) if total else 0.0,
    )
