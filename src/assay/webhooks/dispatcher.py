"""Webhook delivery: fan events out of the outbox into deliveries, then send the due ones.

At-least-once: a delivery is leased while it is sent and its outcome recorded afterwards, so a
dispatcher that dies mid-send leaves a lease that expires and the delivery is sent again.
Receivers deduplicate on `Assay-Event-Id`. Every connection goes through the SSRF-guarded
transport of `kit.fetch`, which resolves the host, checks every address and dials the checked
one, so a webhook whose DNS has since moved to a private address is refused at send time.

`run_forever` sleeps until the "events" wake-up (an event committed to the outbox), until a
retry this dispatcher scheduled falls due, or at most `idle_s` (other processes' retries, leases
of dead dispatchers, events from a process it hears no wake-ups from).

While events keep coming, rounds are spaced (`ROUND_GAP_S`), and far more widely
(`UNHEARD_GAP_S`) while no webhook is active anywhere: fan-out then only marks events
handled, and at ingest rates a round every 25 ms for that was ~15 % of the server's time. A
webhook created or turned on wakes the dispatcher ("webhooks" wake-up) out of the wide gap.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import heapq
import json
import logging
import random
import time
from collections import defaultdict
from typing import Any, Protocol

import anyio
import httpx
from sqlalchemy.orm import Session

from assay.kit.db import Database, utcnow
from assay.kit.fetch import FetchError, GuardedTransport, checked_url
from assay.kit.ids import new_id
from assay.kit.logs import event
from assay.kit.metrics import WEBHOOK_DELIVERIES, WEBHOOK_LAG
from assay.kit.wakeups import EVENTS, WEBHOOKS
from assay.models import Webhook
from assay.webhooks import signing
from assay.webhooks.repository import Claimed, DispatchRepository
from assay.webhooks.schemas import ALL_EVENTS, DELIVERED, FAILED, PENDING

log = logging.getLogger("assay.webhooks")

USER_AGENT = "Assay-Webhooks/0.1"
# Least time between the starts of two rounds that found events (see `run_forever`), and
# the same while no webhook is active (nobody waits for what those rounds do).
ROUND_GAP_S = 0.025
UNHEARD_GAP_S = 1.0


class SendPolicy(Protocol):
    """What sending needs of a `FetchPolicy`: whether private hosts are allowed, the timeout."""

    @property
    def allow_private(self) -> bool: ...

    @property
    def timeout_s(self) -> float: ...


class WebhookDispatcher:
    """Runs delivery rounds; several may run at once, in one process or many."""

    def __init__(
        self,
        db: Database,
        policy: SendPolicy,
        retry_horizon_s: float = 24 * 3600,
        base_delay_s: float = 1.0,
        max_delay_s: float = 600,
        *,
        batch_size: int = 100,
        fan_out_batch: int = 500,
        concurrency: int = 16,
        rng: random.Random | None = None,
    ) -> None:
        self.db = db
        self.policy = policy
        self.retry_horizon = dt.timedelta(seconds=retry_horizon_s)
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.batch_size = batch_size
        self.fan_out_batch = fan_out_batch
        self.concurrency = concurrency
        self.rng = rng or random.Random()
        # Longer than any send can take (fail_after bounds it), so a live lease is never stolen.
        self.lease = dt.timedelta(seconds=2 * policy.timeout_s + 30)
        self._client: httpx.AsyncClient | None = None
        self._backlog = False
        self._retries: list[dt.datetime] = []  # heap: when retries scheduled here fall due
        self._round_at = utcnow()  # the clock the last round judged "due" by
        self._found_events = False  # whether the last round found events to fan out
        self._hooks = True  # whether some webhook was active at the last round

    async def run_once(self) -> int:
        """One round: fan out new events, then send the due deliveries; returns the sends."""
        # Read first: an idle round then costs two indexed lookups and never takes the write lock.
        now = self._round_at = utcnow()
        events, due, self._hooks = await self.db.read(
            lambda s: DispatchRepository(s).work_waiting(now)
        )
        self._backlog = False
        self._found_events = events
        if not events:
            return await self.send_due() if due else 0
        # New events: fan out and lease in one transaction, so a fresh event's delivery waits
        # for one commit, not two (and the writer's lock is taken once).
        fanned, (claimed, lease_until) = await self.db.write(
            lambda s: self._fan_out_and_claim(s, due)
        )
        # Set only after the commit: a failed write must not keep `run_forever` from resting.
        self._backlog = fanned >= self.fan_out_batch
        return await self._send_all(claimed, lease_until)

    async def run_forever(self, stop: asyncio.Event, idle_s: float = 2.0) -> None:
        """Run rounds until `stop` is set; when a round finds no work, rest until woken by a
        new event or a retry falling due, at most `idle_s`."""
        wakeups = self.db.wakeups
        wakeups.start_listening()
        last_busy = -UNHEARD_GAP_S
        hooks_mark = wakeups.mark(WEBHOOKS)
        try:
            while not stop.is_set():
                # While events keep coming (an ingest burst commits every few ms), rounds are
                # spaced: one round then fans out many commits' events. The first event after
                # a quiet spell is handled at once.
                spacing = ROUND_GAP_S if self._hooks else UNHEARD_GAP_S
                gap = last_busy + spacing - time.monotonic()
                if gap > 0:
                    await wakeups.wait(WEBHOOKS, gap, since=hooks_mark, stop=stop)
                    if stop.is_set():
                        break
                # Both before looking, so no wake-up is lost in between.
                mark, hooks_mark = wakeups.mark(EVENTS), wakeups.mark(WEBHOOKS)
                started, self._found_events = time.monotonic(), False
                try:
                    sent = await self.run_once()
                except Exception:  # a database hiccup must not end delivery for good
                    log.exception("webhook dispatch round failed")
                    sent = 0
                if self._found_events:
                    last_busy = started
                if sent == 0 and not self._backlog:
                    await wakeups.wait(EVENTS, self._rest_s(idle_s), since=mark, stop=stop)
        finally:
            await wakeups.stop_listening()
            await self.aclose()

    def _rest_s(self, idle_s: float) -> float:
        """Seconds until the next retry scheduled here, at most `idle_s`."""
        while self._retries and self._retries[0] <= self._round_at:
            heapq.heappop(self._retries)  # the round that just ran has seen it due
        if not self._retries:
            return idle_s
        return min(idle_s, (self._retries[0] - utcnow()).total_seconds())

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def fan_out(self) -> int:
        """Turn outbox events into deliveries; returns how many events were handled."""
        events = await self.db.write(self._fan_out_batch)
        self._backlog = events >= self.fan_out_batch
        return events

    def _fan_out_batch(self, session: Session) -> int:
        """Fan out; returns how many events were handled."""
        return self._fan_out(session)[0]

    def _fan_out(self, session: Session) -> tuple[int, int]:
        """(events handled, deliveries made). One transaction: deliveries exist exactly when
        the event is marked dispatched."""
        repo = DispatchRepository(session)
        events = repo.undispatched_events(self.fan_out_batch)
        if not events:
            return 0, 0
        hooks: defaultdict[str, list[Webhook]] = defaultdict(list)
        for hook in repo.active_webhooks(sorted({e.namespace_id for e in events})):
            hooks[hook.namespace_id].append(hook)
        now = utcnow()
        rows = [
            {
                "delivery_id": new_id("whd"),
                "webhook_id": hook.webhook_id,
                "namespace_id": event.namespace_id,
                "event_id": event.event_id,
                "event_type": event.event_type,
                "status": PENDING,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for event in events
            for hook in hooks[event.namespace_id]
            # A webhook hears only what happened after it was created.
            if hook.created_at <= event.occurred_at
            and (ALL_EVENTS in hook.event_types or event.event_type in hook.event_types)
        ]
        repo.insert_deliveries(rows)
        repo.mark_dispatched([e.event_id for e in events], now)
        return len(events), len(rows)

    def _fan_out_and_claim(
        self, session: Session, due: bool
    ) -> tuple[int, tuple[list[Claimed], dt.datetime]]:
        """Fan out a batch of events, then lease what is due: (events handled, the lease).
        Nothing to lease (no delivery made, none was due) skips the leasing query."""
        fanned, made = self._fan_out(session)
        if not made and not due:
            return fanned, ([], utcnow())
        return fanned, self._claim(session)

    def _claim(self, session: Session) -> tuple[list[Claimed], dt.datetime]:
        """Lease the due deliveries (those just fanned out in this transaction included)."""
        now = utcnow()
        lease_until = now + self.lease
        claimed = DispatchRepository(session).claim_due(now, lease_until, self.batch_size)
        return claimed, lease_until

    async def send_due(self) -> int:
        """Lease the due deliveries and send them; returns how many were sent."""
        claimed, lease_until = await self.db.write(self._claim)
        return await self._send_all(claimed, lease_until)

    async def _send_all(self, claimed: list[Claimed], lease_until: dt.datetime) -> int:
        """Send leased deliveries, at most `concurrency` at once; returns how many."""
        if not claimed:
            return 0
        gate = asyncio.Semaphore(self.concurrency)

        async def one(delivery: Claimed) -> None:
            async with gate:
                await self._deliver(delivery, lease_until)

        await asyncio.gather(*(one(c) for c in claimed))
        return len(claimed)

    async def _deliver(self, delivery: Claimed, lease_until: dt.datetime) -> None:
        status_code, error, duration_ms = await self._send(delivery)
        values = self._outcome(delivery, status_code, error, duration_ms)
        _observe(delivery, values, status_code, error, duration_ms)
        try:
            await self.db.write(
                lambda s: DispatchRepository(s).record_attempt(
                    delivery.delivery_id, lease_until, values
                )
            )
        except Exception:  # the lease expires and the delivery is sent again
            log.exception("could not record webhook delivery %s", delivery.delivery_id)

    async def _send(self, delivery: Claimed) -> tuple[int | None, str | None, float]:
        body = payload(delivery)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Assay-Event-Id": delivery.event_id,
            "Assay-Delivery-Id": delivery.delivery_id,
            signing.HEADER: signing.sign(delivery.secret, body, int(time.time())),
        }
        timeout = self.policy.timeout_s
        started = time.perf_counter()
        status_code: int | None = None
        error: str | None = None
        try:
            url = checked_url(delivery.url)
            with anyio.fail_after(timeout):
                # Streamed and never read: a receiver cannot make us download a large answer.
                async with self._http().stream("POST", url, content=body, headers=headers) as r:
                    status_code = r.status_code
        except TimeoutError:
            error = f"timed out after {timeout:g}s"
        except FetchError as exc:
            error = exc.message
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        if error is None and not 200 <= (status_code or 0) < 300:
            error = f"HTTP {status_code}"
        return status_code, error, (time.perf_counter() - started) * 1000

    def _outcome(
        self, delivery: Claimed, status_code: int | None, error: str | None, duration_ms: float
    ) -> dict[str, Any]:
        now = utcnow()
        attempts = delivery.attempts + 1
        values: dict[str, Any] = {
            "attempts": attempts,
            "last_status_code": status_code,
            "last_error": error,
            "last_duration_ms": duration_ms,
            "last_attempt_at": now,
        }
        if error is None:
            return values | {"status": DELIVERED, "delivered_at": now, "next_attempt_at": None}
        delay = min(self.max_delay_s, self.base_delay_s * 2 ** (attempts - 1))
        next_at = now + dt.timedelta(seconds=delay * self.rng.uniform(0.5, 1.5))
        if next_at > delivery.created_at + self.retry_horizon:
            return values | {"status": FAILED, "next_attempt_at": None}
        if len(self._retries) < _MAX_TIMERS:  # beyond that, the idle fallback finds them
            heapq.heappush(self._retries, next_at)
        return values | {"next_attempt_at": next_at}

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=GuardedTransport(self.policy.allow_private),
                follow_redirects=False,  # a redirect is a failed delivery, never a new target
                trust_env=False,  # an environment proxy would bypass the address pinning
                timeout=self.policy.timeout_s,
            )
        return self._client


_MAX_TIMERS = 10_000


def _observe(
    delivery: Claimed, values: dict[str, Any], status_code: int | None, error: str | None,
    duration_ms: float,
) -> None:  # fmt: skip
    """The attempt's log line and metrics."""
    outcome = "delivered" if error is None else values.get("status", "retrying").lower()
    if outcome not in ("delivered", "failed"):
        outcome = "retrying"
    WEBHOOK_DELIVERIES.labels(outcome).inc()
    if error is None:
        occurred = delivery.occurred_at
        if occurred.tzinfo is None:
            occurred = occurred.replace(tzinfo=dt.UTC)
        WEBHOOK_LAG.observe(max(0.0, (utcnow() - occurred).total_seconds()))
    event(
        log, f"webhook.{outcome}", level=logging.INFO if error is None else logging.WARNING,
        delivery_id=delivery.delivery_id, event_id=delivery.event_id,
        event_type=delivery.event_type, namespace=delivery.namespace_id,
        attempt=delivery.attempts + 1, status=status_code, error=error,
        ms=round(duration_ms, 1),
    )  # fmt: skip


def payload(delivery: Claimed) -> bytes:
    """The JSON body of a delivery."""
    doc = {
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "occurred_at": delivery.occurred_at.isoformat().replace("+00:00", "Z"),
        "namespace_id": delivery.namespace_id,
        "subject": {"type": delivery.subject_type, "id": delivery.subject_id},
        "data": delivery.data,
    }
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
