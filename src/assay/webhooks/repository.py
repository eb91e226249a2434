"""SQL for webhooks and deliveries.

Requests go through `WebhookRepository`, whose queries start from `scoped()` (one namespace).
`DispatchRepository` is the dispatcher's view: it works across namespaces by design, since one
worker fans out and sends every tenant's events, and it is never reachable from a request.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import (
    Row,
    Select,
    String,
    bindparam,
    cast,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from assay.kit import bulk
from assay.kit.repository import NamespacedRepository
from assay.models import Event, Webhook, WebhookDelivery
from assay.webhooks.schemas import ALL_EVENTS, PENDING


class WebhookRepository(NamespacedRepository[Webhook]):
    model = Webhook
    namespace_column = Webhook.namespace_id
    id_column = Webhook.webhook_id

    def delete(self, webhook: Webhook) -> None:
        # Core DELETE so the database's ON DELETE CASCADE drops the deliveries in one statement.
        self.session.execute(
            delete(Webhook).where(*self.scope(), Webhook.webhook_id == webhook.webhook_id)
        )

    def filtered(self, event_type: str | None, is_active: bool | None) -> Select[Webhook]:
        stmt = self.scoped()
        if is_active is not None:
            stmt = stmt.where(Webhook.is_active.is_(is_active))
        if event_type is not None:
            # JSON text holds each name quoted, on SQLite and PostgreSQL alike.
            text = cast(Webhook.event_types, String)
            stmt = stmt.where(
                or_(
                    text.contains(f'"{event_type}"', autoescape=True),
                    text.contains(f'"{ALL_EVENTS}"', autoescape=True),
                )
            )
        return stmt

    def any_active(self) -> bool:
        """Whether an active webhook listens in this namespace (one indexed lookup, run for
        every group of events written, so through `kit/bulk`)."""
        return bulk.first(self.session, _ANY_ACTIVE, {"ns_id": self.namespace_id}) is not None

    def count(self, stmt: Select[Webhook]) -> int:
        return int(self.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)

    def deliveries(self, webhook_id: str) -> Select[WebhookDelivery]:
        return select(WebhookDelivery).where(
            WebhookDelivery.namespace_id == self.namespace_id,
            WebhookDelivery.webhook_id == webhook_id,
        )

    def get_delivery(self, webhook_id: str, delivery_id: str) -> WebhookDelivery | None:
        stmt = self.deliveries(webhook_id).where(WebhookDelivery.delivery_id == delivery_id)
        return self.session.scalar(stmt)

    def add_delivery(self, delivery: WebhookDelivery) -> WebhookDelivery:
        self.session.add(delivery)
        self.session.flush()
        return delivery


_ANY_ACTIVE = (
    select(Webhook.webhook_id)
    .where(Webhook.namespace_id == bindparam("ns_id"), Webhook.is_active.is_(True))
    .limit(1)
)


@dataclass(frozen=True)
class Claimed:
    """A delivery leased for sending, with everything the send needs (no live ORM objects)."""

    delivery_id: str
    attempts: int
    created_at: dt.datetime
    url: str
    secret: str
    event_id: str
    event_type: str
    occurred_at: dt.datetime
    namespace_id: str
    subject_type: str
    subject_id: str
    data: dict[str, Any]


class Waiting(NamedTuple):
    events: bool  # events wait for fan-out
    due: bool  # deliveries are due
    hooks: bool  # some webhook, in any namespace, is active


class DispatchRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def work_waiting(self, now: dt.datetime) -> Waiting:
        """Cheap reads: whether events wait for fan-out, deliveries are due, webhooks listen."""
        d = WebhookDelivery
        events = select(Event.event_id).where(Event.dispatched_at.is_(None)).limit(1)
        hooks = select(Webhook.webhook_id).where(Webhook.is_active.is_(True)).limit(1)
        due = (
            select(d.delivery_id)
            .join(Webhook, Webhook.webhook_id == d.webhook_id)
            .where(
                d.status == PENDING,
                d.next_attempt_at <= now,
                or_(d.leased_until.is_(None), d.leased_until < now),
                Webhook.is_active.is_(True),
            )
            .limit(1)
        )
        return Waiting(
            events=self.session.scalar(events) is not None,
            due=self.session.scalar(due) is not None,
            hooks=self.session.scalar(hooks) is not None,
        )

    def undispatched_events(self, limit: int) -> list[Row[Any]]:
        """The oldest events not fanned out yet: what fan-out reads of them, not their payloads
        (an ingest burst makes an `object.created` per object, most for no webhook at all)."""
        stmt = (
            select(Event.event_id, Event.namespace_id, Event.event_type, Event.occurred_at)
            .where(Event.dispatched_at.is_(None))
            .order_by(Event.occurred_at, Event.event_id)
            .limit(limit)
            # PostgreSQL: two dispatchers fan out disjoint events; SQLite serializes writers.
            .with_for_update(skip_locked=True)
        )
        return list(self.session.execute(stmt))

    def active_webhooks(self, namespace_ids: Sequence[str]) -> list[Webhook]:
        stmt = select(Webhook).where(
            Webhook.namespace_id.in_(namespace_ids), Webhook.is_active.is_(True)
        )
        return list(self.session.scalars(stmt))

    def insert_deliveries(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            self.session.execute(insert(WebhookDelivery), rows)

    def mark_dispatched(self, event_ids: Sequence[str], now: dt.datetime) -> None:
        if event_ids:
            self.session.execute(
                update(Event)
                .where(Event.event_id.in_(event_ids))
                .values(dispatched_at=now)
                .execution_options(synchronize_session=False)
            )

    def claim_due(self, now: dt.datetime, lease_until: dt.datetime, limit: int) -> list[Claimed]:
        """Lease up to `limit` due deliveries of active webhooks (run in a write transaction)."""
        d = WebhookDelivery
        stmt = (
            select(d, Webhook.url, Webhook.secret, Event)
            .join(Webhook, Webhook.webhook_id == d.webhook_id)
            .join(Event, Event.event_id == d.event_id)
            .where(
                d.status == PENDING,
                d.next_attempt_at <= now,
                or_(d.leased_until.is_(None), d.leased_until < now),
                Webhook.is_active.is_(True),
            )
            .order_by(d.next_attempt_at, d.delivery_id)
            .limit(limit)
            .with_for_update(of=d, skip_locked=True)
        )
        claimed = [
            Claimed(
                delivery_id=row.delivery_id,
                attempts=row.attempts,
                created_at=row.created_at,
                url=url,
                secret=secret,
                event_id=event.event_id,
                event_type=event.event_type,
                occurred_at=event.occurred_at,
                namespace_id=event.namespace_id,
                subject_type=event.subject_type,
                subject_id=event.subject_id,
                data=dict(event.data or {}),
            )
            for row, url, secret, event in self.session.execute(stmt)
        ]
        if claimed:
            self.session.execute(
                update(d)
                .where(d.delivery_id.in_([c.delivery_id for c in claimed]))
                .values(leased_until=lease_until)
                .execution_options(synchronize_session=False)
            )
        return claimed

    def record_attempt(
        self, delivery_id: str, lease_until: dt.datetime, values: dict[str, Any]
    ) -> None:
        """Store one attempt's outcome and release the lease, if the lease is still ours."""
        self.session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.delivery_id == delivery_id,
                WebhookDelivery.leased_until == lease_until,
            )
            .values(leased_until=None, **values)
            .execution_options(synchronize_session=False)
        )
