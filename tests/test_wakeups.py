"""Workers and the webhook dispatcher are woken by committed work, not by polling.

Every loop here runs with a fallback timer of 30 s, so a start well inside a second can only come
from a wake-up. The bounds are generous for a loaded CI machine: the milliseconds themselves are
measured by `bench/latency.py`, not by a timed test. On PostgreSQL, two `Database` objects stand
for two processes: one commits, the other hears it through LISTEN/NOTIFY.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from assay.batches.service import JOB_KIND
from assay.config import Settings
from assay.context import AppContext
from assay.engine.local import LocalWorkers
from assay.jobs import repository as jobs
from assay.kit.db import Database, utcnow
from assay.kit.fetch import FetchPolicy
from assay.kit.wakeups import EVENTS, JOBS, notify
from assay.migrations.runner import upgrade_to_head
from assay.models import Job
from assay.webhooks.dispatcher import WebhookDispatcher
from tests.conftest import ADMIN_KEY, open_client

NEVER_S = 30.0  # the loops' fallback timer: far longer than any wait a test allows
PROMPT_S = 0.5  # commit to job start: a wake-up, never the 30 s fallback
SCHEMA = {"properties": {"body": {"type": "text", "required": True}}}
NS = {"X-Namespace": "wake"}


@dataclass
class Recorder:
    """A job body that notes when each run starts; fails the first `fail_first` runs."""

    fail_first: int = 0
    starts: list[float] = field(default_factory=list)
    jobs: list[Job] = field(default_factory=list)
    ran: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, job: Job) -> None:
        self.starts.append(time.monotonic())
        self.jobs.append(job)
        self.ran.set()
        if len(self.starts) <= self.fail_first:
            raise RuntimeError("failing on purpose")

    async def give_up(self, job: Job, error: str) -> None:
        pass


def _settings(tmp_path: Path, **kw: Any) -> Settings:
    return Settings(data_dir=tmp_path / "data", admin_key=ADMIN_KEY, workers=0, **kw)


def _ctx(client: httpx.AsyncClient) -> AppContext:
    return client._transport.app.state.ctx  # type: ignore[attr-defined,no-any-return]


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The app with no background loops of its own: each test starts the one it measures."""
    async with open_client(_settings(tmp_path, allow_private_urls=True)) as c:
        for path, body, headers in (
            ("/v1/namespaces", {"namespace_name": "wake", "feature_extractors": []}, {}),
            ("/v1/buckets", {"bucket_name": "b", "bucket_schema": SCHEMA}, NS),
        ):
            r = await c.post(path, json=body, headers=headers)
            assert r.status_code == 200, r.text
        yield c


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    url = _settings(tmp_path).database_url
    (tmp_path / "data").mkdir(parents=True, exist_ok=True)
    upgrade_to_head(url)
    db = Database(url)
    yield db
    db.close()


async def _object(client: httpx.AsyncClient, i: int = 0) -> str:
    blobs = [{"property": "body", "type": "text", "content": f"text {i}"}]
    body = {"objects": [{"metadata": {"i": i}, "blobs": blobs}]}
    r = await client.post("/v1/buckets/b/objects/batch", headers=NS, json=body)
    assert r.status_code == 200 and r.json()["failed_count"] == 0, r.text
    return str(r.json()["succeeded"][0]["object_id"])


async def _idle(workers: LocalWorkers) -> None:
    """Start the workers and let them find nothing, so they are asleep on their timer."""
    workers.start()
    await asyncio.sleep(0.2)


def _enqueue(session: Session) -> str:
    return jobs.enqueue(session, "ns_wake", "test.kind", {}).job_id


class Boom(Exception):
    pass


def _enqueue_then_fail(session: Session) -> None:
    _enqueue(session)
    session.flush()
    raise Boom


# --- jobs --------------------------------------------------------------------------------


