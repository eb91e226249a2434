"""Collections and documents over HTTP, and an object's documents (lineage)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response, StreamingResponse

from assay.backends.blob.base import BlobNotFound
from assay.collections import service
from assay.collections.schemas import (
    CollectionCreate,
    CollectionDeleted,
    CollectionOut,
    DocumentListRequest,
    DocumentOut,
)
from assay.deps import PageQuery, ReadScope, WriteScope
from assay.errors import NotFound
from assay.kit import content_types
from assay.kit.routing import StrictJsonRoute
from assay.kit.schemas import ListRequest, Page, Pagination

router = APIRouter(prefix="/v1/collections", tags=["collections"], route_class=StrictJsonRoute)
lineage_router = APIRouter(tags=["collections"], route_class=StrictJsonRoute)
IncludeVectors = Annotated[bool, Query(description="add each document's feature vectors")]


@router.post("", response_model=CollectionOut)
async def create_collection(body: CollectionCreate, scope: WriteScope) -> CollectionOut:
    """A collection fed by some buckets through one extractor."""
    ctx = scope.ctx
    return await ctx.db.write(lambda s: service.create(s, ctx.registry, scope.namespace_id, body))


@router.get("", response_model=Page[CollectionOut])
async def list_collections(scope: ReadScope, page: PageQuery) -> Page[CollectionOut]:
    """Collections of the namespace."""
    return await _list(scope, page.limit, page.cursor)


@router.post("/list", response_model=Page[CollectionOut])
async def list_collections_post(body: ListRequest, scope: ReadScope) -> Page[CollectionOut]:
    """The hosted product's list form."""
    return await _list(scope, body.limit, body.cursor)


async def _list(scope: ReadScope, limit: int, cursor: str | None) -> Page[CollectionOut]:
    ctx = scope.ctx
    rows, nxt, total = await ctx.db.read(
        lambda s: service.list_page(
            s, ctx.registry, scope.namespace_id, limit=limit, cursor=cursor
        ),
        heavy=True,
    )
    pagination = Pagination(limit=limit, next_cursor=nxt)
    return Page(results=rows, pagination=pagination, total_count=total)


@router.get("/{collection_identifier}", response_model=CollectionOut)
async def get_collection(collection_identifier: str, scope: ReadScope) -> CollectionOut:
    """One collection, by id or name."""
    ctx = scope.ctx
    return await ctx.db.read(
        lambda s: service.get(s, ctx.registry, scope.namespace_id, collection_identifier)
    )


@router.delete("/{collection_identifier}", response_model=CollectionDeleted)
async def delete_collection(collection_identifier: str, scope: WriteScope) -> CollectionDeleted:
    """Delete a collection and its documents."""
    collection_id = await scope.ctx.db.write(
        lambda s: service.delete(s, scope.namespace_id, collection_identifier)
    )
    scope.ctx.searcher.indexes.drop([collection_id])
    return CollectionDeleted(collection_id=collection_id)


@router.get("/{collection_identifier}/documents", response_model=Page[DocumentOut])
async def list_documents(
    collection_identifier: str,
    scope: ReadScope,
    page: PageQuery,
    include_vectors: IncludeVectors = False,
) -> Page[DocumentOut]:
    """Documents of a collection, in creation order."""
    body = DocumentListRequest(limit=page.limit, cursor=page.cursor, return_vectors=include_vectors)
    return await _documents(scope, collection_identifier, body)


@router.post("/{collection_identifier}/documents/list", response_model=Page[DocumentOut])
async def list_documents_post(
    collection_identifier: str, body: DocumentListRequest, scope: ReadScope
) -> Page[DocumentOut]:
    """The hosted product's list form, with filters (`metadata.x`, `source.object_id`, ...)."""
    return await _documents(scope, collection_identifier, body)


async def _documents(
    scope: ReadScope, collection_identifier: str, body: DocumentListRequest
) -> Page[DocumentOut]:
    rows, nxt = await scope.ctx.db.read(
        lambda s: service.documents_page(
            s,
            scope.namespace_id,
            collection_identifier,
            limit=body.limit,
            cursor=body.cursor,
            include_vectors=body.return_vectors,
            filters=body.filters,
        ),
        heavy=True,
    )
    return Page(results=rows, pagination=Pagination(limit=body.limit, next_cursor=nxt))


@router.get("/{collection_identifier}/documents/{document_id}", response_model=DocumentOut)
async def get_document(
    collection_identifier: str,
    document_id: str,
    scope: ReadScope,
    include_vectors: IncludeVectors = False,
) -> DocumentOut:
    """One document with its lineage."""
    return await scope.ctx.db.read(
        lambda s: service.document(
            s, scope.namespace_id, collection_identifier, document_id, include_vectors
        )
    )


_JPEG: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/jpeg": {}}, "description": "The thumbnail's bytes"},
}


@router.get(
    "/{collection_identifier}/documents/{document_id}/thumbnail",
    response_class=Response,
    responses=_JPEG,
)
async def get_thumbnail(collection_identifier: str, document_id: str, scope: ReadScope) -> Response:
    """The keyframe thumbnail (JPEG) of a video segment document; 404 when it has none."""
    ctx = scope.ctx
    thumb = await ctx.db.read(
        lambda s: service.thumbnail(s, scope.namespace_id, collection_identifier, document_id)
    )
    try:
        chunks = await ctx.keeper.read_range(scope.namespace_id, thumb.storage_key, 0, None)
    except BlobNotFound as exc:
        raise NotFound(f"the thumbnail of document '{document_id}' is missing") from exc
    media_type, headers = content_types.download_headers(thumb.content_type, None)
    headers |= {"ETag": f'"{thumb.sha256}"', "Cache-Control": "private, max-age=86400"}
    return StreamingResponse(chunks, media_type=media_type, headers=headers)


@lineage_router.get("/v1/objects/{object_id}/documents", response_model=list[DocumentOut])
async def object_documents(
    object_id: str, scope: ReadScope, include_vectors: IncludeVectors = False
) -> list[DocumentOut]:
    """What an object became, in every collection."""
    return await scope.ctx.db.read(
        lambda s: service.object_documents(s, scope.namespace_id, object_id, include_vectors),
        heavy=True,
    )
