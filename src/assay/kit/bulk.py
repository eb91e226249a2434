"""Many rows into one table in one statement, the hot path of registration and extraction.

SQLite takes an executemany: it runs in-process, a row costs microseconds. PostgreSQL does
not: psycopg's executemany runs one statement per row, and a multi-row `VALUES` list is a new
query text per row count that psycopg parses again on every call (it caches only short
texts), with a parameter per value to adapt. So on PostgreSQL the rows go as one JSON
document, serialised by orjson in C, through `INSERT … SELECT … FROM
json_to_recordset(:rows) AS r(column type, …)`: one short statement, the same text every time,
one parameter; PostgreSQL reads each value with its column type's input function (vectors
as pgvector's `[x, y]`, bytes as `\\x` hex, timestamps as RFC 3339).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

import orjson
from sqlalchemy import Table, TextClause, insert, text
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from assay.kit.db import FloatVector

_JSON_OPTIONS = orjson.OPT_NAIVE_UTC | orjson.OPT_SERIALIZE_NUMPY


def insert_rows(
    session: Session, table: Table, rows: Sequence[dict[str, Any]], *, skip_duplicates: bool = False
) -> None:
    """INSERT `rows` (column names as keys, the same keys in every row); with
    `skip_duplicates`, rows whose key exists already are left out (content-addressed data)."""
    if not rows:
        return
    dialect = session.get_bind().dialect
    if dialect.name != "postgresql":
        stmt: Any = insert(table)
        if skip_duplicates:
            stmt = sqlite_insert(table).on_conflict_do_nothing()
        session.execute(stmt, list(rows))
        return
    columns = tuple(rows[0])
    defaults = _python_defaults(table, columns)
    if defaults:
        rows = [{**row, **{name: make() for name, make in defaults}} for row in rows]
    vectors = [name for name in columns if isinstance(table.c[name].type, FloatVector)]
    if vectors:  # as float32 arrays, which orjson writes as JSON lists
        rows = [{**row, **{n: _array(row[n]) for n in vectors}} for row in rows]
    document = orjson.dumps(rows, default=_bytes_text, option=_JSON_OPTIONS).decode()
    session.execute(_json_insert(table, columns, skip_duplicates, dialect), {"rows": document})


@cache
def _json_insert(
    table: Table, columns: tuple[str, ...], skip_duplicates: bool, dialect: Any
) -> TextClause:
    names = list(columns) + [name for name, _ in _python_defaults(table, columns)]
    listed = ", ".join(f'"{name}"' for name in names)
    typed = ", ".join(f'"{n}" {table.c[n].type.compile(dialect=dialect)}' for n in names)
    sql = (
        f'INSERT INTO "{table.name}" ({listed}) SELECT {listed} '
        f"FROM json_to_recordset(CAST(:rows AS json)) AS r({typed})"
    )
    if skip_duplicates:
        sql += " ON CONFLICT DO NOTHING"
    return text(sql)


@cache
def _python_defaults(table: Table, columns: tuple[str, ...]) -> list[tuple[str, Callable[[], Any]]]:
    """Columns the rows leave out whose default SQLAlchemy computes in Python (as it would
    for an `insert()`): their values are made here, since the statement is plain SQL."""
    found: list[tuple[str, Callable[[], Any]]] = []
    for column in table.columns:
        default = column.default
        if column.name in columns or default is None:
            continue
        if default.is_scalar:
            found.append((column.name, lambda value=default.arg: value))  # type: ignore[attr-defined,misc]
        elif default.is_callable:
            found.append((column.name, lambda fn=default.arg: fn(None)))  # type: ignore[attr-defined,misc]
    return found


def _array(value: Any) -> Any:
    return None if value is None else FloatVector.as_array(value)


def _bytes_text(value: Any) -> str:
    """bytea's hex input form, for what orjson cannot write itself."""
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    raise TypeError(f"{type(value).__name__} is not a column value")
