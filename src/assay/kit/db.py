"""Database kit: declarative base, portable column types, engines, and the unit of work.

Services receive a `Session` and never commit; `Database.write` runs a function inside one
transaction and commits it. On SQLite, statements take microseconds while handing them to
threads costs far more (GIL hand-offs), so the server runs them on its event loop: writes queued
during one loop iteration are committed together (group commit), each inside its own SAVEPOINT
so a failing request rolls back alone. The loop never waits on SQLite's lock: when another
process holds it, the group is retried a little later. PostgreSQL runs everything in threads.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread
import orjson
from sqlalchemy import (
    JSON,
    DateTime,
    Engine,
    LargeBinary,
    MetaData,
    Table,
    create_engine,
    event,
    inspect,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator

from assay.errors import Conflict
from assay.kit.wakeups import Wakeups

T = TypeVar("T")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value


class FloatVector(TypeDecorator[bytes]):
    """A float32 vector, read and written as its little-endian bytes on every backend.

    SQLite stores the bytes; PostgreSQL stores pgvector's `vector`, which its HNSW indexes
    and distance operators work on. Writers may also give a sequence of floats or an array.
    """

    impl = LargeBinary
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name == "postgresql":
            from pgvector.sqlalchemy import VECTOR

            return dialect.type_descriptor(VECTOR())
        return dialect.type_descriptor(LargeBinary())

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        array = self.as_array(value)
        return array if dialect.name == "postgresql" else array.tobytes()

    @staticmethod
    def as_array(value: Any) -> Any:
        """A written value (bytes, floats or an array) as a little-endian float32 array."""
        import numpy as np

        if isinstance(value, bytes | bytearray | memoryview):
            return np.frombuffer(value, dtype="<f4")
        return np.asarray(value, dtype="<f4")

    def process_result_value(self, value: Any, dialect: Any) -> bytes | None:
        if value is None or isinstance(value, bytes):
            return value
        import numpy as np

        return np.asarray(value, dtype="<f4").tobytes()


# JSON documents: `jsonb` on PostgreSQL (comparable, indexable), JSON text on SQLite.
JSONType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {
        dict[str, Any]: JSONType,
        list[Any]: JSONType,
        dt.datetime: UTCDateTime,
    }


def table_of(model: type[Base]) -> Table:
    """The Core table of a mapped class (typed as a Table: SQLAlchemy declares a FromClause)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


def utcnow() -> dt.datetime:
    """Now, in UTC."""
    return dt.datetime.now(dt.UTC)


