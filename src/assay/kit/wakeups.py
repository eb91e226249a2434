"""Wake-ups: background loops sleep until the database says there is work, instead of polling.

Whoever makes work calls `notify(session, channel)` inside the transaction that makes it. The
wake-up happens only if and when that transaction commits, never for a rolled-back one:
- in this process, a session `after_commit` hook wakes the waiters (commits happen on the event
  loop for SQLite and in worker threads for PostgreSQL, so waking is thread-safe);
- on PostgreSQL, `pg_notify('assay_<channel>', '')` also runs in the transaction, and PostgreSQL
  delivers it at commit to every process LISTENing (one dedicated connection per process, started
  by the background loops; it reconnects with backoff when the database goes away).

SQLite has no cross-process notification: a second process sharing a SQLite file (`assay
worker` beside `assay serve`) finds new work at its fallback timer. Waiters therefore always pass
a timeout; it is also what lets them notice leases of dead workers running out.

A waiter takes a `mark` before looking for work and hands it to `wait`, which returns at once if
a wake-up came in between, so a notification never falls into the gap between "found nothing"
and "went to sleep".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

log = logging.getLogger("assay.wakeups")

JOBS = "jobs"  # a job was enqueued or became due again
EVENTS = "events"  # an event entered the webhook outbox
WEBHOOKS = "webhooks"  # a webhook was created or turned on
CHANNELS = (JOBS, EVENTS, WEBHOOKS)
PREFIX = "assay_"  # PostgreSQL channel names: assay_jobs, assay_events, assay_webhooks

_INFO_KEY = "assay.wakeups"  # session.info: the Wakeups of the session's Database
_PENDING_KEY = "assay.wakeups.pending"  # session.info: channels notified, per transaction
_DEAD_KEY = "assay.wakeups.dead"  # session.info: transactions rolled back (savepoints too)

# The listener checks its connection this often when no notification arrives; a connection
# that died without closing its socket is found then, and the loops' own timers cover the gap.
_LISTEN_HEALTH_S = 30.0
_CONNECT_TIMEOUT_S = 10
_RECONNECT_MIN_S = 0.1
_RECONNECT_MAX_S = 5.0


@dataclass
class _Channel:
    generation: int = 0  # bumped by every wake-up; `mark` reads it
    waiters: dict[asyncio.Future[None], asyncio.AbstractEventLoop] = field(default_factory=dict)


class Wakeups:
    """Named channels ("jobs", "events") that wake this process's waiters when work commits.

    One per `Database` (so per process in production). Thread-safe: `wake` may be called from
    any thread, `wait` from any event loop.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_postgres = make_url(url).get_backend_name() == "postgresql"
        self._lock = threading.Lock()
        self._channels = {name: _Channel() for name in CHANNELS}
        self._listeners = 0  # how many loops asked for the PostgreSQL listener
        self._listen_task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()  # set while LISTEN is in place (PostgreSQL)
        self.connects = 0  # listener connections made (tests watch reconnects)

    def attach(self, sessions: sessionmaker[Session]) -> None:
        """Make `notify` on sessions from this factory wake this object's waiters at commit."""
        sessions.configure(info={_INFO_KEY: self})
        event.listen(sessions, "after_commit", _after_commit)
        event.listen(sessions, "after_soft_rollback", _after_soft_rollback)
        event.listen(sessions, "after_transaction_end", _after_transaction_end)

    def mark(self, channel: str) -> int:
        """A token for `wait(since=...)`: take it before looking for work."""
        return self._channels[channel].generation

    def wake(self, channel: str) -> None:
        """Wake every waiter of `channel` in this process, now (any thread)."""
        state = self._channels[channel]
        with self._lock:
            state.generation += 1
            waiters, state.waiters = state.waiters, {}
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for future, loop in waiters.items():
            if loop is running:
                _resolve(future)
            else:
                with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits
                    loop.call_soon_threadsafe(_resolve, future)

    def wake_all(self) -> None:
        """Wake every channel (after the listener reconnects, something may have been missed)."""
        for channel in CHANNELS:
            self.wake(channel)

    async def wait(
        self,
        channel: str,
        timeout: float,
        *,
        since: int | None = None,
        stop: asyncio.Event | None = None,
    ) -> bool:
        """Return True when woken (or if woken after `since` was marked), False after `timeout`.

        Also returns (False) as soon as `stop` is set.
        """
        state = self._channels[channel]
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if since is not None and state.generation != since:
                return True
            state.waiters[future] = loop
        waits: set[asyncio.Future[Any]] = {future}
        stopper = asyncio.ensure_future(stop.wait()) if stop is not None else None
        if stopper is not None:
            waits.add(stopper)
        try:
            await asyncio.wait(
                waits, timeout=max(0.0, timeout), return_when=asyncio.FIRST_COMPLETED
            )
            return future.done() and not future.cancelled()
        finally:
            if stopper is not None:
                stopper.cancel()
            with self._lock:
                state.waiters.pop(future, None)
            future.cancel()

    # --- the PostgreSQL listener -------------------------------------------------------------

    def start_listening(self) -> None:
        """Start (or share) this process's LISTEN connection; a no-op on SQLite.

        Called from the event loop by each background loop as it starts; the connection stays
        up until the last of them calls `stop_listening`.
        """
        if not self.is_postgres:
            return
        self._listeners += 1
        if self._listen_task is None or self._listen_task.done():
            self._listen_task = asyncio.create_task(self._listen(), name="assay-wakeups-listen")

    async def stop_listening(self) -> None:
        """Release `start_listening`; the last release closes the connection."""
        if not self.is_postgres or self._listeners == 0:
            return
        self._listeners -= 1
        if self._listeners == 0 and self._listen_task is not None:
            task, self._listen_task = self._listen_task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self.listening.clear()

    def conninfo(self) -> str:
        """The libpq URI of the database (psycopg takes `host=` in the query for sockets)."""
        url = make_url(self.url).set(drivername="postgresql")
        return url.render_as_string(hide_password=False)

    async def _listen(self) -> None:
        import psycopg  # the optional PostgreSQL driver; only PostgreSQL deployments have it

        delay = _RECONNECT_MIN_S
        failing = False
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.conninfo(), autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S
                )
                async with conn:
                    for channel in CHANNELS:
                        await conn.execute(f"LISTEN {PREFIX}{channel}")
                    self.connects += 1
                    if failing:
                        log.info("listening for wake-ups again")
                    delay, failing = _RECONNECT_MIN_S, False
                    # Work may have been made while nobody listened: look once.
                    self.wake_all()
                    self.listening.set()
                    while True:
                        async for note in conn.notifies(timeout=_LISTEN_HEALTH_S):
                            channel = note.channel.removeprefix(PREFIX)
                            if channel in self._channels:
                                self.wake(channel)
                        await conn.execute("SELECT 1")  # quiet for a while: still connected?
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database restarted or is unreachable: retry later
                self.listening.clear()
                if not failing:
                    log.warning("wake-up listener lost its connection (%s); retrying", exc)
                failing = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RECONNECT_MAX_S)


