"""Engines: how Assay connects to SQLite and PostgreSQL, and how it tells an unreachable
database apart from a failing request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool


def make_engine(
    url: str, *, writer: bool = False, busy_timeout_s: float = 30, checkpoints: bool = True
) -> Engine:
    """An engine; SQLite gets WAL, foreign keys, a busy timeout and explicit BEGINs, and
    without `checkpoints` its commits never checkpoint the WAL (see `kit/checkpoints`)."""
    if not url.startswith("sqlite"):
        engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)
        # Many-row INSERTs (registration, documents, vectors) as multi-row VALUES statements,
        # as SQLAlchemy does for psycopg2: psycopg's executemany runs one statement per row.
        engine.dialect.use_insertmanyvalues_wo_returning = True
        return engine
    engine = create_engine(
        make_url(url).set(drivername="sqlite+assay"),
        connect_args={"check_same_thread": False, "timeout": busy_timeout_s},
        pool_size=1 if writer else 8,
        max_overflow=0 if writer else 8,
        # The connection used last goes out first: each holds its own page cache, and the
        # loop's reads come one at a time, so one warm connection serves them (first-in
        # first-out went round all eight, each cache colder).
        pool_use_lifo=True,
        json_serializer=_json_dumps,
        json_deserializer=_json_loads,
    )
    assert isinstance(engine.dialect, SQLiteDialect)
    engine.dialect.begin_sql = "BEGIN IMMEDIATE" if writer else "BEGIN"

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (needed for SAVEPOINT).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "foreign_keys=ON",
            f"busy_timeout={int(busy_timeout_s * 1000)}",
            "temp_store=MEMORY",
            *(() if checkpoints else ("wal_autocheckpoint=0",)),
        ):
            cur.execute(f"PRAGMA {pragma}")
        cur.close()

    return engine


class SQLiteDialect(SQLiteDialect_pysqlite):
    """pysqlite, with the transaction statements it sends itself: BEGIN (IMMEDIATE for the
    writers, so a busy lock fails before any work) and savepoints go straight to the driver.
    SQLAlchemy compiles a fresh SAVEPOINT statement for each one (its name changes), ~50 µs
    apiece, and a group commit takes a savepoint per job (`make_engine` uses this dialect
    for every SQLite URL, as `sqlite+assay`)."""

    supports_statement_cache = True  # as its parent: a subclass must say so itself
    begin_sql = "BEGIN"

    def do_begin(self, dbapi_connection: Any) -> None:
        dbapi_connection.execute(self.begin_sql)

    def do_savepoint(self, connection: Any, name: str) -> None:
        connection.connection.dbapi_connection.execute(f"SAVEPOINT {name}")

    def do_release_savepoint(self, connection: Any, name: str) -> None:
        connection.connection.dbapi_connection.execute(f"RELEASE SAVEPOINT {name}")


registry.register("sqlite.assay", __name__, "SQLiteDialect")


def _json_dumps(value: Any) -> str:
    """JSON columns as SQLite stores them, written by orjson (several times faster than the
    standard encoder, and registration writes three per object). What orjson refuses, an
    integer past 64 bits or a key that is not a string, the standard encoder writes as before."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError included
        return json.dumps(value)


def _json_loads(text: str) -> Any:
    """JSON columns as SQLite hands them back, read by orjson (several times faster than the
    standard parser, and every search answer decodes three per hit). Values written before
    request bodies were strict may hold NaN, which only the standard parser reads."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


class DatabaseUnreachable(RuntimeError):
    """The configured database does not answer (the message names it, password hidden)."""


def sqlite_path(url: str) -> str | None:
    """The file of a SQLite URL; None for another database or an in-memory one."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return parsed.database


def masked_url(url: str) -> str:
    """The URL with its password replaced by ***."""

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database URL>"


def check_reachable(url: str, timeout_s: float = 10) -> None:
    """Raise DatabaseUnreachable unless a server database answers `SELECT 1` (SQLite files
    are made on demand, so they always do)."""
    if url.startswith("sqlite"):
        return
    try:
        engine = create_engine(url, connect_args={"connect_timeout": int(timeout_s)})
    except Exception as exc:
        raise DatabaseUnreachable(f"bad database URL {masked_url(url)}: {exc}") from exc
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except Exception as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise DatabaseUnreachable(
            f"cannot reach the database at {masked_url(url)}: {reason}"
        ) from exc
    finally:
        engine.dispose()


def has_assay_schema(url: str) -> bool:
    """Whether the database holds Assay's tables (a SQLite file is not created to tell)."""
    if url.startswith("sqlite"):
        path = sqlite_path(url)
        if path is None or not Path(path).is_file():
            return False
    engine = create_engine(url, poolclass=NullPool)
    try:
        return inspect(engine).has_table("alembic_version")
    finally:
        engine.dispose()


def database_unavailable(exc: BaseException) -> bool:
    """The error means the database could not be reached or is busy (answer 503, retry),
    not that the request or the code is wrong."""
    from sqlalchemy.exc import DBAPIError, InterfaceError

    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, InterfaceError):
        return True
    if isinstance(exc, OperationalError):
        text = str(exc.orig or exc).lower()
        return any(
            sign in text
            for sign in ("locked", "busy", "connection", "server closed", "terminating",
                         "could not connect", "shutting down", "timeout")
        )  # fmt: skip
    return False
