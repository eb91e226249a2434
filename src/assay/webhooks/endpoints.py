"""Webhooks over HTTP, with the hosted product's `/v1/organizations/webhooks` aliases."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from assay.deps import NamespaceScope, PageQuery, ReadScope, WriteScope
from assay.kit.routing import StrictJsonRoute
from assay.kit.schemas import Page, Pagination
from assay.webhooks import service
from assay.webhooks.schemas import (
    DeliveryOut,
    WebhookCreate,
    WebhookCreated,
    WebhookDeleted,
    WebhookListRequest,
    WebhookOut,
    WebhookPage,
    WebhookPatch,
)

router = APIRouter(tags=["webhooks"], route_class=StrictJsonRoute)

BASE = "/v1/webhooks"
ALIAS = "/v1/organizations/webhooks"


# Assay's own route answers 201. The hosted spelling answers 200: the hosted product's current
# SDK maps only 200 to a model there (its older published spec said 201).
@router.post(f"{ALIAS}/", response_model=WebhookCreated)
@router.post(ALIAS, response_model=WebhookCreated, include_in_schema=False)
async def create_webhook_hosted(body: WebhookCreate, scope: WriteScope) -> WebhookCreated:
    """Subscribe a URL to events (the hosted product's spelling of the same call)."""
    return await create_webhook(body, scope)


@router.post(BASE, status_code=status.HTTP_201_CREATED, response_model=WebhookCreated)
async def create_webhook(body: WebhookCreate, scope: WriteScope) -> WebhookCreated:
    """Subscribe a URL to events; the signing secret is in this answer and never again."""
    assert body.url is not None  # the schema fills it from `channels` or refuses
    url = await service.check_url(body.url, scope.ctx.settings.allow_private_urls)
    return await scope.ctx.db.write(lambda s: service.create(s, scope.namespace_id, body, url))


@router.get(BASE, response_model=WebhookPage)
async def list_webhooks(scope: ReadScope, page: PageQuery) -> WebhookPage:
    """Webhooks of the namespace, newest first."""
    return await _list(scope, WebhookListRequest(limit=page.limit, cursor=page.cursor))


@router.post(f"{BASE}/list", response_model=WebhookPage)
@router.post(f"{ALIAS}/list", response_model=WebhookPage)
async def list_webhooks_post(body: WebhookListRequest, scope: ReadScope) -> WebhookPage:
    """The hosted product's list form (filters `event_type`, `is_active`)."""
    return await _list(scope, body)


@router.get(f"{BASE}/{{webhook_id}}", response_model=WebhookOut)
@router.get(f"{ALIAS}/{{webhook_id}}", response_model=WebhookOut)
async def get_webhook(webhook_id: str, scope: ReadScope) -> WebhookOut:
    """One webhook (its secret is never shown again)."""
    return await scope.ctx.db.read(
        lambda s: service.to_out(service.get_webhook(s, scope.namespace_id, webhook_id))
    )


@router.patch(f"{BASE}/{{webhook_id}}", response_model=WebhookOut)
async def patch_webhook(webhook_id: str, body: WebhookPatch, scope: WriteScope) -> WebhookOut:
    """Change the URL, event types, name, description or active flag."""
    return await _patch(scope, webhook_id, body)


@router.put(f"{ALIAS}/{{webhook_id}}", response_model=WebhookOut)
async def put_webhook(webhook_id: str, body: WebhookCreate, scope: WriteScope) -> WebhookOut:
    """The hosted product's update: the whole definition again (the secret stays)."""
    fields = body.model_dump(
        include={"url", "event_types", "description", "webhook_name", "is_active"}
    )
    return await _patch(scope, webhook_id, WebhookPatch(**fields))


@router.delete(f"{BASE}/{{webhook_id}}", response_model=WebhookDeleted)
async def delete_webhook(webhook_id: str, scope: WriteScope) -> WebhookDeleted:
    """Delete a webhook and its delivery log."""
    deleted = await scope.ctx.db.write(lambda s: service.delete(s, scope.namespace_id, webhook_id))
    return WebhookDeleted(webhook_id=deleted)


@router.delete(f"{ALIAS}/{{webhook_id}}", status_code=204, response_class=Response)
async def delete_webhook_hosted(webhook_id: str, scope: WriteScope) -> Response:
    """The hosted product's spelling: the same delete, answered 204 as there."""
    await delete_webhook(webhook_id, scope)
    return Response(status_code=204)


@router.get(f"{BASE}/{{webhook_id}}/deliveries", response_model=Page[DeliveryOut])
async def list_deliveries(webhook_id: str, scope: ReadScope, page: PageQuery) -> Page[DeliveryOut]:
    """The delivery log, newest first: status, attempts and the last attempt's outcome."""
    rows, nxt = await scope.ctx.db.read(
        lambda s: service.deliveries_page(
            s, scope.namespace_id, webhook_id, limit=page.limit, cursor=page.cursor
        ),
        heavy=True,
    )
    return Page(results=rows, pagination=Pagination(limit=page.limit, next_cursor=nxt))


@router.post(
    f"{BASE}/{{webhook_id}}/deliveries/{{delivery_id}}/redeliver",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeliveryOut,
)
async def redeliver(webhook_id: str, delivery_id: str, scope: WriteScope) -> DeliveryOut:
    """Send a delivery's event again, as a new delivery due now."""
    return await scope.ctx.db.write(
        lambda s: service.redeliver(s, scope.namespace_id, webhook_id, delivery_id)
    )


@router.post(
    f"{BASE}/{{webhook_id}}/test", status_code=status.HTTP_202_ACCEPTED, response_model=DeliveryOut
)
async def test_webhook(webhook_id: str, scope: WriteScope) -> DeliveryOut:
    """Send a `webhook.test` event to this webhook only; answers its delivery."""
    return await scope.ctx.db.write(lambda s: service.send_test(s, scope.namespace_id, webhook_id))


async def _list(scope: NamespaceScope, body: WebhookListRequest) -> WebhookPage:
    rows, nxt, total = await scope.ctx.db.read(
        lambda s: service.list_page(
            s,
            scope.namespace_id,
            limit=body.limit,
            cursor=body.cursor,
            event_type=body.event_type,
            is_active=body.is_active,
        ),
        heavy=True,
    )
    pagination = Pagination(limit=body.limit, next_cursor=nxt)
    return WebhookPage(results=rows, pagination=pagination, total=total, total_count=total)


async def _patch(scope: NamespaceScope, webhook_id: str, body: WebhookPatch) -> WebhookOut:
    url = None
    if body.url is not None:
        url = await service.check_url(body.url, scope.ctx.settings.allow_private_urls)
    return await scope.ctx.db.write(
        lambda s: service.patch(s, scope.namespace_id, webhook_id, body, url)
    )
