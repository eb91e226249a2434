"""Recording events: call `emit` inside the transaction that makes the change.

An event waits in the outbox for the webhook dispatcher only if its namespace has an active
webhook when the event is written; any other is stored as handled already (`dispatched_at`
set), so an ingest burst in a namespace nobody listens to costs the dispatcher nothing (it
had cost ~35 µs an object, and with rounds a second apart it fell behind). The check runs in
the writing transaction: a webhook hears the events of changes that commit after it does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from assay.events.types import EVENT_TYPES
from assay.kit.bulk import insert_rows
from assay.kit.db import table_of, utcnow
from assay.kit.ids import new_id
from assay.kit.wakeups import EVENTS, notify
from assay.models.event import Event
from assay.webhooks.repository import WebhookRepository


def emit(
    session: Session,
    namespace_id: str,
    event_type: str,
    subject: tuple[str, str],
    data: dict[str, Any] | None = None,
) -> Event:
    """Add an event to the outbox; it commits or rolls back with the caller's change."""
    assert event_type in EVENT_TYPES, event_type
    event = Event(
        event_id=new_id("evt"),
        namespace_id=namespace_id,
        event_type=event_type,
        subject_type=subject[0],
        subject_id=subject[1],
        data=data or {},
        occurred_at=utcnow(),
    )
    waits = _listened(session, {namespace_id})
    if not waits:
        event.dispatched_at = event.occurred_at
    session.add(event)
    if waits:
        notify(session, EVENTS)  # the webhook dispatcher wakes when this commits
    return event


def emit_many(
    session: Session,
    event_type: str,
    events: Sequence[tuple[str, tuple[str, str], dict[str, Any]]],
) -> None:
    """`emit` for many events of one type, as one INSERT: (namespace id, subject, data) each."""
    assert event_type in EVENT_TYPES, event_type
    if not events:
        return
    now = utcnow()
    listened = _listened(session, {namespace_id for namespace_id, _, _ in events})
    rows = [
        {
            "event_id": new_id("evt"),
            "namespace_id": namespace_id,
            "event_type": event_type,
            "subject_type": subject[0],
            "subject_id": subject[1],
            "data": data,
            "occurred_at": now,
            "dispatched_at": None if namespace_id in listened else now,
        }
        for namespace_id, subject, data in events
    ]
    insert_rows(session, _EVENTS, rows)
    if listened:
        notify(session, EVENTS)


def _listened(session: Session, namespace_ids: set[str]) -> set[str]:
    """Those of the namespaces where an active webhook listens."""
    return {ns for ns in namespace_ids if WebhookRepository(session, ns).any_active()}


_EVENTS = table_of(Event)
