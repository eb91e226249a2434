"""Buckets over HTTP."""

from __future__ import annotations

from fastapi import APIRouter

from assay.buckets import service
from assay.buckets.schemas import BucketCreate, BucketDeleted, BucketOut, BucketPatch
from assay.deps import NamespaceScope, PageQuery, ReadScope, WriteScope
from assay.kit.routing import StrictJsonRoute
from assay.kit.schemas import ListRequest, Page, Pagination

router = APIRouter(prefix="/v1/buckets", tags=["buckets"], route_class=StrictJsonRoute)


@router.post("", response_model=BucketOut)
async def create_bucket(body: BucketCreate, scope: WriteScope) -> BucketOut:
    """Create a schema-validated bucket."""
    return await scope.ctx.db.write(lambda s: service.create(s, scope.namespace_id, body))


@router.get("", response_model=Page[BucketOut])
async def list_buckets(scope: ReadScope, page: PageQuery) -> Page[BucketOut]:
    """Buckets of the namespace."""
    return await _list(scope, page.limit, page.cursor)


@router.post("/list", response_model=Page[BucketOut])
async def list_buckets_post(body: ListRequest, scope: ReadScope) -> Page[BucketOut]:
    """The hosted product's list form."""
    return await _list(scope, body.limit, body.cursor)


async def _list(scope: NamespaceScope, limit: int, cursor: str | None) -> Page[BucketOut]:
    rows, nxt, total = await scope.ctx.db.read(
        lambda s: service.list_page(s, scope.namespace_id, limit=limit, cursor=cursor),
        heavy=True,
    )
    pagination = Pagination(limit=limit, next_cursor=nxt)
    return Page(results=rows, pagination=pagination, total_count=total)


@router.get("/{bucket_identifier}", response_model=BucketOut)
async def get_bucket(bucket_identifier: str, scope: ReadScope) -> BucketOut:
    """One bucket, by id or name."""
    return await scope.ctx.db.read(
        lambda s: service.to_out(service.get_bucket(s, scope.namespace_id, bucket_identifier))
    )


@router.patch("/{bucket_identifier}", response_model=BucketOut)
async def patch_bucket(
    bucket_identifier: str,
    body: BucketPatch,
    scope: WriteScope,
) -> BucketOut:
    """Rename a bucket or change its description and metadata."""
    out = await scope.ctx.db.write(
        lambda s: service.patch(s, scope.namespace_id, bucket_identifier, body)
    )
    scope.ctx.lookups.clear()
    return out


@router.delete("/{bucket_identifier}", response_model=BucketDeleted)
async def delete_bucket(bucket_identifier: str, scope: WriteScope) -> BucketDeleted:
    """Delete a bucket with all its objects."""
    bucket_id, keys = await scope.ctx.db.write(
        lambda s: service.delete(s, scope.namespace_id, bucket_identifier)
    )
    scope.ctx.lookups.clear()
    await scope.ctx.keeper.remove_unreferenced(scope.namespace_id, keys)
    return BucketDeleted(bucket_id=bucket_id)