async def test_a_job_submitted_over_the_api_starts_within_milliseconds(
    client: httpx.AsyncClient,
) -> None:
    object_id = await _object(client)
    r = await client.post("/v1/buckets/b/batches", headers=NS, json={"object_ids": [object_id]})
    assert r.status_code == 200, r.text
    batch_id = r.json()["batch_id"]
    body = Recorder()
    workers = LocalWorkers(_ctx(client).db, {JOB_KIND: body}, count=2, idle_s=NEVER_S)
    await _idle(workers)
    try:
        r = await client.post(f"/v1/buckets/b/batches/{batch_id}/submit", headers=NS)
        answered = time.monotonic()  # the enqueue committed before the answer
        assert r.status_code == 200, r.text
        await asyncio.wait_for(body.ran.wait(), 5)
    finally:
        await workers.stop()
    latency = body.starts[0] - answered
    assert latency < PROMPT_S, f"the job started {latency * 1000:.1f} ms after the commit"


async def test_a_commit_in_another_thread_wakes_the_loop(database: Database) -> None:
    body = Recorder()
    workers = LocalWorkers(database, {"test.kind": body}, idle_s=NEVER_S)
    await _idle(workers)
    try:
        await anyio.to_thread.run_sync(database.write_sync, _enqueue)
        committed = time.monotonic()
        await asyncio.wait_for(body.ran.wait(), 5)
    finally:
        await workers.stop()
    assert body.starts[0] - committed < PROMPT_S


async def test_a_rolled_back_enqueue_wakes_nobody(database: Database) -> None:
    wakeups = database.wakeups
    mark = wakeups.mark(JOBS)
    with pytest.raises(Boom):
        await database.write(_enqueue_then_fail)
    with pytest.raises(Boom):
        await anyio.to_thread.run_sync(database.write_sync, _enqueue_then_fail)
    # On SQLite these share one committed group; the failing one's savepoint rolls back alone.
    results = await asyncio.gather(
        database.write(lambda s: s.scalar(text("SELECT 1"))),
        database.write(_enqueue_then_fail),
        return_exceptions=True,
    )
    assert results[0] == 1 and isinstance(results[1], Boom)
    assert not await wakeups.wait(JOBS, 0.3, since=mark)
    assert wakeups.mark(JOBS) == mark
    assert await database.read(lambda s: s.scalar(select(Job.job_id))) is None


async def test_a_rolled_back_savepoint_takes_its_wake_up_with_it(database: Database) -> None:
    def work(session: Session) -> None:
        with pytest.raises(Boom), session.begin_nested():
            notify(session, EVENTS)
            raise Boom
        with session.begin_nested():
            notify(session, JOBS)

    marks = {c: database.wakeups.mark(c) for c in (JOBS, EVENTS)}
    await database.write(work)
    assert await database.wakeups.wait(JOBS, 1, since=marks[JOBS])
    assert not await database.wakeups.wait(EVENTS, 0.2, since=marks[EVENTS])


async def test_a_failed_job_runs_again_when_its_retry_falls_due(database: Database) -> None:
    body = Recorder(fail_first=1)
    workers = LocalWorkers(database, {"test.kind": body}, idle_s=NEVER_S)
    await _idle(workers)
    try:
        await database.write(_enqueue)
        deadline = time.monotonic() + 5  # the backoff is 0.5-1.5 s
        while len(body.starts) < 2:
            assert time.monotonic() < deadline, body.starts
            await asyncio.sleep(0.01)
    finally:
        await workers.stop()
    late = (utcnow() - body.jobs[1].run_after).total_seconds()
    assert 0 <= late < 0.5, f"the retry started {late:.3f} s after it fell due"


# --- webhooks ------------------------------------------------------------------------------


