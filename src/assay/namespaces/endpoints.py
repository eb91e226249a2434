"""Namespaces over HTTP."""

from __future__ import annotations

from fastapi import APIRouter, status

from assay.deps import Ctx, CurrentPrincipal, PageQuery
from assay.kit.schemas import ListRequest, Page, Pagination
from assay.namespaces import service
from assay.namespaces.schemas import NamespaceCreate, NamespaceDeleted, NamespaceOut, NamespacePatch

router = APIRouter(prefix="/v1/namespaces", tags=["namespaces"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=NamespaceOut)
async def create_namespace(
    body: NamespaceCreate, ctx: Ctx, principal: CurrentPrincipal
) -> NamespaceOut:
    """Create a namespace with its feature extractors."""
    return await ctx.db.write(lambda s: service.create(s, ctx.registry, principal, body))


@router.get("", response_model=Page[NamespaceOut])
async def list_namespaces(
    ctx: Ctx, principal: CurrentPrincipal, page: PageQuery
) -> Page[NamespaceOut]:
    """Namespaces this key may see."""
    rows, nxt = await ctx.db.read(
        lambda s: service.list_page(s, principal, limit=page.limit, cursor=page.cursor), heavy=True
    )
    return Page(results=rows, pagination=Pagination(limit=page.limit, next_cursor=nxt))


@router.post("/list", response_model=Page[NamespaceOut])
async def list_namespaces_post(
    body: ListRequest, ctx: Ctx, principal: CurrentPrincipal
) -> Page[NamespaceOut]:
    """The hosted product's list form."""
    rows, nxt = await ctx.db.read(
        lambda s: service.list_page(s, principal, limit=body.limit, cursor=body.cursor), heavy=True
    )
    return Page(results=rows, pagination=Pagination(limit=body.limit, next_cursor=nxt))


@router.get("/{namespace_identifier}", response_model=NamespaceOut)
async def get_namespace(
    namespace_identifier: str, ctx: Ctx, principal: CurrentPrincipal
) -> NamespaceOut:
    """One namespace, by id or name."""
    return await ctx.db.read(lambda s: service.get(s, principal, namespace_identifier))


@router.patch("/{namespace_identifier}", response_model=NamespaceOut)
async def patch_namespace(
    namespace_identifier: str, body: NamespacePatch, ctx: Ctx, principal: CurrentPrincipal
) -> NamespaceOut:
    """Change a namespace's description."""
    return await ctx.db.write(lambda s: service.patch(s, principal, namespace_identifier, body))


@router.delete("/{namespace_identifier}", response_model=NamespaceDeleted)
async def delete_namespace(
    namespace_identifier: str, ctx: Ctx, principal: CurrentPrincipal
) -> NamespaceDeleted:
    """Delete a namespace and everything in it."""
    ns_id = await ctx.db.write(lambda s: service.delete(s, principal, namespace_identifier))
    ctx.lookups.clear()
    ctx.blobs.delete_prefix(f"{ns_id}/")
    return NamespaceDeleted(namespace_id=ns_id)
