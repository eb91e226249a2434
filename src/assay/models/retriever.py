from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from assay.kit.db import Base, utcnow


class Retriever(Base):
    """A saved search pipeline: stages run over some collections of one namespace."""

    __tablename__ = "retrievers"
    __table_args__ = (UniqueConstraint("namespace_id", "retriever_name"),)

    retriever_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    namespace_id: Mapped[str] = mapped_column(
        ForeignKey("namespaces.namespace_id", ondelete="CASCADE"), index=True
    )
    retriever_name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    collection_ids: Mapped[list[Any]] = mapped_column(default=list)
    input_schema: Mapped[dict[str, Any]] = mapped_column(default=dict)
    stages: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
