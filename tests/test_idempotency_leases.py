"""A running request's Idempotency-Key claim is a lease: renewed while it runs, taken over once
the process that held it is gone (it stops renewing), instead of refusing the key for 24 h.
(Replaying the kept answer, which needs a valid API key, is tested in test_http_basics.py.)"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from collections.abc import AsyncIterator
from itertools import count

import anyio.to_thread
import httpx
import pytest
from sqlalchemy import select, text, update
from starlette.types import Receive, Scope, Send

from assay.config import Settings
from assay.idempotency.middleware import IdempotencyMiddleware
from assay.idempotency.repository import CARRIED_OUT
from assay.kit.db import Database, utcnow
from assay.migrations.runner import upgrade_to_head
from assay.models import IdempotencyRecord

KEY = "k-lease"
CREDENTIAL = "Bearer sk_test"
BODY = b'{"a": 1}'


class SlowApp:
    """Answers 200 with a serial number, after `delay_s`."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.calls = count(1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        n = next(self.calls)
        await asyncio.sleep(self.delay_s)
        body = f'{{"call": {n}}}'.encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade_to_head(settings.database_url)
    database = Database(settings.database_url)
    yield database
    database.close()


def _client(app: SlowApp, db: Database, lease_s: float) -> httpx.AsyncClient:
    wrapped = IdempotencyMiddleware(app, lambda: db, ttl_s=3600, lease_s=lease_s)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=wrapped),
        base_url="http://t",
        headers={"Authorization": CREDENTIAL, "Idempotency-Key": KEY},
    )


def _leave_claim(db: Database, lease_end: dt.datetime) -> None:
    """The claim a process killed mid-request leaves: no answer, a lease nobody renews."""
    scope_key = hashlib.sha256(f"{CREDENTIAL}\n{KEY}".encode()).hexdigest()
    record = IdempotencyRecord(
        scope_key=scope_key, request_hash=_request_hash(), lease_expires_at=lease_end
    )
    db.write_sync(lambda s: s.add(record))


def _stored(db: Database) -> tuple[int, bytes, dt.datetime | None]:
    """The kept answer (a request with a valid API key would be answered it again)."""
    record = db.read_sync(lambda s: s.scalars(select(IdempotencyRecord)).one())
    return record.status_code, record.body, record.lease_expires_at


def _request_hash() -> str:
    # What the middleware hashes: the target (method, path, query, namespace) and the body.
    return hashlib.sha256(b"POST /v1/things? \n" + BODY).hexdigest()


async def _post(c: httpx.AsyncClient) -> httpx.Response:
    return await c.post("/v1/things", content=BODY, headers={"Content-Type": "application/json"})


async def test_a_dead_processs_claim_is_taken_over_once_its_lease_ran_out(db: Database) -> None:
    _leave_claim(db, utcnow() - dt.timedelta(seconds=1))
    async with _client(SlowApp(), db, lease_s=30) as c:
        r = await _post(c)
    assert r.status_code == 200 and r.json() == {"call": 1}
    assert _stored(db) == (200, b'{"call": 1}', None)


async def test_a_live_claim_is_409_with_retry_after(db: Database) -> None:
    _leave_claim(db, utcnow() + dt.timedelta(seconds=20))
    async with _client(SlowApp(), db, lease_s=30) as c:
        r = await _post(c)
    assert r.status_code == 409 and "already in progress" in r.json()["error"]["message"]
    assert 1 <= int(r.headers["retry-after"]) <= 20


async def test_a_running_request_keeps_renewing_its_claim(db: Database) -> None:
    app = SlowApp(delay_s=1.2)
    async with _client(app, db, lease_s=0.4) as c:
        first = asyncio.create_task(_post(c))
        await asyncio.sleep(0.8)  # twice the lease: only renewals keep the claim alive
        meanwhile = await _post(c)
        assert meanwhile.status_code == 409, meanwhile.text
        assert (await first).json() == {"call": 1}
    assert _stored(db) == (200, b'{"call": 1}', None)


def _leave_carried_out_claim(db: Database, lease_end: dt.datetime) -> None:
    """The claim of a request killed after its work committed, before its answer was kept."""
    _leave_claim(db, lease_end)
    db.write_sync(lambda s: s.execute(update(IdempotencyRecord).values(status_code=CARRIED_OUT)))


async def test_a_dead_claim_whose_work_committed_is_not_run_again(db: Database) -> None:
    _leave_carried_out_claim(db, utcnow() - dt.timedelta(seconds=1))
    app = SlowApp()
    async with _client(app, db, lease_s=30) as c:
        r = await _post(c)
    assert r.status_code == 409 and "answer was kept" in r.json()["error"]["message"]
    assert next(app.calls) == 1  # the app never ran


class WritingApp:
    """Commits one write the way `how` says, then answers what its claim looks like then."""

    def __init__(self, db: Database, how: str) -> None:
        self.db, self.how = db, how

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        work = text("CREATE TABLE IF NOT EXISTS work (n INTEGER)")
        if self.how == "write":
            await self.db.write(lambda s: s.execute(work))
        elif self.how == "write_many":
            await self.db.write_many(lambda s, items: [s.execute(work) for _ in items], 1)
        else:
            await anyio.to_thread.run_sync(self.db.write_sync, lambda s: s.execute(work))
        status = await self.db.read(
            lambda s: s.scalars(select(IdempotencyRecord.status_code)).one()
        )
        body = f'{{"claim": {status}}}'.encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


@pytest.mark.parametrize("how", ["write", "write_many", "write_sync"])
async def test_a_requests_writes_mark_its_claim_carried_out_as_they_commit(
    db: Database, how: str
) -> None:
    wrapped = IdempotencyMiddleware(WritingApp(db, how), lambda: db, ttl_s=3600)
    headers = {"Authorization": CREDENTIAL, "Idempotency-Key": KEY}
    transport = httpx.ASGITransport(app=wrapped)
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as c:
        r = await _post(c)
    assert r.json() == {"claim": CARRIED_OUT}
    assert _stored(db)[0] == 200  # then the answer replaced the mark