def notify(session: Session, channel: str) -> None:
    """Wake `channel`'s waiters when this session's transaction commits (never on rollback)."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown wake-up channel {channel!r}")
    if session.get_transaction() is None:
        session.connection()  # begin now, so the notification belongs to this transaction
    transaction = session.get_nested_transaction() or session.get_transaction()
    assert transaction is not None
    pending: dict[SessionTransaction, set[str]] = session.info.setdefault(_PENDING_KEY, {})
    channels = pending.setdefault(transaction, set())
    if channel in channels:
        return  # once per (sub)transaction is enough; PostgreSQL folds repeats anyway
    channels.add(channel)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": PREFIX + channel})


def _after_commit(session: Session) -> None:
    if session.get_nested_transaction() is not None:
        return  # a savepoint was released; the transaction goes on
    pending: dict[SessionTransaction, set[str]] = session.info.pop(_PENDING_KEY, {})
    dead: set[SessionTransaction] = session.info.pop(_DEAD_KEY, set())
    wakeups: Wakeups | None = session.info.get(_INFO_KEY)
    if wakeups is None or not pending:
        return
    # A savepoint rolled back inside a committed transaction takes its notifications with it
    # (as PostgreSQL does with pg_notify), and so do the savepoints nested in it.
    woken: set[str] = set()
    for transaction, channels in pending.items():
        if not _rolled_back(transaction, dead):
            woken |= channels
    for channel in sorted(woken):
        try:
            wakeups.wake(channel)
        except Exception:  # the data is committed: a lost wake-up only waits for the timer
            log.exception("waking %r failed", channel)


def _after_soft_rollback(session: Session, previous: SessionTransaction) -> None:
    if _PENDING_KEY in session.info:
        session.info.setdefault(_DEAD_KEY, set()).add(previous)


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the outermost transaction ended: forget everything
        session.info.pop(_PENDING_KEY, None)
        session.info.pop(_DEAD_KEY, None)


def _rolled_back(transaction: SessionTransaction | None, dead: set[SessionTransaction]) -> bool:
    while transaction is not None:
        if transaction in dead:
            return True
        transaction = transaction.parent
    return False


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
