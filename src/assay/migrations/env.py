"""Alembic environment: the metadata of every model, batch mode on SQLite."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

import assay.models  # noqa: F401 - registers every table
from assay.kit.db import Base

config = context.config


def _managed(name: str | None, type_: str, _parents: object) -> bool:
    # The FTS5 index and its shadow tables are made by hand-written DDL, not by models.
    return not (type_ == "table" and (name or "").startswith("document_text"))


def run_migrations() -> None:
    url = config.get_main_option("sqlalchemy.url") or ""
    engine = create_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=url.startswith("sqlite"),
            compare_type=True,
            include_name=_managed,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations()
