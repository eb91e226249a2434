"""Webhook use-cases: subscriptions of a namespace, their delivery log, redelivery and tests."""

from __future__ import annotations

import anyio
from sqlalchemy.orm import Session

from assay.errors import NotFound, ValidationFailed
from assay.events.outbox import emit
from assay.kit.db import utcnow
from assay.kit.fetch import FetchError, checked_url, resolve_checked
from assay.kit.ids import new_hex_id, new_id, random_base62
from assay.kit.paging import SortKey, paginate
from assay.kit.wakeups import EVENTS, WEBHOOKS, notify
from assay.models import Webhook, WebhookDelivery
from assay.webhooks.repository import WebhookRepository
from assay.webhooks.schemas import (
    PENDING,
    DeliveryOut,
    WebhookCreate,
    WebhookCreated,
    WebhookOut,
    WebhookPatch,
)

RESOLVE_TIMEOUT_S = 5.0


async def check_url(url: str, allow_private: bool) -> str:
    """The URL if it is http(s) to a host the SSRF guard allows; else 422 on `url`."""
    try:
        checked = checked_url(url)
        if not allow_private:
            # The same rule the sender applies on every connection; checking here as well
            # turns an unreachable-by-policy URL into an error its author sees at once.
            port = checked.port or (443 if checked.scheme == "https" else 80)
            with anyio.fail_after(RESOLVE_TIMEOUT_S):
                await resolve_checked(checked.host, port, allow_private=False)
    except FetchError as exc:
        raise ValidationFailed.at(["url"], exc.message, "url_not_allowed") from exc
    except TimeoutError as exc:
        msg = f"could not resolve host {checked.host!r} in time"
        raise ValidationFailed.at(["url"], msg, "url_not_allowed") from exc
    return str(checked)


def new_secret() -> str:
    """A fresh signing secret."""
    return "whsec_" + random_base62(32)


def get_webhook(session: Session, namespace_id: str, webhook_id: str) -> Webhook:
    webhook = WebhookRepository(session, namespace_id).get(webhook_id)
    if webhook is None:
        raise NotFound(f"webhook '{webhook_id}' not found")
    return webhook


def create(session: Session, namespace_id: str, body: WebhookCreate, url: str) -> WebhookCreated:
    """Create a webhook for an already checked `url`; the answer carries the secret, once."""
    webhook = WebhookRepository(session, namespace_id).add(
        Webhook(
            webhook_id=new_hex_id("wh"),
            namespace_id=namespace_id,
            webhook_name=body.webhook_name or (_host(url)),
            url=url,
            event_types=body.event_types,
            description=body.description,
            secret=body.secret or new_secret(),
            is_active=body.is_active,
        )
    )
    if webhook.is_active:
        notify(session, WEBHOOKS)  # a dispatcher spacing its rounds for nobody stops waiting
    out = to_out(webhook, body.warnings())
    return WebhookCreated(**out.model_dump(exclude={"channels"}), secret=webhook.secret)


def patch(
    session: Session,
    namespace_id: str,
    webhook_id: str,
    body: WebhookPatch,
    url: str | None,
) -> WebhookOut:
    """Change a webhook; `url`, when given, was checked by `check_url`."""
    webhook = get_webhook(session, namespace_id, webhook_id)
    if url is not None:
        webhook.url = url
    if body.event_types is not None:
        webhook.event_types = body.event_types
    if "description" in body.model_fields_set:
        webhook.description = body.description
    if body.webhook_name is not None:
        webhook.webhook_name = body.webhook_name
    if body.is_active is not None:
        if body.is_active and not webhook.is_active:
            notify(session, WEBHOOKS)
        webhook.is_active = body.is_active
    session.flush()
    return to_out(webhook)


def delete(session: Session, namespace_id: str, webhook_id: str) -> str:
    """Delete a webhook and its delivery log; pending deliveries are never sent."""
    webhook = get_webhook(session, namespace_id, webhook_id)
    WebhookRepository(session, namespace_id).delete(webhook)
    return webhook.webhook_id


def list_page(
    session: Session,
    namespace_id: str,
    *,
    limit: int,
    cursor: str | None,
    event_type: str | None = None,
    is_active: bool | None = None,
) -> tuple[list[WebhookOut], str | None, int]:
    """A page of the namespace's webhooks (newest first), the next cursor and the total."""
    repo = WebhookRepository(session, namespace_id)
    stmt = repo.filtered(event_type, is_active)
    key = SortKey(Webhook.created_at, Webhook.webhook_id)  # hex ids do not sort by time
    rows, nxt = paginate(session, stmt, key, limit=limit, cursor=cursor)
    return [to_out(w) for w in rows], nxt, repo.count(stmt)


def deliveries_page(
    session: Session, namespace_id: str, webhook_id: str, *, limit: int, cursor: str | None
) -> tuple[list[DeliveryOut], str | None]:
    """A page of a webhook's delivery log, newest first."""
    webhook = get_webhook(session, namespace_id, webhook_id)
    stmt = WebhookRepository(session, namespace_id).deliveries(webhook.webhook_id)
    key = SortKey(WebhookDelivery.created_at, WebhookDelivery.delivery_id)
    rows, nxt = paginate(session, stmt, key, limit=limit, cursor=cursor)
    return [DeliveryOut.model_validate(d) for d in rows], nxt


def redeliver(
    session: Session, namespace_id: str, webhook_id: str, delivery_id: str
) -> DeliveryOut:
    """A new delivery of the same event to the same webhook, due now."""
    repo = WebhookRepository(session, namespace_id)
    webhook = get_webhook(session, namespace_id, webhook_id)
    original = repo.get_delivery(webhook.webhook_id, delivery_id)
    if original is None:
        raise NotFound(f"delivery '{delivery_id}' not found")
    fresh = _pending(webhook, original.event_id, original.event_type)
    delivery = repo.add_delivery(fresh)
    notify(session, EVENTS)  # a delivery due now: the dispatcher need not wait for its timer
    return DeliveryOut.model_validate(delivery)


def send_test(session: Session, namespace_id: str, webhook_id: str) -> DeliveryOut:
    """Emit a `webhook.test` event addressed to this webhook only."""
    webhook = get_webhook(session, namespace_id, webhook_id)
    event = emit(
        session,
        namespace_id,
        "webhook.test",
        ("webhook", webhook.webhook_id),
        {"message": "a test event sent from Assay"},
    )
    # Marked as fanned out at once so the dispatcher never hands it to other webhooks.
    event.dispatched_at = utcnow()
    session.flush()
    delivery = _pending(webhook, event.event_id, event.event_type)
    return DeliveryOut.model_validate(
        WebhookRepository(session, namespace_id).add_delivery(delivery)
    )


def _pending(webhook: Webhook, event_id: str, event_type: str) -> WebhookDelivery:
    now = utcnow()
    return WebhookDelivery(
        delivery_id=new_id("whd"),
        webhook_id=webhook.webhook_id,
        namespace_id=webhook.namespace_id,
        event_id=event_id,
        event_type=event_type,
        status=PENDING,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )


def _host(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0][:200] or "webhook"


def to_out(webhook: Webhook, warnings: list[str] | None = None) -> WebhookOut:
    out = WebhookOut.model_validate(webhook)
    out.warnings = warnings or []
    return out
