"""Annotated FastAPI dependencies: the caller and its permission, its namespace, paging.

Each route states the permission it needs in its signature, with one of these types:

    ReadCaller / AdminCaller / NamespaceCreator    key-authenticated (401), role checked (403)
    WritableNamespace                              plus the path's namespace (404, then 403)
    ReadScope / WriteScope                         plus `X-Namespace` (400 if absent, 404, 403)

A namespace the key may not see is 404 before any role check, so a key limited to other
namespaces cannot tell them from missing ones. Services take the principal only for what it
may see, never to check its role. Each type is a single dependency, since FastAPI's
per-dependency overhead is a noticeable share of a fast route's cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Query, Request

from assay.auth import service as auth_service
from assay.auth.principal import Principal
from assay.context import AppContext
from assay.errors import BadRequest, Unauthorized
from assay.namespaces import service as namespace_service


def context_of(request: Request) -> AppContext:
    return request.app.state.ctx


async def get_ctx(request: Request) -> AppContext:
    return context_of(request)


Ctx = Annotated[AppContext, Depends(get_ctx)]


@dataclass(frozen=True)
class Caller:
    """An authenticated request: the process context and the key's principal."""

    ctx: AppContext
    principal: Principal


@dataclass(frozen=True)
class NamespaceScope(Caller):
    """A caller inside a namespace its key may see (named by `X-Namespace`, or by the path of a
    namespace's own routes)."""

    namespace_id: str
    namespace_name: str


async def _authenticate(request: Request) -> Caller:
    ctx = context_of(request)
    secret = auth_service.parse_bearer(request.headers.get("authorization"))
    credential_hash = auth_service.hash_secret(secret)
    hit, principal = ctx.keys.get(credential_hash)
    if not hit:
        principal = await ctx.db.read(lambda s: auth_service.lookup_principal(s, credential_hash))
        ctx.keys.put(credential_hash, principal)
    if principal is None:
        raise Unauthorized("invalid or revoked API key")
    ctx.rate_limiter.take(principal.key_id)
    return Caller(ctx, principal)


async def _visible_namespace(caller: Caller, ident: str) -> NamespaceScope:
    """The namespace named by id or name, if the caller's key may see it; else 404 (never 403)."""
    ctx, key = caller.ctx, ("namespace", ident)
    found = ctx.lookups.get(key)
    if found is None:
        found = await ctx.db.read(lambda s: namespace_service.find(s, ident))
        if found is not None:
            ctx.lookups.put(key, found)
    if found is None or not caller.principal.can_see(found[0]):
        raise namespace_service.not_found(ident)
    return NamespaceScope(ctx, caller.principal, *found)


async def _scope(request: Request, x_namespace: str | None) -> NamespaceScope:
    caller = await _authenticate(request)
    if not x_namespace:
        raise BadRequest("missing X-Namespace header (a namespace id such as ns_... or its name)")
    return await _visible_namespace(caller, x_namespace)


XNamespace = Annotated[
    str | None, Header(alias="X-Namespace", description="namespace id (ns_...) or name")
]


async def get_caller(request: Request) -> Caller:
    return await _authenticate(request)


async def get_admin_caller(request: Request) -> Caller:
    caller = await _authenticate(request)
    caller.principal.require("admin")
    return caller


async def get_namespace_creator(request: Request) -> Caller:
    caller = await _authenticate(request)
    caller.principal.require("write")
    caller.principal.require_all_namespaces()
    return caller


async def get_writable_namespace(request: Request, namespace_identifier: str) -> NamespaceScope:
    # Visibility first: a namespace the key may not see is 404 whatever the key's role.
    scope = await _visible_namespace(await _authenticate(request), namespace_identifier)
    scope.principal.require("write")
    return scope


async def get_scope(request: Request, x_namespace: XNamespace = None) -> NamespaceScope:
    return await _scope(request, x_namespace)


async def get_write_scope(request: Request, x_namespace: XNamespace = None) -> NamespaceScope:
    # The namespace first: one the key may not see is 404 whatever the key's role.
    scope = await _scope(request, x_namespace)
    scope.principal.require("write")
    return scope


ReadCaller = Annotated[Caller, Depends(get_caller)]
"""Any valid key (every role may read)."""
AdminCaller = Annotated[Caller, Depends(get_admin_caller)]
"""A key with role `admin`, else 403."""
NamespaceCreator = Annotated[Caller, Depends(get_namespace_creator)]
"""A `write` key not limited to some namespaces (only those may create namespaces), else 403."""
WritableNamespace = Annotated[NamespaceScope, Depends(get_writable_namespace)]
"""The path's `namespace_identifier`, visible to a `write` key: 404 if not visible, else 403."""
ReadScope = Annotated[NamespaceScope, Depends(get_scope)]
"""Any valid key, inside the `X-Namespace` it may see (404 otherwise)."""
WriteScope = Annotated[NamespaceScope, Depends(get_write_scope)]
"""A `write` (or `admin`) key, inside the `X-Namespace` it may see: 404 before 403."""


@dataclass(frozen=True)
class PageParams:
    limit: int
    cursor: str | None


async def get_page_params(
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(max_length=2000)] = None,
) -> PageParams:
    return PageParams(limit, cursor)


PageQuery = Annotated[PageParams, Depends(get_page_params)]
