"""Many rows into one table in one statement, the hot path of registration and extraction.

SQLite takes an executemany: it runs in-process, a row costs microseconds, so the driver's
own executemany of a statement compiled once runs it (SQLAlchemy's would spend more per row
in Python than SQLite does). PostgreSQL does
not: psycopg's executemany runs one statement per row, and a multi-row `VALUES` list is a new
query text per row count that psycopg parses again on every call (it caches only short
texts), with a parameter per value to adapt. So on PostgreSQL the rows go as one JSON
document, serialised by orjson in C, through `INSERT … SELECT … FROM
json_to_recordset(:rows) AS r(column type, …)`: one short statement, the same text every time,
one parameter; PostgreSQL reads each value with its column type's input function (vectors
as pgvector's `[x, y]`, bytes as `\\x` hex, timestamps as RFC 3339).

`execute` runs a prebuilt UPDATE or DELETE, and `first` and `rows` a prebuilt SELECT, the same
way on SQLite: compiled once, through the driver.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache, partial
from typing import Any

import orjson
from sqlalchemy import DateTime, Dialect, Table, TextClause, bindparam, insert, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
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
    if dialect.name == "sqlite" and _sqlite_rows(session, table, rows, skip_duplicates):
        return
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


def execute(session: Session, statement: Any, params: dict[str, Any]) -> int:
    """Run a prebuilt statement (an UPDATE or DELETE built once at import) with `params`;
    returns the rows it matched. On SQLite through the driver, compiled once: SQLAlchemy's
    execution path costs ~100 µs a call on this machine, ten times SQLite's own work for a
    one-row UPDATE, and registration runs one per group commit. Pending ORM changes are
    flushed first, as `session.execute` would."""
    return int(_run_prebuilt(session, statement, params, lambda cursor: cursor.rowcount))


def first(session: Session, statement: Any, params: dict[str, Any]) -> Any | None:
    """`execute` for a prebuilt SELECT: its first row (with the columns' names as
    attributes), None when there is none."""
    return _run_prebuilt(session, statement, params, lambda cursor: cursor.fetchone(), first=True)


def rows(session: Session, statement: Any, params: dict[str, Any]) -> list[Any]:
    """`execute` for a prebuilt SELECT: every row, with the columns' names as attributes.
    An expanding bind (`bindparam(..., expanding=True)`) takes a list, as in SQLAlchemy.
    The search path reads this way: SQLAlchemy's execution costs ~100 µs a statement here,
    more than SQLite's own work for ten rows by key, and an expanding `IN` as much again."""
    return _run_prebuilt(session, statement, params, lambda cursor: cursor.fetchall())


def _run_prebuilt(
    session: Session,
    statement: Any,
    params: dict[str, Any],
    result: Callable[[Any], Any],
    *,
    first: bool = False,
) -> Any:
    """`result(cursor)` of `statement` run with `params`, a SELECT's rows made as SQLAlchemy
    makes them (a SQLAlchemy result elsewhere, and for an empty expanding list)."""
    session.flush()
    connection = session.connection()
    prebuilt = None
    if connection.dialect.name == "sqlite":
        prebuilt = _sqlite_statement(connection.dialect, statement)
    if prebuilt is None or prebuilt.empty_list(params):
        found = connection.execute(statement, params)
        if not found.returns_rows:
            return result(found)
        return found.first() if first else found.all()
    sql, values = prebuilt.bound(params)
    cursor = connection.connection.cursor()
    dbapi_error = connection.dialect.loaded_dbapi.Error
    try:
        cursor.execute(sql, values)
        found = result(cursor)
    except dbapi_error as exc:  # as SQLAlchemy raises it
        raise DBAPIError.instance(sql, values, exc, dbapi_error) from exc
    finally:
        cursor.close()
    if prebuilt.make_row is None:
        return found
    if first:
        return None if found is None else prebuilt.make_row(found)
    return [prebuilt.make_row(row) for row in found]


@dataclass(frozen=True)
class _Prebuilt:
    """A statement compiled once for SQLite: its SQL (expanding binds left as SQLAlchemy's
    `__[POSTCOMPILE_name]` markers), its parameters in order, and how to make a row."""

    sql: str
    binds: tuple[_Bind, ...]
    expanding: frozenset[str]
    make_row: Callable[[Sequence[Any]], Any] | None  # None for a statement without rows

    def empty_list(self, params: dict[str, Any]) -> bool:
        return any(not params[name] for name in self.expanding)

    def bound(self, params: dict[str, Any]) -> tuple[str, list[Any]]:
        """The SQL to run with `params` and its values in order."""
        sql, values = self.sql, list[Any]()
        for name, process, make in self.binds:
            if name in self.expanding:
                items = list(params[name])
                marks = ", ".join("?" * len(items))
                sql = sql.replace(f"__[POSTCOMPILE_{name}]", marks, 1)
                values.extend(items if process is None else map(process, items))
                continue
            value = params[name] if make is None else make()
            values.append(value if process is None else process(value))
        return sql, values


