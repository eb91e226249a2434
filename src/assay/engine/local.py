"""In-process workers: claim jobs from the metadata database and run them.

They run inside `assay serve` (`--workers N`) or alone as `assay worker`; any number of
processes may share one database, since a job is claimed under a lease that a heartbeat
extends while it runs. A worker that dies stops heartbeating and its job is claimed again.

Idle workers sleep until the "jobs" wake-up (a committed enqueue, in this process or, on
PostgreSQL, any) or until the next job falls due (a retry's run_after, a dead worker's lease),
at most `idle_s`: that fallback covers other processes on SQLite and a lost listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections.abc import Mapping

from sqlalchemy.orm import Session

from assay.engine.base import JobBody
from assay.engine.extraction import EngineUnavailable
from assay.jobs import repository as jobs
from assay.kit.db import Database, utcnow
from assay.kit.logs import event
from assay.kit.wakeups import JOBS
from assay.models import Job

log = logging.getLogger("assay.engine")


class LocalWorkers:
    def __init__(
        self,
        db: Database,
        bodies: Mapping[str, JobBody],
        count: int = 1,
        lease_s: float = 30.0,
        idle_s: float = 2.0,
    ) -> None:
        self.db = db
        self.bodies = bodies
        self.count = count
        self.lease_s = lease_s
        self.idle_s = idle_s
        self.owner = f"{os.getpid()}-{secrets.token_hex(3)}"
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()
        self._listening = False  # holds a share of the database's wake-up listener

    def start(self) -> None:
        self._stop.clear()
        if not self._listening:
            self.db.wakeups.start_listening()
            self._listening = True
        self._tasks = [
            asyncio.create_task(self._loop(f"{self.owner}-{i}")) for i in range(self.count)
        ]

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._listening:
            self._listening = False
            await self.db.wakeups.stop_listening()
        self._tasks = []

    async def run_until_idle(self, owner: str = "inline") -> int:
        """Run due jobs until none is left (tests and one-shot runs); returns how many ran."""
        ran = 0
        while job := await self._claim(owner):
            await self._run(job, owner)
            ran += 1
        return ran

    async def _loop(self, owner: str) -> None:
        wakeups = self.db.wakeups
        while not self._stop.is_set():
            mark = wakeups.mark(JOBS)  # before looking, so no wake-up is lost in between
            try:
                job = await self._next(owner)
            except Exception:  # the database hiccuped: log, wait, go on
                log.exception("claiming a job failed")
                job = self.idle_s
            if isinstance(job, Job):
                await self._run(job, owner)
            else:
                await wakeups.wait(JOBS, job, since=mark, stop=self._stop)

    async def _next(self, owner: str) -> Job | float:
        """A job claimed for `owner`, or how long to rest before looking again."""
        due_at = await self.db.read(jobs.next_due_at)
        if due_at is None:
            return self.idle_s
        wait_s = (due_at - utcnow()).total_seconds()
        if wait_s > 0:
            return min(wait_s, self.idle_s)
        claimed = await self.db.write(lambda s: jobs.claim(s, owner, self.lease_s, limit=1))
        # Nothing: another worker won it (it is running now) or holds it locked for a moment.
        return claimed[0] if claimed else _LOST_CLAIM_S

    async def _claim(self, owner: str) -> Job | None:
        if not await self.db.read(jobs.any_due):
            return None
        claimed = await self.db.write(lambda s: jobs.claim(s, owner, self.lease_s, limit=1))
        return claimed[0] if claimed else None

    async def _run(self, job: Job, owner: str) -> None:
        body = self.bodies.get(job.kind)
        heartbeat = asyncio.create_task(self._heartbeat(job.job_id, owner))
        started = time.perf_counter()
        try:
            if body is None:
                raise LookupError(f"no job body for kind {job.kind!r}")
            if job.attempts > job.max_attempts:  # its workers kept dying: stop trying
                await body.give_up(job, "the job's workers stopped responding too often")
            else:
                event(log, "job.started", job_id=job.job_id, kind=job.kind, attempt=job.attempts)
                await body.run(job)
            await self.db.write(lambda s: jobs.finish(s, job.job_id, owner))
            seconds = round(time.perf_counter() - started, 3)
            event(log, "job.finished", job_id=job.job_id, kind=job.kind, seconds=seconds)
        except asyncio.CancelledError:
            raise  # shutting down: the lease runs out and another worker takes the job
        except EngineUnavailable as exc:  # not the job's fault: it waits, its attempt uncounted
            event(log, "job.postponed", job_id=job.job_id, kind=job.kind, reason=str(exc))
            reason, delay_s = f"waiting: {exc}", exc.retry_s
            await self.db.write(lambda s: jobs.postpone(s, job.job_id, owner, delay_s, reason))
        except Exception as exc:
            log.exception("job.failed", extra={"fields": {"job_id": job.job_id, "kind": job.kind}})
            error = f"{type(exc).__name__}: {exc}"
            again = await self.db.write(lambda s: _retry(s, job.job_id, error))
            if not again and body is not None:
                await body.give_up(job, error)
        finally:
            heartbeat.cancel()

    async def _heartbeat(self, job_id: str, owner: str) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            await self.db.write(lambda s: jobs.heartbeat(s, job_id, owner, self.lease_s))


_LOST_CLAIM_S = 0.02


def _retry(session: Session, job_id: str, error: str) -> bool:
    job = session.get(Job, job_id)
    return job is not None and jobs.retry_later(session, job, error)
