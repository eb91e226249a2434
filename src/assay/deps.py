"""Annotated FastAPI dependencies: the caller, its namespace, paging.

Each route takes one of `CurrentCaller` (key-authenticated) or `CurrentScope` (key plus
`X-Namespace`): a single dependency each, since FastAPI's per-dependency overhead is a
noticeable share of a fast route's cost.
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
    return request.app.state.ctx  # type: ignore[no-any-return]


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
    """A caller inside the namespace named by `X-Namespace` (visible to its key)."""

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
    return Caller(ctx, principal)


async def get_caller(request: Request) -> Caller:
    return await _authenticate(request)


CurrentCaller = Annotated[Caller, Depends(get_caller)]


async def get_scope(
    request: Request,
    x_namespace: Annotated[
        str | None, Header(alias="X-Namespace", description="namespace id (ns_...) or name")
    ] = None,
) -> NamespaceScope:
    caller = await _authenticate(request)
    if not x_namespace:
        raise BadRequest("missing X-Namespace header (a namespace id such as ns_... or its name)")
    ctx, key = caller.ctx, ("namespace", x_namespace)
    found = ctx.lookups.get(key)
    if found is None:
        found = await ctx.db.read(lambda s: namespace_service.find(s, x_namespace))
        if found is not None:
            ctx.lookups.put(key, found)
    if found is None or not caller.principal.can_see(found[0]):
        raise namespace_service.not_found(x_namespace)
    return NamespaceScope(ctx, caller.principal, *found)


CurrentScope = Annotated[NamespaceScope, Depends(get_scope)]


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
