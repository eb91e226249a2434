"""Wiring of background work: job workers and the webhook dispatcher, started together by
`assay serve` (with `--workers N > 0`) and by `assay worker`."""

from __future__ import annotations

import asyncio
import contextlib

from assay.batches.service import JOB_KIND as BATCH_EXTRACT
from assay.batches.tasks import BatchExtraction
from assay.context import AppContext
from assay.engine.local import LocalWorkers
from assay.kit.fetch import FetchPolicy
from assay.webhooks.dispatcher import WebhookDispatcher


def make_workers(ctx: AppContext, count: int) -> LocalWorkers:
    """Workers for every job kind, on this process's database and backends."""
    bodies = {BATCH_EXTRACT: BatchExtraction(ctx.db, ctx.keeper, ctx.registry)}
    return LocalWorkers(ctx.db, bodies, count=count, lease_s=ctx.settings.job_lease_s)


def make_dispatcher(ctx: AppContext) -> WebhookDispatcher:
    settings = ctx.settings
    policy = FetchPolicy(
        allow_private=settings.allow_private_urls, timeout_s=settings.webhook_timeout_s
    )
    return WebhookDispatcher(ctx.db, policy, retry_horizon_s=settings.webhook_retry_horizon_s)


class Background:
    """Job workers plus one webhook dispatcher; several processes may each run one."""

    def __init__(self, ctx: AppContext, workers: int) -> None:
        self.workers = make_workers(ctx, workers)
        self.dispatcher = make_dispatcher(ctx)
        self._stop = asyncio.Event()
        self._dispatching: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._stop.clear()
        self.workers.start()
        self._dispatching = asyncio.create_task(self.dispatcher.run_forever(self._stop, idle_s=0.2))

    async def stop(self) -> None:
        self._stop.set()
        await self.workers.stop()
        if self._dispatching is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatching
            self._dispatching = None
