"""Webhooks end to end: CRUD over the ASGI app, real deliveries to a loopback HTTP receiver.

The dispatcher is driven round by round from the tests (no background loop), with tiny delays.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from assay.config import Settings
from assay.context import AppContext
from assay.events.outbox import emit, emit_many
from assay.kit.db import Database, utcnow
from assay.kit.fetch import FetchPolicy
from assay.main import create_app
from assay.models import Event
from assay.webhooks import signing
from assay.webhooks.dispatcher import WebhookDispatcher
from assay.webhooks.repository import DispatchRepository
from tests.conftest import ADMIN_KEY


@dataclass
class Received:
    at: float
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def doc(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


class _Server(ThreadingHTTPServer):
    request_queue_size = 64  # the default 5 drops concurrent connects (a 1 s SYN retry)
    daemon_threads = True


@dataclass
class Receiver:
    """A loopback HTTP server that records every POST and answers 500 to the first `fail_first`."""

    fail_first: int = 0
    delay_s: float = 0.0
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with outer.lock:
                    status = 500 if len(outer.requests) < outer.fail_first else 200
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    outer.requests.append(Received(time.monotonic(), headers, body, status))
                time.sleep(outer.delay_s)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def successes(self) -> list[Received]:
        return [r for r in self.requests if r.status == 200]


@dataclass
class Env:
    client: httpx.AsyncClient
    ctx: AppContext
    ns_a: str
    ns_b: str
    dispatchers: list[WebhookDispatcher] = field(default_factory=list)

    def dispatcher(self, db: Database | None = None, **kw: Any) -> WebhookDispatcher:
        allow_private, timeout_s = kw.pop("allow_private", True), kw.pop("timeout_s", 2.0)
        policy = FetchPolicy(allow_private=allow_private, timeout_s=timeout_s)
        kw.setdefault("base_delay_s", 0.01)
        d = WebhookDispatcher(db or self.ctx.db, policy, **kw)
        self.dispatchers.append(d)
        return d

    async def hook(self, url: str, event_types: list[str], ns: str | None = None, **kw: Any) -> Any:
        body = {"url": url, "event_types": event_types, **kw}
        r = await self.client.post("/v1/webhooks", json=body, headers=self.h(ns))
        assert r.status_code == 201, r.text
        return r.json()

    def h(self, ns: str | None = None) -> dict[str, str]:
        return {"X-Namespace": ns or self.ns_a}

    async def emit(self, event_type: str, ns: str | None = None, **data: Any) -> str:
        ns_id = ns or self.ns_a
        return await self.ctx.db.write(
            lambda s: emit(s, ns_id, event_type, ("object", "obj_x"), data).event_id
        )

    async def deliveries(self, webhook_id: str, ns: str | None = None) -> list[dict[str, Any]]:
        r = await self.client.get(f"/v1/webhooks/{webhook_id}/deliveries", headers=self.h(ns))
        assert r.status_code == 200, r.text
        return list(r.json()["results"])


async def open_env(settings: Settings) -> AsyncIterator[Env]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://assay.test", headers=auth
        ) as client:
            ids = []
            for name in ("tenant-a", "tenant-b"):
                body = {"namespace_name": name, "feature_extractors": []}
                r = await client.post("/v1/namespaces", json=body)
                assert r.status_code == 200, r.text
                ids.append(r.json()["namespace_id"])
            env = Env(client, app.state.ctx, *ids)
            yield env
            for d in env.dispatchers:
                await d.aclose()


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    settings = Settings(
        data_dir=tmp_path / "data", admin_key=ADMIN_KEY, allow_private_urls=True, workers=0
    )  # the tests drive the dispatcher themselves
    async for e in open_env(settings):
        yield e


@pytest.fixture
async def strict_env(tmp_path: Path) -> AsyncIterator[Env]:
    settings = Settings(data_dir=tmp_path / "strict", admin_key=ADMIN_KEY, workers=0)
    async for e in open_env(settings):
        yield e


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(**kw: Any) -> Receiver:
        made.append(Receiver(**kw))
        return made[-1]

    yield make
    for r in made:
        r.close()


async def run_until(
    dispatchers: list[WebhookDispatcher], done: Callable[[], bool], timeout_s: float = 8.0
) -> int:
    """Run rounds (concurrently when several) until `done()`; returns the total sends."""
    deadline, sent = time.monotonic() + timeout_s, 0
    while not done():
        assert time.monotonic() < deadline, "dispatch did not finish in time"
        sent += sum(await asyncio.gather(*(d.run_once() for d in dispatchers)))
        await asyncio.sleep(0.002)
    return sent


# --- CRUD -------------------------------------------------------------------------------


async def test_secret_is_shown_once_and_crud_works(env: Env, receivers: Any) -> None:
    url = receivers().url
    created = await env.hook(url, ["batch.completed"], description="ci")
    wid = created["webhook_id"]
    assert wid.startswith("wh_") and created["secret"].startswith("whsec_")
    assert created["event_types"] == ["batch.completed"] and created["is_active"] is True
    given = await env.hook(url, ["*"], secret="my-own-secret-0123456789")
    assert given["secret"] == "my-own-secret-0123456789"

    answers = [
        await env.client.get(f"/v1/webhooks/{wid}", headers=env.h()),
        await env.client.get("/v1/webhooks", headers=env.h()),
        await env.client.post("/v1/webhooks/list", json={}, headers=env.h()),
        await env.client.post("/v1/organizations/webhooks/list", json={}, headers=env.h()),
        await env.client.get(f"/v1/organizations/webhooks/{wid}", headers=env.h()),
    ]
    for r in answers:
        assert r.status_code == 200, r.text
        assert "secret" not in r.text and created["secret"] not in r.text
    listed = answers[1].json()
    assert [w["webhook_id"] for w in listed["results"]] == [given["webhook_id"], wid]
    assert listed["total"] == 2
    page = (await env.client.get("/v1/webhooks?limit=1", headers=env.h())).json()
    assert len(page["results"]) == 1 and page["pagination"]["next_cursor"]
    filtered = await env.client.post(
        "/v1/webhooks/list", json={"event_type": "object.created"}, headers=env.h()
    )
    assert [w["webhook_id"] for w in filtered.json()["results"]] == [given["webhook_id"]]

    r = await env.client.patch(
        f"/v1/webhooks/{wid}",
        json={"event_types": ["object.created", "object.deleted"], "is_active": False},
        headers=env.h(),
    )
    assert r.status_code == 200, r.text
    assert r.json()["event_types"] == ["object.created", "object.deleted"]
    assert r.json()["is_active"] is False and "secret" not in r.text

    r = await env.client.delete(f"/v1/organizations/webhooks/{wid}", headers=env.h())
    assert r.status_code == 204 and r.content == b""  # the hosted spelling answers 204
    assert (await env.client.get(f"/v1/webhooks/{wid}", headers=env.h())).status_code == 404


async def test_hosted_alias_accepts_the_hosted_body(env: Env, receivers: Any) -> None:
    body = {
        "webhook_name": "ci alerts",
        "event_types": ["batch.completed"],
        "channels": [{"channel": "webhook", "configs": {"url": receivers().url}}],
    }
    r = await env.client.post("/v1/organizations/webhooks/", json=body, headers=env.h())
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["webhook_name"] == "ci alerts" and out["secret"]
    assert out["channels"] == [{"channel": "webhook", "configs": {"url": out["url"]}}]


async def test_unknown_event_type_is_422_naming_the_allowed_ones(env: Env) -> None:
    body = {"url": "http://127.0.0.1:9/x", "event_types": ["batch.completed", "nope.happened"]}
    r = await env.client.post("/v1/webhooks", json=body, headers=env.h())
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert "nope.happened" in error["message"] and "batch.completed" in error["message"]
    assert error["details"]["validation_errors"][0]["loc"] == ["event_types"]
    body = {"url": "http://127.0.0.1:9/x", "event_types": []}
    assert (await env.client.post("/v1/webhooks", json=body, headers=env.h())).status_code == 422


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "ftp://example.com/hook",
        "http://user:pw@93.184.216.34/hook",
        "not a url",
    ],
)
async def test_private_and_odd_urls_are_refused(strict_env: Env, url: str) -> None:
    body = {"url": url, "event_types": ["*"]}
    r = await strict_env.client.post("/v1/webhooks", json=body, headers=strict_env.h())
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"]["validation_errors"][0]["loc"] == ["url"]


async def test_public_url_is_accepted_and_patch_is_checked_too(strict_env: Env) -> None:
    created = await strict_env.hook("http://93.184.216.34/hook", ["*"])
    r = await strict_env.client.patch(
        f"/v1/webhooks/{created['webhook_id']}",
        json={"url": "http://127.0.0.1/hook"},
        headers=strict_env.h(),
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"]["validation_errors"][0]["loc"] == ["url"]


async def test_webhooks_of_another_namespace_are_invisible(env: Env, receivers: Any) -> None:
    wid = (await env.hook(receivers().url, ["*"]))["webhook_id"]
    sent = await env.client.post(f"/v1/webhooks/{wid}/test", headers=env.h())
    did = sent.json()["delivery_id"]
    b = env.h(env.ns_b)
    for r in [
        await env.client.get(f"/v1/webhooks/{wid}", headers=b),
        await env.client.get(f"/v1/organizations/webhooks/{wid}", headers=b),
        await env.client.patch(f"/v1/webhooks/{wid}", json={"is_active": False}, headers=b),
        await env.client.delete(f"/v1/webhooks/{wid}", headers=b),
        await env.client.get(f"/v1/webhooks/{wid}/deliveries", headers=b),
        await env.client.post(f"/v1/webhooks/{wid}/test", headers=b),
        await env.client.post(f"/v1/webhooks/{wid}/deliveries/{did}/redeliver", headers=b),
    ]:
        assert r.status_code == 404, r.text
        assert r.json()["error"]["type"] == "NotFoundError"
    assert (await env.client.get("/v1/webhooks", headers=b)).json()["results"] == []
    assert (await env.client.get(f"/v1/webhooks/{wid}", headers=env.h())).status_code == 200


async def test_read_keys_cannot_change_webhooks(env: Env, receivers: Any) -> None:
    r = await env.client.post("/v1/keys", json={"name": "reader", "role": "read"})
    assert r.status_code == 201, r.text
    reader = {"Authorization": f"Bearer {r.json()['key']}", **env.h()}
    body = {"url": receivers().url, "event_types": ["*"]}
    assert (await env.client.post("/v1/webhooks", json=body, headers=reader)).status_code == 403
    assert (await env.client.get("/v1/webhooks", headers=reader)).status_code == 200


# --- delivery ---------------------------------------------------------------------------


async def test_deliveries_are_signed_and_verifiable(env: Env, receivers: Any) -> None:
    rx = receivers()
    created = await env.hook(rx.url, ["*"])
    event_id = await env.emit("object.created", color="red")
    assert await env.dispatcher().run_once() == 1

    (got,) = rx.requests
    assert got.headers["content-type"] == "application/json"
    assert got.headers["assay-event-id"] == event_id
    doc = got.doc
    assert doc["event_id"] == event_id and doc["event_type"] == "object.created"
    assert doc["namespace_id"] == env.ns_a and doc["data"] == {"color": "red"}
    assert doc["subject"] == {"type": "object", "id": "obj_x"}
    assert doc["occurred_at"].endswith("Z")

    header, secret = got.headers["assay-signature"], created["secret"]
    assert signing.verify(secret, got.body, header)
    assert not signing.verify("whsec_wrong", got.body, header)
    assert not signing.verify(secret, got.body.replace(b"red", b"blue"), header)
    t = int(header.split(",")[0].removeprefix("t="))
    assert not signing.verify(secret, got.body, header, now=t + 301)

    (delivery,) = await env.deliveries(created["webhook_id"])
    assert delivery["status"] == "DELIVERED" and delivery["attempts"] == 1
    assert delivery["last_status_code"] == 200 and delivery["delivered_at"]
    assert delivery["event_id"] == event_id and delivery["next_attempt_at"] is None


def test_signing_helpers() -> None:
    body = b'{"a":1}'
    header = signing.sign("s3cret", body, 1_700_000_000)
    assert header.startswith("t=1700000000,v1=")
    assert signing.verify("s3cret", body, header, now=1_700_000_100)
    rotated = f"{header},v1={'0' * 64}"
    assert signing.verify("s3cret", body, rotated, now=1_700_000_000)
    for bad in ["", "t=abc,v1=00", "v1=00", f"t=1700000000,v2={header[-64:]}"]:
        assert not signing.verify("s3cret", body, bad, now=1_700_000_000)


async def test_retries_with_backoff_until_success(env: Env, receivers: Any) -> None:
    rx = receivers(fail_first=3)
    wid = (await env.hook(rx.url, ["object.created"]))["webhook_id"]
    await env.emit("object.created")
    # The first retry is due 50-150 ms after the failure: room for the checks in between on a
    # loaded machine (with 20-60 ms, "not due yet" has failed there).
    base = 0.1
    dispatcher = env.dispatcher(base_delay_s=base)

    assert await dispatcher.run_once() == 1
    (first,) = await env.deliveries(wid)
    assert first["status"] == "PENDING" and first["attempts"] == 1
    assert first["last_status_code"] == 500 and first["last_error"] == "HTTP 500"
    assert first["next_attempt_at"] > first["created_at"]
    assert await dispatcher.run_once() == 0  # not due yet

    await run_until([dispatcher], lambda: bool(rx.successes()))
    assert [r.status for r in rx.requests] == [500, 500, 500, 200]
    assert len({r.headers["assay-event-id"] for r in rx.requests}) == 1
    gaps = [b.at - a.at for a, b in zip(rx.requests, rx.requests[1:], strict=False)]
    for attempt, gap in enumerate(gaps, start=1):  # base * 2^(n-1), jittered down to half
        assert gap >= 0.5 * base * 2 ** (attempt - 1) * 0.9, gaps
    (done,) = await env.deliveries(wid)
    assert done["status"] == "DELIVERED" and done["attempts"] == 4
    assert done["delivered_at"] and done["last_status_code"] == 200 and done["last_error"] is None
    assert await dispatcher.run_once() == 0
    assert len(rx.successes()) == 1


async def test_retry_horizon_turns_a_delivery_failed(env: Env, receivers: Any) -> None:
    rx = receivers(fail_first=10**6)
    wid = (await env.hook(rx.url, ["*"]))["webhook_id"]
    await env.emit("batch.failed")
    # A horizon of several retries: on a loaded machine one attempt alone has taken > 0.2 s.
    dispatcher = env.dispatcher(base_delay_s=0.02, retry_horizon_s=1.0)

    async def failed() -> bool:
        log = await env.deliveries(wid)
        return bool(log) and log[0]["status"] == "FAILED"

    deadline = time.monotonic() + 8
    while not await failed():
        assert time.monotonic() < deadline
        await dispatcher.run_once()
        await asyncio.sleep(0.005)
    (gone,) = await env.deliveries(wid)
    assert gone["attempts"] >= 2 and gone["attempts"] == len(rx.requests)
    assert gone["next_attempt_at"] is None and gone["delivered_at"] is None
    await asyncio.sleep(0.1)
    assert await dispatcher.run_once() == 0


async def test_event_types_filter_and_star_gets_everything(env: Env, receivers: Any) -> None:
    batches, everything, paused, other_ns = receivers(), receivers(), receivers(), receivers()
    await env.hook(batches.url, ["batch.completed"])
    await env.hook(everything.url, ["*"])
    await env.hook(paused.url, ["*"], is_active=False)
    await env.hook(other_ns.url, ["*"], ns=env.ns_b)
    await env.emit("object.created")
    await env.emit("batch.completed")
    assert await run_until([env.dispatcher()], lambda: len(everything.requests) == 2) == 3

    assert [r.doc["event_type"] for r in batches.requests] == ["batch.completed"]
    assert sorted(r.doc["event_type"] for r in everything.requests) == [
        "batch.completed",
        "object.created",
    ]
    assert paused.requests == [] and other_ns.requests == []


async def test_test_endpoint_and_redeliver(env: Env, receivers: Any) -> None:
    rx, bystander = receivers(), receivers()
    wid = (await env.hook(rx.url, ["*"]))["webhook_id"]
    await env.hook(bystander.url, ["*"])
    r = await env.client.post(f"/v1/webhooks/{wid}/test", headers=env.h())
    assert r.status_code == 202, r.text
    test_delivery = r.json()
    assert test_delivery["delivery_id"].startswith("whd_")
    assert test_delivery["event_type"] == "webhook.test" and test_delivery["status"] == "PENDING"
    dispatcher = env.dispatcher()
    assert await dispatcher.run_once() == 1
    (got,) = rx.requests
    assert got.doc["event_type"] == "webhook.test"
    assert got.doc["subject"] == {"type": "webhook", "id": wid}
    assert bystander.requests == []  # addressed to this webhook only

    url = f"/v1/webhooks/{wid}/deliveries/{test_delivery['delivery_id']}/redeliver"
    r = await env.client.post(url, headers=env.h())
    assert r.status_code == 202, r.text
    again = r.json()
    assert again["delivery_id"] != test_delivery["delivery_id"]
    assert again["event_id"] == test_delivery["event_id"]
    assert await dispatcher.run_once() == 1
    assert [q.headers["assay-event-id"] for q in rx.requests] == [test_delivery["event_id"]] * 2
    log = await env.deliveries(wid)
    assert [d["delivery_id"] for d in log] == [again["delivery_id"], test_delivery["delivery_id"]]
    assert all(d["status"] == "DELIVERED" for d in log)
    missing = f"/v1/webhooks/{wid}/deliveries/whd_0000000000000000000Z/redeliver"
    assert (await env.client.post(missing, headers=env.h())).status_code == 404


async def test_two_dispatchers_never_send_a_delivery_twice(
    env: Env, receivers: Any, tmp_path: Path
) -> None:
    rx = receivers(delay_s=0.01)
    await env.hook(rx.url, ["*"])
    for i in range(30):
        await env.emit("object.created", i=i)
    # The second dispatcher has its own engines, as another process on the same database would.
    other_db = Database(env.ctx.settings.database_url)
    try:
        # A long timeout: once, late in a full run, the test process stalled 2.4 s and the
        # deliveries in flight timed out; a retry after a timeout is a second send by design.
        first = env.dispatcher(batch_size=4, timeout_s=30.0)
        second = env.dispatcher(db=other_db, batch_size=4, timeout_s=30.0)
        sent = await run_until([first, second], lambda: len(rx.requests) >= 30)
        await asyncio.sleep(0.05)
        assert sum(await asyncio.gather(first.run_once(), second.run_once())) == 0
    finally:
        other_db.close()
    ids = [r.headers["assay-event-id"] for r in rx.requests]
    assert sent == 30 and len(ids) == 30 and len(set(ids)) == 30


async def test_rolled_back_event_is_never_delivered(env: Env, receivers: Any) -> None:
    rx = receivers()
    await env.hook(rx.url, ["*"])

    def change_then_fail(session: Any) -> None:
        emit(session, env.ns_a, "object.deleted", ("object", "obj_gone"))
        raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        await env.ctx.db.write(change_then_fail)
    dispatcher = env.dispatcher()
    assert await dispatcher.fan_out() == 0
    assert await dispatcher.run_once() == 0
    assert rx.requests == []


async def test_send_time_guard_refuses_private_targets(env: Env, receivers: Any) -> None:
    rx = receivers()
    wid = (await env.hook(rx.url, ["*"]))["webhook_id"]
    await env.emit("object.created")
    assert await env.dispatcher(allow_private=False).run_once() == 1
    assert rx.requests == []
    (delivery,) = await env.deliveries(wid)
    assert delivery["status"] == "PENDING" and delivery["attempts"] == 1
    assert "not allowed" in delivery["last_error"] and delivery["last_status_code"] is None


async def test_deleting_a_webhook_drops_its_pending_deliveries(env: Env, receivers: Any) -> None:
    rx = receivers()
    wid = (await env.hook(rx.url, ["*"]))["webhook_id"]
    await env.emit("object.created")
    dispatcher = env.dispatcher()
    assert await dispatcher.fan_out() == 1
    assert (await env.client.delete(f"/v1/webhooks/{wid}", headers=env.h())).status_code == 200
    assert await dispatcher.run_once() == 0
    assert rx.requests == []


async def test_run_forever_delivers_and_stops(env: Env, receivers: Any) -> None:
    rx = receivers()
    await env.hook(rx.url, ["*"])
    stop = asyncio.Event()
    task = asyncio.create_task(env.dispatcher().run_forever(stop, idle_s=0.01))
    await env.emit("batch.completed")
    deadline = time.monotonic() + 5
    while not rx.requests:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert len(rx.requests) == 1


async def test_a_dead_dispatchers_lease_expires_and_the_delivery_is_sent(
    env: Env, receivers: Any
) -> None:
    rx = receivers()
    wid = (await env.hook(rx.url, ["*"]))["webhook_id"]
    await env.emit("object.created")
    dispatcher = env.dispatcher()
    await dispatcher.fan_out()
    # A dispatcher claims the delivery and dies before sending (its lease is short here).
    now = utcnow()
    lease = now + dt.timedelta(seconds=0.2)
    (claimed,) = await env.ctx.db.write(lambda s: DispatchRepository(s).claim_due(now, lease, 10))
    assert await dispatcher.run_once() == 0  # leased: nobody else sends it
    await asyncio.sleep(0.25)
    assert await dispatcher.run_once() == 1
    assert [r.headers["assay-delivery-id"] for r in rx.requests] == [claimed.delivery_id]
    assert (await env.deliveries(wid))[0]["status"] == "DELIVERED"


async def test_a_new_event_is_fanned_out_and_leased_in_one_transaction(
    env: Env, receivers: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One commit, not two, between an event and its first send (on PostgreSQL a commit waits
    # for its WAL flush): bench/latency.py times COMPLETED → webhook.
    rx = receivers()
    await env.hook(rx.url, ["*"])
    await env.emit("object.created")
    db, writes = env.ctx.db, 0
    write = db.write

    async def counted(fn: Callable[[Any], Any]) -> Any:
        nonlocal writes
        writes += 1
        return await write(fn)

    monkeypatch.setattr(db, "write", counted)
    assert await env.dispatcher().run_once() == 1
    assert len(rx.successes()) == 1
    assert writes == 2  # fan-out with its lease, then the attempt's outcome


async def _run_forever_counting_rounds(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> tuple[asyncio.Event, asyncio.Task[None], list[float]]:
    """A background dispatcher whose rounds' start times are recorded."""
    dispatcher, rounds = env.dispatcher(), []
    run_once = dispatcher.run_once

    async def counted() -> int:
        rounds.append(time.monotonic())
        return await run_once()

    monkeypatch.setattr(dispatcher, "run_once", counted)
    stop = asyncio.Event()
    return stop, asyncio.create_task(dispatcher.run_forever(stop, idle_s=5)), rounds


