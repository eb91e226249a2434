"""Objects over HTTP: register (one or a batch), get, list, delete, and blob downloads."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header
from fastapi.responses import Response, StreamingResponse

from assay.backends.blob.base import BlobNotFound
from assay.deps import NamespaceScope, PageQuery, ReadScope, WriteScope
from assay.errors import NotFound
from assay.kit import content_types
from assay.kit.ranges import RangeNotSatisfiable, parse_range
from assay.kit.routing import DirectJsonRoute, StrictJsonRoute
from assay.kit.schemas import ListRequest, Page, Pagination
from assay.objects import service
from assay.objects.schemas import (
    ObjectBatchCreate,
    ObjectBatchOut,
    ObjectCreate,
    ObjectOut,
)

router = APIRouter(
    prefix="/v1/buckets/{bucket_identifier}/objects", tags=["objects"], route_class=StrictJsonRoute
)


async def create_object(
    bucket_identifier: str,
    body: ObjectCreate,
    scope: WriteScope,
) -> ObjectOut:
    """Register an object: blobs by URL (fetched through the SSRF guard) or inline content."""
    registrar = scope.ctx.registrar
    bucket = await registrar.bucket(scope.namespace_id, bucket_identifier)
    return await registrar.register_one(bucket, body)


# As `@router.post`, which cannot name a route class; added here to keep the routes' order.
router.add_api_route(
    "",
    create_object,
    methods=["POST"],
    response_model=ObjectOut,
    route_class_override=DirectJsonRoute,
)


async def create_objects_batch(
    bucket_identifier: str,
    body: ObjectBatchCreate,
    scope: WriteScope,
) -> ObjectBatchOut:
    """Register up to 100 objects; each succeeds or fails on its own."""
    registrar = scope.ctx.registrar
    bucket = await registrar.bucket(scope.namespace_id, bucket_identifier)
    succeeded, failed = await registrar.register_many(bucket, body.objects)
    return ObjectBatchOut(
        succeeded=succeeded,
        failed=failed,
        succeeded_count=len(succeeded),
        failed_count=len(failed),
    )


router.add_api_route(
    "/batch",
    create_objects_batch,
    methods=["POST"],
    response_model=ObjectBatchOut,
    route_class_override=DirectJsonRoute,
)


@router.get("", response_model=Page[ObjectOut])
async def list_objects(
    bucket_identifier: str, scope: ReadScope, page: PageQuery
) -> Page[ObjectOut]:
    """Objects of a bucket, newest first."""
    return await _list(scope, bucket_identifier, ListRequest(limit=page.limit, cursor=page.cursor))


@router.post("/list", response_model=Page[ObjectOut])
async def list_objects_post(
    bucket_identifier: str, body: ListRequest, scope: ReadScope
) -> Page[ObjectOut]:
    """Objects of a bucket with filters and sort."""
    return await _list(scope, bucket_identifier, body)


async def _list(scope: NamespaceScope, bucket_identifier: str, req: ListRequest) -> Page[ObjectOut]:
    rows, nxt = await scope.ctx.db.read(
        lambda s: service.list_page(s, scope.namespace_id, bucket_identifier, req), heavy=True
    )
    return Page(results=rows, pagination=Pagination(limit=req.limit, next_cursor=nxt))


@router.get("/{object_id}", response_model=ObjectOut)
async def get_object(bucket_identifier: str, object_id: str, scope: ReadScope) -> ObjectOut:
    """One object with its blobs."""
    return await scope.ctx.db.read(
        lambda s: service.get(s, scope.namespace_id, bucket_identifier, object_id)
    )


@router.delete("/{object_id}", status_code=204, response_class=Response)
async def delete_object(bucket_identifier: str, object_id: str, scope: WriteScope) -> Response:
    """Delete an object, its blobs and its documents (204, as the hosted product answers)."""
    await scope.ctx.registrar.delete(scope.namespace_id, bucket_identifier, object_id)
    return Response(status_code=204)


_BYTES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/octet-stream": {}}, "description": "The blob's bytes"},
    206: {"content": {"application/octet-stream": {}}, "description": "The requested byte range"},
    416: {"description": "Range not satisfiable"},
}


@router.get("/{object_id}/blobs/{blob_id}/content", response_class=Response, responses=_BYTES)
async def download_blob(
    bucket_identifier: str,
    object_id: str,
    blob_id: str,
    scope: ReadScope,
    range_: Annotated[str | None, Header(alias="Range")] = None,
) -> Response:
    """A blob's bytes; honours a single `Range: bytes=...`. Never rendered by a browser: sent
    with `nosniff` and a sandboxing CSP, and active types (HTML, SVG, XML, JS) as attachments."""
    blob = await scope.ctx.db.read(
        lambda s: service.blob_for_download(
            s, scope.namespace_id, bucket_identifier, object_id, blob_id
        )
    )
    size = blob.size_bytes
    media_type, headers = content_types.download_headers(blob.content_type, blob.filename)
    headers |= {"Accept-Ranges": "bytes", "ETag": f'"{blob.sha256}"'}
    try:
        span = parse_range(range_, size)
    except RangeNotSatisfiable:
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    start, end = span if span else (0, size - 1)
    try:
        chunks = await scope.ctx.keeper.read_range(
            scope.namespace_id, blob.storage_key, start, end if size else None
        )
    except BlobNotFound as exc:
        raise NotFound(f"the bytes of blob '{blob_id}' are missing from the blob store") from exc
    headers["Content-Length"] = str(end - start + 1 if size else 0)
    if span:
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return StreamingResponse(
        chunks, status_code=206 if span else 200, media_type=media_type, headers=headers
    )
