"""The unit of work: group commit on SQLite, each call in its own savepoint."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from assay.errors import Conflict, NotFound
from assay.kit.db import Database, _CommitPacer
from assay.migrations.runner import upgrade_to_head
from assay.models import Namespace


@pytest.fixture
def db(tmp_path: Path) -> Database:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    upgrade_to_head(url)
    database = Database(url)
    yield database
    database.close()


def _add(name: str, fail: bool = False):
    def fn(session) -> str:
        session.add(Namespace(namespace_id=f"ns_{name:0>20}", namespace_name=name))
        session.flush()
        if fail:
            raise NotFound("boom")
        return name

    return fn


def _count(session) -> int:
    return int(session.scalar(select(func.count()).select_from(Namespace)))


async def test_concurrent_writes_commit_and_a_failure_rolls_back_alone(db: Database) -> None:
    calls = [db.write(_add(f"n{i}", fail=(i % 7 == 3))) for i in range(50)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    failed = [r for r in results if isinstance(r, Exception)]
    assert all(isinstance(r, NotFound) for r in failed) and len(failed) == 7
    assert await db.read(_count) == 43
    names = await db.read(lambda s: set(s.scalars(select(Namespace.namespace_name))))
    assert "n3" not in names and "n4" in names


async def test_unique_violation_becomes_conflict_and_spares_the_group(db: Database) -> None:
    await db.write(_add("dup"))
    results = await asyncio.gather(
        db.write(_add("dup")), db.write(_add("other")), return_exceptions=True
    )
    assert isinstance(results[0], Conflict)
    assert results[1] == "other"
    assert await db.read(_count) == 2


def test_write_sync_and_wal_mode(db: Database) -> None:
    assert db.write_sync(_add("sync")) == "sync"
    assert db.read_sync(lambda s: s.execute(text("PRAGMA journal_mode")).scalar()) == "wal"
    assert db.read_sync(lambda s: s.execute(text("PRAGMA foreign_keys")).scalar()) == 1


async def test_write_many_shares_one_call_and_isolates_a_bad_item(db: Database) -> None:
    calls: list[int] = []

    def add_all(session, names: list[str]) -> list[str]:
        calls.append(len(names))
        for name in names:
            _add(name, fail=name == "bad")(session)
        return names

    names = ["a", "b", "bad", "c"]
    results = await asyncio.gather(
        *(db.write_many(add_all, n) for n in names), return_exceptions=True
    )
    assert results[:2] == ["a", "b"] and results[3] == "c"
    assert isinstance(results[2], NotFound)
    assert calls[0] == 4  # one shared call first, then one per item after it failed
    assert await db.read(_count) == 3


async def test_a_lock_held_by_another_process_never_blocks_the_loop(db: Database, tmp_path) -> None:
    other = sqlite3.connect(tmp_path / "a.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds SQLite's lock
    try:
        pending = asyncio.ensure_future(db.write(_add("waits")))
        started = time.perf_counter()
        await asyncio.sleep(0.2)
        assert time.perf_counter() - started < 2.0  # the loop kept running
        assert not pending.done()
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert await asyncio.wait_for(pending, 5) == "waits"
    assert await db.read(_count) == 1


def test_the_pacer_holds_a_small_group_only_right_after_a_larger_commit() -> None:
    pacer = _CommitPacer()
    pacer.queued = 1
    assert pacer.hold_s(now=0.0) == 0  # nothing committed yet: an idle server never waits
    pacer.took(1)
    pacer.committed(now=0.0)
    pacer.queued = 1
    assert pacer.hold_s(now=0.0005) == 0  # a lone client: groups of one never wait
    pacer.queued = 5
    pacer.took(5)
    pacer.committed(now=1.0)
    pacer.queued = 2
    assert pacer.hold_s(now=1.0005) == _CommitPacer.HOLD_S  # smaller than the last five
    assert pacer.hold_s(now=1.0 + 2 * _CommitPacer.BUSY_S) == 0  # the load has gone
    pacer.queued = 5
    assert pacer.hold_s(now=1.0005) == 0  # made up


async def test_a_held_group_commits_as_soon_as_it_has_gathered(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Wide windows, so that only the gathering (not the machine's speed) decides.
    monkeypatch.setattr(_CommitPacer, "HOLD_S", 3.0)
    monkeypatch.setattr(_CommitPacer, "BUSY_S", 30.0)
    calls: list[int] = []

    def add_all(session, names: list[str]) -> list[str]:
        calls.append(len(names))
        return [_add(name)(session) for name in names]

    # One write at a time (a lone client) is never held.
    started = time.perf_counter()
    for i in range(3):
        await db.write_many(add_all, f"a{i}")
    assert time.perf_counter() - started < 2.0  # not held: that alone would take 3 s
    # After a group of four, one write is held until three more make up the four.
    await asyncio.gather(*(db.write_many(add_all, f"b{i}") for i in range(4)))
    started = time.perf_counter()
    first = asyncio.ensure_future(db.write_many(add_all, "c0"))
    await asyncio.sleep(0.05)
    assert not first.done()
    rest = [db.write_many(add_all, f"c{i}") for i in range(1, 4)]
    assert await asyncio.gather(first, *rest) == ["c0", "c1", "c2", "c3"]
    assert time.perf_counter() - started < 2.0  # released by the fourth write, not the 3 s timer
    assert calls == [1, 1, 1, 4, 4]
    assert await db.read(_count) == 11


def test_sqlite_goes_through_assays_dialect_with_statements_cached(db: Database) -> None:
    import warnings

    from sqlalchemy.exc import SAWarning

    from assay.kit.engines import SQLiteDialect

    for engine in (db.engine, db.sync_engine, db.loop_engine):
        assert engine is not None and isinstance(engine.dialect, SQLiteDialect)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SAWarning)  # "will not make use of SQL compilation caching"
        assert db.write_sync(_add("cached")) == "cached"
        assert db.read_sync(_count) == 1
    begins = {db.engine.dialect.begin_sql, db.sync_engine.dialect.begin_sql}
    assert begins == {"BEGIN", "BEGIN IMMEDIATE"}


async def test_the_loops_commits_leave_wal_checkpoints_to_a_thread(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from assay.kit.checkpoints import WalCheckpointer

    def autocheckpoint(engine) -> int:
        with engine.connect() as conn:
            return int(conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar())

    assert autocheckpoint(db.loop_engine) == 0  # a checkpoint would stall every request
    assert autocheckpoint(db.sync_engine) == 1000  # SQLite's default, for blocking writers
    monkeypatch.setattr(WalCheckpointer, "EVERY_COMMITS", 5)
    ran: list[tuple[str, list]] = []
    checkpoint = WalCheckpointer._checkpoint

    def recorded(self) -> None:
        checkpoint(self)
        frames = self._connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        ran.append((threading.current_thread().name, list(frames)))

    monkeypatch.setattr(WalCheckpointer, "_checkpoint", recorded)
    for i in range(6):
        await db.write(_add(f"n{i}"))
    db.close()  # waits for the checkpoint thread
    ((thread, (busy, logged, copied)),) = ran  # after the fifth commit
    assert thread.startswith("sqlite-checkpoint")
    assert busy == 0 and logged == copied  # the log was copied back whole
    reopened = Database(db.url)
    try:
        assert reopened.read_sync(_count) == 6
    finally:
        reopened.close()
