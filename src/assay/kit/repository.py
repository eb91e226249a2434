"""Typed repository bases: one model's rows, with its tenant scope built in.

    Repository[M]                  rows of one model; `scope()` is the condition on every query
     └── NamespacedRepository[M]   rows of one namespace (`namespace_id` column)
          └── BucketedRepository[M] rows of one bucket of that namespace (`bucket_id` too)

A subclass names its model, id column, name column (if rows have names) and the id prefix
that tells an id from a name. Every query starts from `scoped()`, so a repository built for one
namespace cannot return another's rows: tenant isolation is structural, not remembered.
Columns are read from the class (`type(self).id_column`): read through an instance, an ORM
attribute is typed as its row value.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from assay.kit.db import Base
from assay.kit.ids import has_prefix

M = TypeVar("M", bound=Base)


class Repository(Generic[M]):
    """SQL of one model's rows, every query starting from `scoped()`."""

    model: type[M]
    id_column: InstrumentedAttribute[str]
    name_column: InstrumentedAttribute[str] | None = None
    id_prefix: str = ""  # with a name column: idents with this prefix are ids, others names

    def __init__(self, session: Session) -> None:
        self.session = session

    def scope(self) -> list[ColumnElement[bool]]:
        """The conditions every query of this repository carries (none: every row)."""
        return []

    def scoped(self) -> Select[M]:
        """The rows this repository may see; every query starts here."""
        return select(self.model).where(*self.scope())

    def get(self, row_id: str) -> M | None:
        return self.session.scalar(self.scoped().where(type(self).id_column == row_id))

    def get_by_ident(self, ident: str) -> M | None:
        """By id if `ident` has the kind's id prefix (or rows have no name), else by name."""
        name_column = type(self).name_column
        if name_column is None or has_prefix(ident, self.id_prefix):
            return self.get(ident)
        return self.session.scalar(self.scoped().where(name_column == ident))

    def name_taken(self, name: str) -> bool:
        """Whether a row in scope already has this name."""
        name_column = type(self).name_column
        assert name_column is not None, f"{self.model.__name__} rows have no name"
        stmt = select(type(self).id_column).where(*self.scope(), name_column == name)
        return self.session.scalar(stmt) is not None

    def add(self, row: M) -> M:
        """Insert the row now (flushed), so its defaults and constraint errors show at once."""
        self.session.add(row)
        self.session.flush()
        return row

    def delete(self, row: M) -> None:
        self.session.delete(row)


class NamespacedRepository(Repository[M]):
    """Rows of one namespace."""

    namespace_column: InstrumentedAttribute[str]

    def __init__(self, session: Session, namespace_id: str) -> None:
        super().__init__(session)
        self.namespace_id = namespace_id

    def scope(self) -> list[ColumnElement[bool]]:
        return [type(self).namespace_column == self.namespace_id]


class BucketedRepository(NamespacedRepository[M]):
    """Rows of one bucket of one namespace."""

    bucket_column: InstrumentedAttribute[str]

    def __init__(self, session: Session, namespace_id: str, bucket_id: str) -> None:
        super().__init__(session, namespace_id)
        self.bucket_id = bucket_id

    def scope(self) -> list[ColumnElement[bool]]:
        return [*super().scope(), type(self).bucket_column == self.bucket_id]
