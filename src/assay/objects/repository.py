"""SQL for objects and blobs; every query starts from `scoped()` (namespace + bucket)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

from sqlalchemy import ColumnElement, Dialect, Table, bindparam, delete, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from assay.documents.writer import DocumentWriter
from assay.kit.bulk import insert_rows
from assay.kit.db import table_of
from assay.kit.repository import BucketedRepository
from assay.models import Blob, BlobBytes, Object


class ObjectRepository(BucketedRepository[Object]):
    model = Object
    namespace_column = Object.namespace_id
    bucket_column = Object.bucket_id
    id_column = Object.object_id

    def drop_unreferenced_small_bytes(self, storage_keys: set[str]) -> None:
        """Delete database-held bytes that no blob of the namespace references any more."""
        gone = unreferenced_keys(self.session, self.namespace_id, storage_keys)
        if gone:
            self.session.execute(
                delete(BlobBytes).where(
                    BlobBytes.namespace_id == self.namespace_id, BlobBytes.storage_key.in_(gone)
                )
            )

    def delete(self, obj: Object) -> None:
        """The object, its blobs and its documents (their vectors logged as removed)."""
        DocumentWriter(self.session, self.namespace_id).remove_objects([obj.object_id])
        super().delete(obj)

    def blob(self, object_id: str, blob_id: str) -> Blob | None:
        stmt = (
            select(Blob)
            .join(Object, Object.object_id == Blob.object_id)
            .where(
                *self.scope(),
                Blob.object_id == object_id,
                Blob.blob_id == blob_id,
            )
        )
        return self.session.scalar(stmt)


def insert_object_rows(
    session: Session,
    objects: list[dict[str, Any]],
    blobs: list[dict[str, Any]],
    small_bytes: list[dict[str, Any]],
) -> None:
    """Plain multi-row INSERTs (column names as keys): the hot path of registration.

    Rows carry their namespace and bucket ids, set by the caller from scoped lookups.
    """
    insert = _sqlite_insert_rows if session.get_bind().dialect.name == "sqlite" else insert_rows
    insert(session, _OBJECTS, objects)
    insert(session, _BLOBS, blobs)
    insert(session, _BLOB_BYTES, small_bytes, skip_duplicates=True)


_OBJECTS = table_of(Object)
_BLOBS = table_of(Blob)
_BLOB_BYTES = table_of(BlobBytes)


def _sqlite_insert_rows(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    skip_duplicates: bool = False,
) -> None:
    """`insert_rows` on SQLite as a driver-level executemany of a statement compiled once.

    SQLAlchemy's executemany spends more time per row in Python (a dict of parameters, its
    result and event machinery) than SQLite takes to insert it. Values still go through each
    column's own bind processor (JSON text, UTC timestamps), and columns the rows leave out get
    their Python defaults, so what is stored is what SQLAlchemy would store.
    """
    if not rows:
        return
    connection = session.connection()
    insert = _sqlite_insert(connection.dialect, table, tuple(rows[0]), skip_duplicates)
    if insert is None:
        insert_rows(session, table, rows, skip_duplicates=skip_duplicates)
        return
    params = [insert.parameters(row) for row in rows]
    cursor = connection.connection.cursor()
    dbapi_error = connection.dialect.loaded_dbapi.Error
    try:
        cursor.executemany(insert.sql, params)
    except dbapi_error as exc:  # as SQLAlchemy raises it: callers tell conflicts, locks apart
        raise DBAPIError.instance(insert.sql, params, exc, dbapi_error) from exc
    finally:
        cursor.close()


@dataclass(frozen=True)
class _SqliteInsert:
    sql: str
    # (key, bind processor) for each key of the rows, then (default, processor) for each
    # column they leave out: the statement's parameters in order.
    given: tuple[tuple[str, Callable[[Any], Any] | None], ...]
    defaulted: tuple[tuple[Callable[[], Any], Callable[[Any], Any] | None], ...]

    def parameters(self, row: dict[str, Any]) -> list[Any]:
        values = [row[key] if p is None else p(row[key]) for key, p in self.given]
        if self.defaulted:
            values += [make() if p is None else p(make()) for make, p in self.defaulted]
        return values


@lru_cache(maxsize=64)  # by engine (its dialect), table and row keys: a few in a process
def _sqlite_insert(
    dialect: Dialect, table: Table, columns: tuple[str, ...], skip_duplicates: bool
) -> _SqliteInsert | None:
    """The compiled INSERT, or None where a left-out column's default is SQL (none is)."""
    left_out = [c for c in table.columns if c.name not in columns and c.default is not None]
    defaults: list[Callable[[], Any]] = []
    for column in left_out:
        default: Any = column.default
        if default.is_callable:  # SQLAlchemy's wrapper of the model's function takes a context
            defaults.append(partial(default.arg, None))
        elif default.is_scalar:
            defaults.append(partial(_constant, default.arg))
        else:
            return None
    names = (*columns, *(c.name for c in left_out))
    stmt: Any = sqlite.insert(table).values({name: bindparam(name) for name in names})
    if skip_duplicates:
        stmt = stmt.on_conflict_do_nothing()
    compiled = stmt.compile(dialect=dialect)
    assert tuple(compiled.positiontup or ()) == names, (compiled.positiontup, names)
    processors = [
        table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names
    ]
    given = tuple(zip(columns, processors, strict=False))
    defaulted = tuple(zip(defaults, processors[len(columns) :], strict=True))
    return _SqliteInsert(str(compiled), given, defaulted)


def _constant(value: Any) -> Any:
    return value


def small_bytes(session: Session, namespace_id: str, storage_key: str) -> bytes | None:
    """The bytes of a small blob kept in the database."""
    stmt = select(BlobBytes.data).where(
        BlobBytes.namespace_id == namespace_id, BlobBytes.storage_key == storage_key
    )
    return session.scalar(stmt)


def unreferenced_keys(session: Session, namespace_id: str, storage_keys: set[str]) -> set[str]:
    """Which of these storage keys no blob of the namespace points at any more."""
    if not storage_keys:
        return set()
    stmt = select(Blob.storage_key).where(
        Blob.namespace_id == namespace_id, Blob.storage_key.in_(storage_keys)
    )
    return storage_keys - set(session.scalars(stmt))


def filter_field(name: str) -> ColumnElement[Any] | None:
    """Columns a filter may name: `metadata.x.y`, `properties.x`, and plain columns."""
    head, _, rest = name.partition(".")
    if head in ("metadata", "properties") and rest:
        col = Object.metadata_ if head == "metadata" else Object.properties
        path = tuple(rest.split("."))
        return col[path] if len(path) > 1 else col[path[0]]
    plain: dict[str, Any] = {
        "object_id": Object.object_id,
        "key_prefix": Object.key_prefix,
        "status": Object.status,
        "created_at": Object.created_at,
        "updated_at": Object.updated_at,
    }
    return plain.get(name)
