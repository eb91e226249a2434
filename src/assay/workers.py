"""Wiring of the background workers: which job bodies exist and how many workers run them."""

from __future__ import annotations

from assay.batches.service import JOB_KIND as BATCH_EXTRACT
from assay.batches.tasks import BatchExtraction
from assay.context import AppContext
from assay.engine.local import LocalWorkers


def make_workers(ctx: AppContext, count: int) -> LocalWorkers:
    """Workers for every job kind, on this process's database and backends."""
    bodies = {BATCH_EXTRACT: BatchExtraction(ctx.db, ctx.keeper, ctx.registry)}
    return LocalWorkers(ctx.db, bodies, count=count, lease_s=ctx.settings.job_lease_s)
