"""The unit of work: group commit on SQLite, each call in its own savepoint."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from assay.errors import Conflict, NotFound
from assay.kit.db import Database
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
        assert time.perf_counter() - started < 0.5  # the loop kept running
        assert not pending.done()
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert await asyncio.wait_for(pending, 5) == "waits"
    assert await db.read(_count) == 1
