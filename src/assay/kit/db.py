"""Database kit: declarative base, portable column types, engines, and the unit of work.

Services receive a `Session` and never commit; `Database.write` runs a function inside one
transaction and commits it. On SQLite every write goes through one writer thread that commits
several requests' functions together (group commit), each inside its own SAVEPOINT, so a failing
request rolls back alone while the lock is taken once per group instead of once per request.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread
from sqlalchemy import JSON, DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from assay.errors import Conflict

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


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, dt.datetime: UTCDateTime}


def utcnow() -> dt.datetime:
    """Now, in UTC."""
    return dt.datetime.now(dt.UTC)


def make_engine(url: str, *, writer: bool = False) -> Engine:
    """An engine; SQLite gets WAL, foreign keys, a busy timeout and explicit BEGINs."""
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        pool_size=1 if writer else 8,
        max_overflow=0 if writer else 8,
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
            "busy_timeout=30000",
            "temp_store=MEMORY",
        ):
            cur.execute(f"PRAGMA {pragma}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)

    return engine


class Database:
    """Runs unit-of-work functions: `read` without commit, `write` in one committed transaction."""

    def __init__(self, url: str, *, group_max: int = 256) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.engine = make_engine(url)
        self.write_engine = make_engine(url, writer=True) if self.is_sqlite else self.engine
        self._read_sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(self.write_engine, expire_on_commit=False)
        self._group_max = group_max
        self._queue: queue.SimpleQueue[
            tuple[Callable[[Session], Any], concurrent.futures.Future[Any]] | None
        ] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._lock = threading.Lock()

    async def read(self, fn: Callable[[Session], T]) -> T:
        """Run `fn(session)` in a worker thread; nothing it does is committed."""
        return await anyio.to_thread.run_sync(self.read_sync, fn)

    def read_sync(self, fn: Callable[[Session], T]) -> T:
        # Closing (not rolling back) ends the transaction without expiring loaded objects.
        with self._read_sessions() as session:
            return fn(session)

    async def write(self, fn: Callable[[Session], T]) -> T:
        """Run `fn(session)` in a transaction and commit it; errors roll back only this call."""
        if not self.is_sqlite:
            return await anyio.to_thread.run_sync(self.write_sync, fn)
        return await asyncio.wrap_future(self._submit(fn))

    def write_sync(self, fn: Callable[[Session], T]) -> T:
        """Blocking `write` for threads and command-line tools."""
        if self.is_sqlite:
            return self._submit(fn).result()
        with self._write_sessions() as session, session.begin():
            return _translate_integrity(fn, session)

    def _submit(self, fn: Callable[[Session], T]) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._ensure_writer()
        self._queue.put((fn, future))
        return future

    def _ensure_writer(self) -> None:
        if self._writer is not None:
            return
        with self._lock:
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._write_loop, name="db-writer", daemon=True
                )
                self._writer.start()

    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            group = [item]
            while len(group) < self._group_max:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                group.append(nxt)
            self._commit_group(group)

    def _commit_group(
        self, group: list[tuple[Callable[[Session], Any], concurrent.futures.Future[Any]]]
    ) -> None:
        done: list[tuple[concurrent.futures.Future[Any], Any]] = []
        try:
            with self._write_sessions() as session, session.begin():
                for fn, future in group:
                    try:
                        with session.begin_nested():
                            result = _translate_integrity(fn, session)
                        done.append((future, result))
                    except BaseException as exc:
                        future.set_exception(exc)
        except BaseException as exc:
            for future, _ in done:
                future.set_exception(exc)
            return
        for future, result in done:
            future.set_result(result)

    def close(self) -> None:
        """Stop the writer thread and dispose of the engines."""
        if self._writer is not None:
            self._queue.put(None)
            self._writer.join(timeout=10)
            self._writer = None
        self.engine.dispose()
        if self.write_engine is not self.engine:
            self.write_engine.dispose()


def _translate_integrity(fn: Callable[[Session], T], session: Session) -> T:
    try:
        result = fn(session)
        session.flush()
        return result
    except IntegrityError as exc:
        raise Conflict("the change conflicts with existing data") from exc
