"""Wiring of background work: job workers, the webhook dispatcher and the garbage collector,
started together by `assay serve` (with `--workers N > 0`) and by `assay worker`.

Both sleep until the database wakes them (`kit.wakeups`: a committed enqueue or event, in this
process or, on PostgreSQL, in any), with a fallback timer of IDLE_S for what no wake-up
announces: dead workers' leases running out and, on SQLite, work made by other processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from assay.batches.service import JOB_KIND as BATCH_EXTRACT
from assay.batches.tasks import BatchExtraction
from assay.context import AppContext
from assay.engine.base import JobBody
from assay.engine.local import LocalWorkers
from assay.kit.fetch import FetchPolicy
from assay.maintenance.sweeper import Sweeper
from assay.syncs.service import JOB_KIND as SYNC_RUN
from assay.syncs.tasks import SyncRun, enqueue_due_syncs
from assay.webhooks.dispatcher import WebhookDispatcher

SYNC_POLL_S = 5.0
IDLE_S = 2.0
log = logging.getLogger("assay.engine")


def make_workers(ctx: AppContext, count: int) -> LocalWorkers:
    """Workers for every job kind, on this process's database and backends."""
    bodies: dict[str, JobBody] = {
        BATCH_EXTRACT: BatchExtraction(
            ctx.db, ctx.keeper, ctx.registry, threads=count, engine=ctx.engine
        ),
        SYNC_RUN: SyncRun.from_context(ctx),
    }
    return LocalWorkers(
        ctx.db, bodies, count=count, lease_s=ctx.settings.job_lease_s, idle_s=IDLE_S
    )


def make_dispatcher(ctx: AppContext) -> WebhookDispatcher:
    settings = ctx.settings
    policy = FetchPolicy(
        allow_private=settings.allow_private_urls, timeout_s=settings.webhook_timeout_s
    )
    return WebhookDispatcher(ctx.db, policy, retry_horizon_s=settings.webhook_retry_horizon_s)


class Background:
    """Job workers, one webhook dispatcher and the sync poller; several processes may each
    run one (claims and leases keep them from doing the same work twice)."""

    def __init__(self, ctx: AppContext, workers: int) -> None:
        self.ctx = ctx
        self.workers = make_workers(ctx, workers)
        self.dispatcher = make_dispatcher(ctx)
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._stop.clear()
        self.workers.start()
        self._tasks = [
            asyncio.create_task(self.dispatcher.run_forever(self._stop, idle_s=IDLE_S)),
            asyncio.create_task(self._poll_syncs()),
        ]
        if self.ctx.settings.gc_interval_s > 0:  # garbage collection and retention
            sweeper = Sweeper(self.ctx.settings, self.ctx.db, self.ctx.blobs)
            self._tasks.append(asyncio.create_task(sweeper.run_forever(self._stop)))

    async def stop(self) -> None:
        self._stop.set()
        await self.workers.stop()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _poll_syncs(self) -> None:
        """Queue runs of continuous syncs as they fall due."""
        while not self._stop.is_set():
            try:
                await enqueue_due_syncs(self.ctx.db)
            except Exception:  # the database hiccuped: try at the next tick
                log.exception("polling syncs failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), SYNC_POLL_S)
