"""Recording events: call `emit` inside the transaction that makes the change."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from assay.kit.bulk import insert_rows
from assay.kit.db import table_of, utcnow
from assay.kit.ids import new_id
from assay.kit.wakeups import EVENTS, notify
from assay.models.event import Event

EVENT_TYPES = frozenset(
    {
        "batch.queued",
        "batch.processing",
        "batch.completed",
        "batch.failed",
        "batch.canceled",
        "object.created",
        "object.deleted",
        "upload.confirmed",
        "collection.documents.written",
        "webhook.test",
    }
)


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
    session.add(event)
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
    rows = [
        {
            "event_id": new_id("evt"),
            "namespace_id": namespace_id,
            "event_type": event_type,
            "subject_type": subject[0],
            "subject_id": subject[1],
            "data": data,
            "occurred_at": now,
            "dispatched_at": None,
        }
        for namespace_id, subject, data in events
    ]
    insert_rows(session, _EVENTS, rows)
    notify(session, EVENTS)


_EVENTS = table_of(Event)