async def test_with_no_webhook_active_a_stream_of_events_costs_no_rounds(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Events nobody listens to are stored as handled: fan-out would only mark them, and at
    # ingest rates that was ~35 µs an object of the server's time for nothing anyone waits on.
    stop, task, rounds = await _run_forever_counting_rounds(env, monkeypatch)
    started = time.monotonic()
    ids = []
    while time.monotonic() - started < 0.4:
        ids.append(await env.emit("object.created"))
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 5)
    # The round at start, none for the events. On PostgreSQL the listener's first connect
    # wakes every channel once (it may have missed something while connecting): one more.
    assert 1 <= len(rounds) <= 2, rounds
    events = await env.ctx.db.read(
        lambda s: list(s.scalars(select(Event).where(Event.event_id.in_(ids))))
    )
    assert len(events) == len(ids) >= 20
    assert all(e.dispatched_at == e.occurred_at for e in events)


async def test_only_namespaces_with_an_active_webhook_keep_events_for_fan_out(
    env: Env, receivers: Any
) -> None:
    rx = receivers()
    wid = (await env.hook(rx.url, ["*"]))["webhook_id"]  # in namespace a only
    heard = await env.emit("object.created")
    unheard = await env.emit("object.created", ns=env.ns_b)
    patch = {"is_active": False}
    r = await env.client.patch(f"/v1/webhooks/{wid}", headers=env.h(), json=patch)
    assert r.status_code == 200, r.text
    after_off = await env.emit("object.created")
    stored = await env.ctx.db.read(
        lambda s: {e.event_id: e.dispatched_at for e in s.scalars(select(Event))}
    )
    assert stored[heard] is None
    assert stored[unheard] is not None and stored[after_off] is not None
    assert await env.dispatcher().fan_out() == 1