@lru_cache(maxsize=64)  # by dialect and statement (statements are built once, at import)
def _sqlite_statement(dialect: Dialect, statement: Any) -> _Prebuilt:
    """The statement's SQL and its parameters in order: each name, bind processor and, for a
    column SQLAlchemy fills itself (an `onupdate` such as `updated_at`) or a value the
    statement holds (a LIMIT), how to make its value."""
    compiled = statement.compile(dialect=dialect)
    filled = {c.key: c.default for c in compiled.insert_prefetch}
    filled |= {c.key: c.onupdate for c in compiled.update_prefetch}
    binds = []
    for name in compiled.positiontup or ():
        default, bind = filled.get(name), compiled.binds[name]
        make = None if default is None else _python_default(default)
        if make is None and bind.value is not None and not bind.expanding:
            make = partial(_constant, bind.value)
        binds.append((name, _bind_processor(bind.type, dialect), make))
    expanding = frozenset(name for name, bind in compiled.binds.items() if bind.expanding)
    make_row = _row_maker(statement, dialect) if getattr(statement, "is_select", False) else None
    return _Prebuilt(str(compiled), tuple(binds), expanding, make_row)


def _row_maker(statement: Any, dialect: Dialect) -> Callable[[Sequence[Any]], Any]:
    """A SELECT's driver row as a named tuple of its columns' keys, each value through its
    column type's result processor (JSON decoded, timestamps parsed), as SQLAlchemy reads it."""
    columns = list(statement.selected_columns)
    row_type = namedtuple("Row", [c.key for c in columns])  # type: ignore[misc]
    processors = [
        (i, process)
        for i, c in enumerate(columns)
        if (process := c.type.dialect_impl(dialect).result_processor(dialect, None)) is not None
    ]

    def make_row(raw: Sequence[Any]) -> Any:
        values = list(raw)
        for i, process in processors:
            values[i] = process(values[i])
        return row_type._make(values)

    return make_row


_Bind = tuple[str, Callable[[Any], Any] | None, Callable[[], Any] | None]


def _sqlite_rows(
    session: Session, table: Table, rows: Sequence[dict[str, Any]], skip_duplicates: bool
) -> bool:
    """`insert_rows` on SQLite as a driver-level executemany of a statement compiled once;
    False (nothing done) where a left-out column's default is SQL.

    SQLAlchemy's executemany spends more time per row in Python (a dict of parameters, its
    result and event machinery) than SQLite takes to insert it. Values still go through each
    column's own bind processor (JSON text, UTC timestamps), and columns the rows leave out get
    their Python defaults, so what is stored is what SQLAlchemy would store.
    """
    connection = session.connection()
    compiled = _sqlite_insert(connection.dialect, table, tuple(rows[0]), skip_duplicates)
    if compiled is None:
        return False
    params = [compiled.parameters(row) for row in rows]
    cursor = connection.connection.cursor()
    dbapi_error = connection.dialect.loaded_dbapi.Error
    try:
        cursor.executemany(compiled.sql, params)
    except dbapi_error as exc:  # as SQLAlchemy raises it: callers tell conflicts, locks apart
        raise DBAPIError.instance(compiled.sql, params, exc, dbapi_error) from exc
    finally:
        cursor.close()
    return True


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
        make = _python_default(column.default)
        if make is None:
            return None
        defaults.append(make)
    names = (*columns, *(c.name for c in left_out))
    stmt: Any = sqlite.insert(table).values({name: bindparam(name) for name in names})
    if skip_duplicates:
        stmt = stmt.on_conflict_do_nothing()
    compiled = stmt.compile(dialect=dialect)
    assert tuple(compiled.positiontup or ()) == names, (compiled.positiontup, names)
    processors = [_bind_processor(table.c[name].type, dialect) for name in names]
    given = tuple(zip(columns, processors, strict=False))
    defaulted = tuple(zip(defaults, processors[len(columns) :], strict=True))
    return _SqliteInsert(str(compiled), given, defaulted)


def _constant(value: Any) -> Any:
    return value


def _python_default(default: Any) -> Callable[[], Any] | None:
    """A column default (or `onupdate`) as SQLAlchemy computes it in Python; None for one
    computed by the database (SQL)."""
    if default.is_callable:  # SQLAlchemy's wrapper of the model's function takes a context
        return partial(default.arg, None)
    if default.is_scalar:
        return partial(_constant, default.arg)
    return None


def _bind_processor(column_type: Any, dialect: Dialect) -> Callable[[Any], Any] | None:
    """The column's bind processor; a timestamp's remembers its last value, because a
    group of rows is stamped with one `now` (SQLite's processor formats text in Python,
    ~2.4 µs a value, four times per registered object)."""
    process = column_type.dialect_impl(dialect).bind_processor(dialect)
    is_timestamp = isinstance(getattr(column_type, "impl", column_type), DateTime)
    return _last_value_kept(process) if process is not None and is_timestamp else process


def _last_value_kept(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    last: tuple[Any, Any] = (object(), None)  # (value, processed): replaced whole, so threads
    # sharing the compiled statement never see one value with another's result

    def convert(value: Any) -> Any:
        nonlocal last
        seen, result = last
        if value is seen:  # the same (immutable) datetime object
            return result
        result = process(value)
        last = (value, result)
        return result

    return convert


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
        if column.name in columns or column.default is None:
            continue
        make = _python_default(column.default)
        if make is not None:
            found.append((column.name, make))
    return found


def _array(value: Any) -> Any:
    return None if value is None else FloatVector.as_array(value)


def _bytes_text(value: Any) -> str:
    """bytea's hex input form, for what orjson cannot write itself."""
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    raise TypeError(f"{type(value).__name__} is not a column value")
