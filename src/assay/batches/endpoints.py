"""Batches over HTTP: create, add objects, submit, follow, cancel, failures, retry."""

from __future__ import annotations

from fastapi import APIRouter

from assay.batches import service
from assay.batches.schemas import (
    BatchAddObjects,
    BatchCreate,
    BatchListItem,
    BatchOut,
    FailuresOut,
    TaskRef,
)
from assay.deps import NamespaceScope, PageQuery, ReadScope, WriteScope
from assay.kit.routing import StrictJsonRoute
from assay.kit.schemas import ListRequest, Page, Pagination

router = APIRouter(
    prefix="/v1/buckets/{bucket_identifier}/batches", tags=["batches"], route_class=StrictJsonRoute
)


@router.post("", response_model=BatchOut)
async def create_batch(bucket_identifier: str, body: BatchCreate, scope: WriteScope) -> BatchOut:
    """Group objects of the bucket into a DRAFT batch."""
    return await scope.ctx.db.write(
        lambda s: service.create(s, scope.namespace_id, bucket_identifier, body.object_ids)
    )


@router.get("", response_model=Page[BatchListItem])
async def list_batches(
    bucket_identifier: str, scope: ReadScope, page: PageQuery
) -> Page[BatchListItem]:
    """Batches of the bucket, newest first."""
    return await _list(scope, bucket_identifier, page.limit, page.cursor)


@router.post("/list", response_model=Page[BatchListItem])
async def list_batches_post(
    bucket_identifier: str, body: ListRequest, scope: ReadScope
) -> Page[BatchListItem]:
    """The hosted product's list form."""
    return await _list(scope, bucket_identifier, body.limit, body.cursor)


async def _list(
    scope: NamespaceScope, bucket_identifier: str, limit: int, cursor: str | None
) -> Page[BatchListItem]:
    rows, nxt, total = await scope.ctx.db.read(
        lambda s: service.list_page(
            s, scope.namespace_id, bucket_identifier, limit=limit, cursor=cursor
        ),
        heavy=True,
    )
    pagination = Pagination(limit=limit, next_cursor=nxt)
    return Page(results=rows, pagination=pagination, total_count=total)


@router.get("/{batch_id}", response_model=BatchOut)
async def get_batch(bucket_identifier: str, batch_id: str, scope: ReadScope) -> BatchOut:
    """Status and live progress."""
    return await scope.ctx.db.read(
        lambda s: service.get(s, scope.namespace_id, bucket_identifier, batch_id)
    )


@router.post("/{batch_id}/objects", response_model=BatchOut)
async def add_batch_objects(
    bucket_identifier: str, batch_id: str, body: BatchAddObjects, scope: WriteScope
) -> BatchOut:
    """Add objects while the batch is DRAFT."""
    return await scope.ctx.db.write(
        lambda s: service.add_objects(
            s, scope.namespace_id, bucket_identifier, batch_id, body.object_ids
        )
    )


@router.post("/{batch_id}/submit", response_model=TaskRef)
async def submit_batch(bucket_identifier: str, batch_id: str, scope: WriteScope) -> TaskRef:
    """Queue the batch for extraction; poll the batch or its task."""
    return await scope.ctx.db.write(
        lambda s: service.submit(s, scope.namespace_id, bucket_identifier, batch_id)
    )


@router.post("/{batch_id}/cancel", response_model=BatchOut)
async def cancel_batch(bucket_identifier: str, batch_id: str, scope: WriteScope) -> BatchOut:
    """Stop a QUEUED or PROCESSING batch."""
    return await scope.ctx.db.write(
        lambda s: service.cancel(s, scope.namespace_id, bucket_identifier, batch_id)
    )


@router.get("/{batch_id}/failures", response_model=FailuresOut)
async def batch_failures(bucket_identifier: str, batch_id: str, scope: ReadScope) -> FailuresOut:
    """Each failed object with its error type, message and attempts."""
    return await scope.ctx.db.read(
        lambda s: service.failures(s, scope.namespace_id, bucket_identifier, batch_id), heavy=True
    )


@router.post("/{batch_id}/retry", response_model=TaskRef)
async def retry_batch(bucket_identifier: str, batch_id: str, scope: WriteScope) -> TaskRef:
    """Reprocess only the failed objects."""
    return await scope.ctx.db.write(
        lambda s: service.retry(s, scope.namespace_id, bucket_identifier, batch_id)
    )