def make_engine(url: str, *, writer: bool = False, busy_timeout_s: float = 30) -> Engine:
    """An engine; SQLite gets WAL, foreign keys, a busy timeout and explicit BEGINs."""
    if not url.startswith("sqlite"):
        engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)
        # Many-row INSERTs (registration, documents, vectors) as multi-row VALUES statements,
        # as SQLAlchemy does for psycopg2: psycopg's executemany runs one statement per row.
        engine.dialect.use_insertmanyvalues_wo_returning = True
        return engine
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": busy_timeout_s},
        pool_size=1 if writer else 8,
        max_overflow=0 if writer else 8,
        json_serializer=_json_dumps,
        json_deserializer=_json_loads,
    )
    begin = "BEGIN IMMEDIATE" if writer else "BEGIN"

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
        ):
            cur.execute(f"PRAGMA {pragma}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)

    return engine


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


def masked_url(url: str) -> str:
    """The URL with its password replaced by ***."""
    from sqlalchemy.engine import make_url

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
        path = url.split(":///", 1)[-1]
        if not path or path == ":memory:" or not Path(path).is_file():
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


ManyFn = Callable[[Session, list[Any]], list[Any]]  # items in, one result per item out


# Run inside every write transaction of the current request, in the same transaction as its
# work: the idempotency middleware marks its key as carried out, so that a retry after a crash
# between the work's commit and the answer's record can tell (and does not do the work twice).
Marker = Callable[[Session], None]
write_marker: ContextVar[Marker | None] = ContextVar("write_marker", default=None)


@dataclass
class _Job:
    """Queued work: `run` applied to `items`, each item's result going to its future."""

    run: ManyFn
    items: list[Any]
    futures: list[asyncio.Future[Any]]
    markers: list[Marker | None]  # each item's request's `write_marker`


class Database:
    """Runs unit-of-work functions: `read` without commit, `write` in one committed transaction."""

    def __init__(self, url: str, *, group_max: int = 256) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.engine = make_engine(url)
        self._read_sessions = sessionmaker(self.engine, expire_on_commit=False)
        # Blocking writers (threads, command-line tools) wait for SQLite's lock; the loop's
        # writer never does (busy timeout 0) and retries instead.
        self.sync_engine = make_engine(url, writer=True) if self.is_sqlite else self.engine
        self._sync_sessions = sessionmaker(self.sync_engine, expire_on_commit=False)
        self.loop_engine = (
            make_engine(url, writer=True, busy_timeout_s=0) if self.is_sqlite else None
        )
        self._loop_sessions = sessionmaker(self.loop_engine, expire_on_commit=False)
        # Committed `wakeups.notify(...)` calls wake this process's background loops.
        self.wakeups = Wakeups(url)
        self.wakeups.attach(self._sync_sessions)
        self.wakeups.attach(self._loop_sessions)
        self._group_max = group_max
        self._pending: list[_Job] = []
        self._flush_scheduled = False
        self._drainer: asyncio.Task[None] | None = None  # PostgreSQL's group committer
        self._retry_delay = _MIN_RETRY_S

    async def read(self, fn: Callable[[Session], T], *, heavy: bool = False) -> T:
        """Run `fn(session)`; nothing it does is committed. `heavy` reads go to a thread."""
        if self.is_sqlite and not heavy:
            return self.read_sync(fn)
        return await anyio.to_thread.run_sync(self.read_sync, fn)

    def read_sync(self, fn: Callable[[Session], T]) -> T:
        # Closing (not rolling back) ends the transaction without expiring loaded objects.
        with self._read_sessions() as session:
            return fn(session)

    async def write(self, fn: Callable[[Session], T], *, bookkeeping: bool = False) -> T:
        """Run `fn(session)` in a transaction and commit it; errors roll back only this call.

        `bookkeeping` writes (blob claims) are not the request's work: they do not mark its
        idempotency claim carried out (`write_marker`), so a retry may still run it.
        """
        if not self.is_sqlite:
            return await anyio.to_thread.run_sync(
                partial(self.write_sync, fn, bookkeeping=bookkeeping)
            )
        marker = None if bookkeeping else write_marker.get()
        future = self._enqueue(lambda s, _: [fn(s)], None, coalesce=False, marker=marker)
        return await future

    async def write_many(self, run: Callable[[Session, list[Any]], list[T]], item: Any) -> T:
        """Like `write`, but concurrent calls with the same `run` share one call of it.

        `run(session, items)` returns one result per item. Coalescing turns many small
        requests' statements into a few multi-row ones and many commits into one (group
        commit: on PostgreSQL a group runs in a thread while the next one gathers); if the
        shared call fails, each item is retried alone, so one bad item still fails alone.
        """
        return await self._enqueue(run, item, coalesce=True, marker=write_marker.get())

    def _enqueue(
        self, run: ManyFn, item: Any, *, coalesce: bool, marker: Marker | None
    ) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        job = next((j for j in self._pending if j.run is run), None) if coalesce else None
        if job is None:
            self._pending.append(_Job(run, [item], [future], [marker]))
        else:
            job.items.append(item)
            job.futures.append(future)
            job.markers.append(marker)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            if self.is_sqlite:
                loop.call_soon(self._flush, loop)
            else:
                self._drainer = loop.create_task(self._drain())
        return future

    def write_sync(self, fn: Callable[[Session], T], *, bookkeeping: bool = False) -> T:
        """Blocking `write` for threads and command-line tools."""
        marker = None if bookkeeping else write_marker.get()
        with self._sync_sessions() as session, session.begin():
            result = _translate_integrity(fn, session)
            _mark(session, [marker])
            return result

    def _take_group(self) -> list[_Job]:
        group = self._pending[: self._group_max]
        del self._pending[: self._group_max]
        return group

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        """SQLite: commit a group on the loop (a few ms, with nobody else to wait for)."""
        group = self._take_group()
        try:
            _settle(self._commit_group(group, self._loop_sessions))
            self._retry_delay = _MIN_RETRY_S
        except OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                _fail(group, exc)
            else:  # another process holds the lock: try again soon, without blocking the loop
                self._pending[:0] = group
                loop.call_later(self._retry_delay, self._flush, loop)
                self._retry_delay = min(self._retry_delay * 2, _MAX_RETRY_S)
                return
        except Exception as exc:
            _fail(group, exc)
        if self._pending:
            loop.call_soon(self._flush, loop)
        else:
            self._flush_scheduled = False

    async def _drain(self) -> None:
        """PostgreSQL: commit groups in a thread, one at a time, until none is waiting."""
        try:
            while self._pending:
                group = self._take_group()
                try:
                    settled = await anyio.to_thread.run_sync(
                        self._commit_group, group, self._sync_sessions
                    )
                    _settle(settled)
                except Exception as exc:
                    _fail(group, exc)
        finally:
            self._flush_scheduled = False

    @staticmethod
    def _commit_group(group: list[_Job], sessions: sessionmaker[Session]) -> list[_Settled]:
        """Run every job of `group` in one transaction; what each future gets (set by the
        caller, on the loop)."""
        settled: list[_Settled] = []
        with sessions() as session:
            session.begin()
            session.connection()  # BEGIN IMMEDIATE now, so a busy lock fails before any work
            try:
                for job in group:
                    settled += _run_job(session, job)
                session.commit()
            except Exception as exc:  # the commit itself failed: every survivor fails
                session.rollback()
                return [(f, exc, None) if err is None else (f, err, None) for f, err, _ in settled]
        return settled

    def close(self) -> None:
        """Dispose of the engines."""
        for engine in {self.engine, self.sync_engine, self.loop_engine}:
            if engine is not None:
                engine.dispose()


_MIN_RETRY_S = 0.005
_MAX_RETRY_S = 0.25


_Settled = tuple["asyncio.Future[Any]", BaseException | None, Any]  # future, error, result


def _fail(group: list[_Job], exc: Exception) -> None:
    for job in group:
        for future in job.futures:
            if not future.done():
                future.set_exception(exc)


def _settle(settled: list[_Settled]) -> None:
    for future, error, result in settled:
        if future.done():  # its caller went away (cancelled)
            continue
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)


