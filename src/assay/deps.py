"""Annotated FastAPI dependencies: context, caller, namespace, paging."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from assay.auth import service as auth_service
from assay.auth.principal import Principal
from assay.context import AppContext
from assay.errors import BadRequest, Unauthorized
from assay.namespaces import service as namespace_service

_bearer = HTTPBearer(auto_error=False, description="An Assay API key: `Bearer sk_live_...`")


async def get_ctx(request: Request) -> AppContext:
    return request.app.state.ctx  # type: ignore[no-any-return]


Ctx = Annotated[AppContext, Depends(get_ctx)]


async def get_principal(
    request: Request,
    ctx: Ctx,
    _creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None,
) -> Principal:
    secret = auth_service.parse_bearer(request.headers.get("authorization"))
    credential_hash = auth_service.hash_secret(secret)
    hit, principal = ctx.keys.get(credential_hash)
    if not hit:
        principal = await ctx.db.read(lambda s: auth_service.lookup_principal(s, credential_hash))
        ctx.keys.put(credential_hash, principal)
    if principal is None:
        raise Unauthorized("invalid or revoked API key")
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


@dataclass(frozen=True)
class NamespaceRef:
    namespace_id: str
    namespace_name: str


async def get_namespace(
    ctx: Ctx,
    principal: CurrentPrincipal,
    x_namespace: Annotated[
        str | None, Header(alias="X-Namespace", description="namespace id (ns_...) or name")
    ] = None,
) -> NamespaceRef:
    if not x_namespace:
        raise BadRequest("missing X-Namespace header (a namespace id such as ns_... or its name)")
    key = ("namespace", x_namespace)
    found = ctx.lookups.get(key)
    if found is None:
        found = await ctx.db.read(lambda s: namespace_service.find(s, x_namespace))
        if found is not None:
            ctx.lookups.put(key, found)
    if found is None or not principal.can_see(found[0]):
        raise namespace_service.not_found(x_namespace)
    return NamespaceRef(*found)


CurrentNamespace = Annotated[NamespaceRef, Depends(get_namespace)]


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
