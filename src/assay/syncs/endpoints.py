"""Sync configurations over HTTP: an S3 source feeding a bucket."""

from __future__ import annotations

from fastapi import APIRouter

from assay.deps import NamespaceScope, PageQuery, ReadScope, WriteScope
from assay.errors import ValidationFailed
from assay.kit.routing import StrictJsonRoute
from assay.kit.schemas import Pagination
from assay.syncs import service
from assay.syncs.schemas import (
    SyncCreate,
    SyncDeleted,
    SyncListRequest,
    SyncOut,
    SyncPage,
    SyncTriggered,
)

router = APIRouter(
    prefix="/v1/buckets/{bucket_identifier}/syncs", tags=["syncs"], route_class=StrictJsonRoute
)


@router.post("", response_model=SyncOut)
async def create_sync(bucket_identifier: str, body: SyncCreate, scope: WriteScope) -> SyncOut:
    """Sync a bucket from S3; the first run is queued at once (credentials are never shown)."""
    url = body.source.endpoint_url
    if url is not None:
        problem = await service.endpoint_problem(url, scope.ctx.settings.allow_private_urls)
        if problem:
            where = ["source", "endpoint_url"]
            raise ValidationFailed.at(where, problem, "url_not_allowed")
    return await scope.ctx.db.write(
        lambda s: service.create(s, scope.namespace_id, bucket_identifier, body)
    )


@router.get("", response_model=SyncPage)
async def list_syncs(bucket_identifier: str, scope: ReadScope, page: PageQuery) -> SyncPage:
    """The bucket's syncs, newest first."""
    return await _list(
        scope, bucket_identifier, SyncListRequest(limit=page.limit, cursor=page.cursor)
    )


@router.post("/list", response_model=SyncPage)
async def list_syncs_post(
    bucket_identifier: str, body: SyncListRequest, scope: ReadScope
) -> SyncPage:
    """The hosted product's list form (filters on `sync_mode`, `status`, `auto_submit`)."""
    return await _list(scope, bucket_identifier, body)


@router.get("/{sync_id}", response_model=SyncOut)
async def get_sync(bucket_identifier: str, sync_id: str, scope: ReadScope) -> SyncOut:
    """One sync: its source, settings, counters and recent errors."""
    return await scope.ctx.db.read(
        lambda s: service.get(s, scope.namespace_id, bucket_identifier, sync_id)
    )


@router.delete("/{sync_id}", response_model=SyncDeleted)
async def delete_sync(bucket_identifier: str, sync_id: str, scope: WriteScope) -> SyncDeleted:
    """Delete a sync; the objects it registered stay in the bucket."""
    deleted = await scope.ctx.db.write(
        lambda s: service.delete(s, scope.namespace_id, bucket_identifier, sync_id)
    )
    return SyncDeleted(sync_id=deleted)


@router.post("/{sync_id}/trigger", response_model=SyncTriggered)
async def trigger_sync(bucket_identifier: str, sync_id: str, scope: WriteScope) -> SyncTriggered:
    """Queue a run now; a run already waiting is returned instead of a second one."""
    return await scope.ctx.db.write(
        lambda s: service.trigger(s, scope.namespace_id, bucket_identifier, sync_id)
    )


@router.post("/{sync_id}/pause", response_model=SyncOut)
async def pause_sync(bucket_identifier: str, sync_id: str, scope: WriteScope) -> SyncOut:
    """Stop polling; queued runs are dropped and a running one stops after its current page."""
    return await _set_paused(scope, bucket_identifier, sync_id, True)


@router.post("/{sync_id}/resume", response_model=SyncOut)
async def resume_sync(bucket_identifier: str, sync_id: str, scope: WriteScope) -> SyncOut:
    """Poll again (a continuous sync is due at once); a one-time sync waits for a trigger."""
    return await _set_paused(scope, bucket_identifier, sync_id, False)


async def _set_paused(
    scope: NamespaceScope, bucket_identifier: str, sync_id: str, paused: bool
) -> SyncOut:
    return await scope.ctx.db.write(
        lambda s: service.set_paused(s, scope.namespace_id, bucket_identifier, sync_id, paused)
    )


async def _list(scope: NamespaceScope, bucket_identifier: str, req: SyncListRequest) -> SyncPage:
    rows, nxt, total = await scope.ctx.db.read(
        lambda s: service.list_page(s, scope.namespace_id, bucket_identifier, req), heavy=True
    )
    pagination = Pagination(limit=req.limit, next_cursor=nxt)
    return SyncPage(results=rows, pagination=pagination, total=total, total_count=total)
