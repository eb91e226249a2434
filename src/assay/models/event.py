from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from assay.kit.db import Base, utcnow


class Event(Base):
    """The outbox: one row per event, written in the transaction of the change that caused it."""

    __tablename__ = "events"

    event_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    namespace_id: Mapped[str] = mapped_column(
        ForeignKey("namespaces.namespace_id", ondelete="CASCADE"), index=True
    )
    event_type: Mapped[str] = mapped_column(String(64))
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    occurred_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Set once the event has been fanned out into deliveries for the matching webhooks.
    dispatched_at: Mapped[dt.datetime | None] = mapped_column(default=None, index=True)
