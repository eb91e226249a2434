"""API keys over HTTP (admin only)."""

from __future__ import annotations

from fastapi import APIRouter, status

from assay.auth import service
from assay.auth.schemas import KeyCreate, KeyCreated, KeyOut
from assay.deps import AdminCaller
from assay.kit.routing import StrictJsonRoute
from assay.kit.schemas import Page, Pagination

router = APIRouter(prefix="/v1/keys", tags=["keys"], route_class=StrictJsonRoute)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=KeyCreated)
async def create_key(body: KeyCreate, caller: AdminCaller) -> KeyCreated:
    """Create an API key; its secret is in this response only."""
    key, secret = await caller.ctx.db.write(
        lambda s: service.create_key(
            s, name=body.name, role=body.role, namespaces=body.namespaces, creator=caller.principal
        )
    )
    return KeyCreated(**KeyOut.model_validate(key).model_dump(), key=secret)


@router.get("", response_model=Page[KeyOut])
async def list_keys(caller: AdminCaller) -> Page[KeyOut]:
    """Every key (secrets are never shown again)."""
    keys = await caller.ctx.db.read(lambda s: service.list_keys(s, caller.principal), heavy=True)
    results = [KeyOut.model_validate(k) for k in keys]
    return Page(
        results=results, pagination=Pagination(limit=len(results)), total_count=len(results)
    )


@router.delete("/{key_id}", response_model=KeyOut)
async def revoke_key(key_id: str, caller: AdminCaller) -> KeyOut:
    """Revoke a key at once."""
    key = await caller.ctx.db.write(lambda s: service.revoke_key(s, key_id, caller.principal))
    caller.ctx.keys.clear()
    return KeyOut.model_validate(key)
