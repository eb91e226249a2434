"""The job table: enqueue, claim under a lease, heartbeat, finish. The claim lives here only.

A job is claimable when it is queued and due, or when its worker's lease ran out (the worker
died). SQLite serialises writers, so a claim is a plain SELECT then UPDATE inside one write
transaction; PostgreSQL gets `FOR UPDATE SKIP LOCKED` so concurrent workers skip each other.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from assay.kit.db import utcnow
from assay.kit.ids import new_id
from assay.kit.wakeups import JOBS, notify
from assay.models import Job


def enqueue(
    session: Session, namespace_id: str, kind: str, payload: dict[str, Any], max_attempts: int = 5
) -> Job:
    job = Job(
        job_id=new_id("job"),
        namespace_id=namespace_id,
        kind=kind,
        payload=payload,
        max_attempts=max_attempts,
        run_after=utcnow(),
    )
    session.add(job)
    notify(session, JOBS)  # workers wake when this commits
    return job


def _due(now: dt.datetime) -> Any:
    return or_(
        and_(Job.status == "queued", Job.run_after <= now),
        and_(Job.status == "running", Job.leased_until < now),
    )


def any_due(session: Session) -> bool:
    """A cheap read, so idle workers don't take the write lock to find nothing."""
    return session.scalar(select(Job.job_id).where(_due(utcnow())).limit(1)) is not None


def next_due_at(session: Session) -> dt.datetime | None:
    """When the next job falls due (a queued job's run_after or a running one's lease end)."""
    queued = select(func.min(Job.run_after)).where(Job.status == "queued")  # index seek
    leased = select(func.min(Job.leased_until)).where(Job.status == "running")
    times = [t for t in (session.scalar(queued), session.scalar(leased)) if t is not None]
    return min(times) if times else None


def claim(session: Session, owner: str, lease_s: float, limit: int = 1) -> list[Job]:
    """Lease up to `limit` due jobs to `owner`; their attempt counters go up by one."""
    now = utcnow()
    stmt = select(Job).where(_due(now)).order_by(Job.run_after, Job.job_id).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    jobs = list(session.scalars(stmt))
    for job in jobs:
        job.status = "running"
        job.lease_owner = owner
        job.leased_until = now + dt.timedelta(seconds=lease_s)
        job.attempts += 1
    session.flush()
    return jobs


def heartbeat(session: Session, job_id: str, owner: str, lease_s: float) -> bool:
    """Extend a lease this owner still holds; False if it was lost."""
    result = session.execute(
        update(Job)
        .where(Job.job_id == job_id, Job.lease_owner == owner, Job.status == "running")
        .values(leased_until=utcnow() + dt.timedelta(seconds=lease_s))
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def finish(session: Session, job_id: str, owner: str) -> bool:
    """Mark a leased job done; False if the lease was lost (another worker has it)."""
    result = session.execute(
        update(Job)
        .where(Job.job_id == job_id, Job.lease_owner == owner, Job.status == "running")
        .values(status="done", leased_until=None)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def retry_later(session: Session, job: Job, error: str, base_s: float = 1.0) -> bool:
    """Back off (exponential, jittered) or give up; returns True if it will run again."""
    job.last_error = error[:2000]
    job.leased_until = None
    if job.attempts >= job.max_attempts:
        job.status = "failed"
        return False
    delay = min(300.0, base_s * 2 ** (job.attempts - 1)) * random.uniform(0.5, 1.5)
    job.status, job.run_after = "queued", utcnow() + dt.timedelta(seconds=delay)
    notify(session, JOBS)  # idle workers, here and elsewhere, set their timers to run_after
    return True


def postpone(session: Session, job_id: str, owner: str, delay_s: float, reason: str) -> bool:
    """Put a leased job back in the queue, due in `delay_s`, without counting the attempt it
    just made (what it needs, such as its extraction engine, is away); False if the lease was
    lost."""
    result = session.execute(
        update(Job)
        .where(Job.job_id == job_id, Job.lease_owner == owner, Job.status == "running")
        .values(
            status="queued",
            attempts=Job.attempts - 1,
            leased_until=None,
            run_after=utcnow() + dt.timedelta(seconds=delay_s),
            last_error=reason[:2000],
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def cancel_for(session: Session, namespace_id: str, batch_id: str) -> None:
    """Stop queued work of a batch (running chunks notice the cancel themselves)."""
    session.execute(
        update(Job)
        .where(
            Job.namespace_id == namespace_id,
            Job.status == "queued",
            Job.payload["batch_id"].as_string() == batch_id,
        )
        .values(status="done", last_error="canceled")
    )