async def test_a_group_of_events_is_kept_for_fan_out_only_where_a_webhook_listens(
    env: Env, receivers: Any
) -> None:
    # `emit_many`, registration's path: one group spanning two namespaces.
    rx = receivers()
    await env.hook(rx.url, ["*"])  # in namespace a only
    events = [
        (ns, ("object", f"obj_{i}"), {"i": i})
        for i, ns in enumerate((env.ns_a, env.ns_b, env.ns_a))
    ]
    await env.ctx.db.write(lambda s: emit_many(s, "object.created", events))
    stored = await env.ctx.db.read(
        lambda s: {e.subject_id: (e.dispatched_at, e.occurred_at) for e in s.scalars(select(Event))}
    )
    assert stored["obj_0"][0] is None and stored["obj_2"][0] is None
    assert stored["obj_1"][0] == stored["obj_1"][1]  # handled as it was written
    assert await env.dispatcher().fan_out() == 2


async def test_a_webhook_created_during_the_wide_gap_hears_the_next_event_promptly(
    env: Env, receivers: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rx = receivers()
    stop, task, rounds = await _run_forever_counting_rounds(env, monkeypatch)
    await env.emit("object.created")  # heard by nobody: the dispatcher spaces its rounds
    while not rounds:
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.05)
    await env.hook(rx.url, ["*"])  # wakes the dispatcher out of its gap
    await env.emit("batch.completed")
    sent_by = time.monotonic() + 0.5  # well inside the 1 s gap
    while not rx.requests:
        assert time.monotonic() < sent_by, "the new webhook waited out the wide gap"
        await asyncio.sleep(0.005)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert [r.doc["event_type"] for r in rx.requests] == ["batch.completed"]