class Receiver:
    """A loopback HTTP server noting when each POST arrives; answers 500 to the first few."""

    def __init__(self, fail_first: int = 0) -> None:
        self.arrivals: list[tuple[float, int]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = 500 if len(outer.arrivals) < fail_first else 200
                outer.arrivals.append((time.monotonic(), status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rx = Receiver()
    yield rx
    rx.close()


async def _dispatching(client: httpx.AsyncClient, **kw: Any) -> tuple[asyncio.Event, Any]:
    policy = FetchPolicy(allow_private=True, timeout_s=2.0)
    dispatcher = WebhookDispatcher(_ctx(client).db, policy, **kw)
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run_forever(stop, idle_s=NEVER_S))
    await asyncio.sleep(0.2)  # asleep on its timer
    return stop, task


async def _arrivals(rx: Receiver, n: int, timeout_s: float = 5) -> list[tuple[float, int]]:
    deadline = time.monotonic() + timeout_s
    while len(rx.arrivals) < n:
        assert time.monotonic() < deadline, rx.arrivals
        await asyncio.sleep(0.005)
    return rx.arrivals


async def test_an_event_is_sent_to_its_webhook_within_milliseconds(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    r = await client.post(
        "/v1/webhooks", headers=NS, json={"url": receiver.url, "event_types": ["*"]}
    )
    assert r.status_code == 201, r.text
    stop, task = await _dispatching(client)
    try:
        await _object(client)  # object.created, committed before the answer
        answered = time.monotonic()
        (arrived, status), *_ = await _arrivals(receiver, 1)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)  # stopping does not wait out the timer either
    assert status == 200
    latency = arrived - answered
    assert latency < PROMPT_S, f"the webhook arrived {latency * 1000:.1f} ms after the commit"


async def test_a_failed_delivery_is_retried_when_due_not_at_the_fallback(
    client: httpx.AsyncClient,
) -> None:
    rx = Receiver(fail_first=1)
    try:
        body = {"url": rx.url, "event_types": ["*"]}
        assert (await client.post("/v1/webhooks", headers=NS, json=body)).status_code == 201
        stop, task = await _dispatching(client, base_delay_s=0.1)  # retry after 50-150 ms
        try:
            await _object(client)
            (first, _), (second, status) = await _arrivals(rx, 2)
        finally:
            stop.set()
            await asyncio.wait_for(task, 5)
    finally:
        rx.close()
    assert status == 200 and second - first < 0.5, second - first


# --- PostgreSQL: two processes -------------------------------------------------------------


@pytest.fixture
async def two_databases(database: Database) -> AsyncIterator[Database]:
    """A second `Database` on the same PostgreSQL database, listening: another process."""
    other = Database(database.url)
    other.wakeups.start_listening()
    try:
        await asyncio.wait_for(other.wakeups.listening.wait(), 10)
        yield other
    finally:
        await other.wakeups.stop_listening()
        other.close()


@pytest.mark.postgres_only
async def test_a_commit_in_one_process_wakes_another(
    database: Database, two_databases: Database
) -> None:
    other = two_databases.wakeups
    for channel, work in ((JOBS, _enqueue), (EVENTS, _emit)):
        mark = other.mark(channel)
        started = time.monotonic()
        await database.write(work)
        committed = time.monotonic()
        assert await other.wait(channel, 5, since=mark)
        woke = time.monotonic()
        assert woke - committed < 0.1, (channel, woke - committed, committed - started)


@pytest.mark.postgres_only
async def test_a_rollback_in_one_process_wakes_no_other(
    database: Database, two_databases: Database
) -> None:
    mark = two_databases.wakeups.mark(JOBS)
    with pytest.raises(Boom):
        await database.write(_enqueue_then_fail)
    assert not await two_databases.wakeups.wait(JOBS, 0.3, since=mark)


@pytest.mark.postgres_only
async def test_the_listener_reconnects_after_losing_its_connection(
    database: Database, two_databases: Database
) -> None:
    other = two_databases.wakeups
    assert other.connects == 1
    killed = await database.write(
        lambda s: s.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND query LIKE 'LISTEN %'"
            )
        )
    )
    assert killed == 1
    deadline = time.monotonic() + 10
    while other.connects < 2:
        assert time.monotonic() < deadline, "the listener did not reconnect"
        await asyncio.sleep(0.02)
    await asyncio.wait_for(other.listening.wait(), 5)
    mark = other.mark(JOBS)
    await database.write(_enqueue)
    assert await other.wait(JOBS, 5, since=mark)


def _emit(session: Session) -> None:
    notify(session, EVENTS)  # what `emit` does (events need a real namespace: see above)
