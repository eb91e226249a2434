"""Namespaces over HTTP."""

from __future__ import annotations

from fastapi import APIRouter

from assay.deps import Caller, NamespaceCreator, PageQuery, ReadCaller, WritableNamespace
from assay.kit.routing import StrictJsonRoute
from assay.kit.schemas import ListRequest, Page, Pagination
from assay.namespaces import service
from assay.namespaces.schemas import NamespaceCreate, NamespaceDeleted, NamespaceOut, NamespacePatch

router = APIRouter(prefix="/v1/namespaces", tags=["namespaces"], route_class=StrictJsonRoute)


@router.post("", response_model=NamespaceOut)
async def create_namespace(body: NamespaceCreate, caller: NamespaceCreator) -> NamespaceOut:
    """Create a namespace with its feature extractors."""
    return await caller.ctx.db.write(lambda s: service.create(s, caller.ctx.registry, body))


@router.get("", response_model=Page[NamespaceOut])
async def list_namespaces(page: PageQuery, caller: ReadCaller) -> Page[NamespaceOut]:
    """Namespaces this key may see."""
    return await _list(caller, page.limit, page.cursor)


@router.post("/list", response_model=Page[NamespaceOut])
async def list_namespaces_post(body: ListRequest, caller: ReadCaller) -> Page[NamespaceOut]:
    """The hosted product's list form."""
    return await _list(caller, body.limit, body.cursor)


async def _list(caller: Caller, limit: int, cursor: str | None) -> Page[NamespaceOut]:
    rows, nxt, total = await caller.ctx.db.read(
        lambda s: service.list_page(s, caller.principal, limit=limit, cursor=cursor),
        heavy=True,
    )
    pagination = Pagination(limit=limit, next_cursor=nxt)
    return Page(results=rows, pagination=pagination, total_count=total)


@router.get("/{namespace_identifier}", response_model=NamespaceOut)
async def get_namespace(namespace_identifier: str, caller: ReadCaller) -> NamespaceOut:
    """One namespace, by id or name."""
    return await caller.ctx.db.read(
        lambda s: service.get(s, caller.principal, namespace_identifier)
    )


@router.patch("/{namespace_identifier}", response_model=NamespaceOut)
async def patch_namespace(
    namespace_identifier: str, body: NamespacePatch, scope: WritableNamespace
) -> NamespaceOut:
    """Change a namespace's description."""
    return await scope.ctx.db.write(
        lambda s: service.patch(s, scope.principal, namespace_identifier, body)
    )


@router.delete("/{namespace_identifier}", response_model=NamespaceDeleted)
async def delete_namespace(namespace_identifier: str, scope: WritableNamespace) -> NamespaceDeleted:
    """Delete a namespace and everything in it."""
    ns_id, collection_ids = await scope.ctx.db.write(
        lambda s: service.delete(s, scope.principal, namespace_identifier)
    )
    scope.ctx.lookups.clear()
    scope.ctx.searcher.indexes.drop(collection_ids)
    scope.ctx.blobs.delete_prefix(f"{ns_id}/")
    return NamespaceDeleted(namespace_id=ns_id)