def _run_job(session: Session, job: _Job) -> list[_Settled]:
    """Run a job in a savepoint; if a shared run fails, run each item in its own."""
    live = [
        (item, fut, marker)
        for item, fut, marker in zip(job.items, job.futures, job.markers, strict=True)
        if not fut.done()
    ]
    if not live:
        return []
    try:
        with session.begin_nested():
            results = _translate_integrity(lambda s: job.run(s, [i for i, _, _ in live]), session)
            _mark(session, [m for _, _, m in live])
        return [(fut, None, result) for (_, fut, _), result in zip(live, results, strict=True)]
    except Exception as exc:
        if len(live) == 1:
            return [(live[0][1], exc, None)]
    settled: list[_Settled] = []
    for item, future, marker in live:
        try:
            with session.begin_nested():
                (result,) = _translate_integrity(partial(_run_items, job.run, [item]), session)
                _mark(session, [marker])
            settled.append((future, None, result))
        except Exception as exc:  # handed to its caller; the others go on
            settled.append((future, exc, None))
    return settled


def _mark(session: Session, markers: list[Marker | None]) -> None:
    for marker in markers:
        if marker is not None:
            marker(session)


def _run_items(run: ManyFn, items: list[Any], session: Session) -> list[Any]:
    return run(session, items)


def _translate_integrity(fn: Callable[[Session], T], session: Session) -> T:
    try:
        result = fn(session)
        session.flush()
        return result
    except IntegrityError as exc:
        raise Conflict("the change conflicts with existing data") from exc
