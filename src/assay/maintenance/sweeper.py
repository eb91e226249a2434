"""The sweeper: every kind of garbage collection in one pass, once (`assay gc`) or every
`gc_interval_s` in the background.

Several processes may sweep at once and nothing breaks: every removal is idempotent and
claims its rows or bytes first (see the package docstring). A sweep still takes a try-lock
first (a PostgreSQL advisory lock, or a lock file next to a SQLite database) and skips its
turn if another process holds it, so N processes do not walk the same store N times.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fcntl
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path

import anyio.to_thread
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from assay.backends.blob.base import BlobStore
from assay.config import Settings
from assay.kit.db import Database, utcnow
from assay.kit.logs import event
from assay.maintenance import gc
from assay.maintenance.orphans import OrphanSweep
from assay.maintenance.vectorlog import sweep_vector_log

log = logging.getLogger("assay.maintenance")

# pg_try_advisory_lock key of the sweep (any constant unique within Assay).
_SWEEP_LOCK_KEY = 0x417373_6179_4743


class SweepStopped(Exception):
    """The process is shutting down; the sweep stopped between two batches."""


@dataclass
class SweepCounts:
    """What one sweep removed."""

    uploads: int = 0  # expired, unconfirmed uploads
    upload_files: int = 0  # their staged bytes, and leftovers of gone uploads
    blobs: int = 0  # blob bytes no object references
    derived: int = 0  # thumbnails no document references
    temp_files: int = 0  # halves of interrupted writes, index folders of deleted collections
    events: int = 0
    deliveries: int = 0
    vector_log: int = 0
    idempotency: int = 0
    claims: int = 0  # expired blob claims of dead processes
    scanned: bool = False  # whether the blob store was walked this time
    skipped: bool = False  # another process was sweeping: nothing done

    def removed(self) -> dict[str, int]:
        """The counts by name (for output)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return {k: v for k, v in values.items() if not isinstance(v, bool)}


@dataclass(frozen=True)
class Retention:
    """How long things are kept; from the `# Maintenance` block of the settings."""

    blob_grace: dt.timedelta
    uploads: dt.timedelta
    events: dt.timedelta
    deliveries: dt.timedelta
    idempotency: dt.timedelta
    vector_log: dt.timedelta
    batch: int

    @classmethod
    def from_settings(cls, s: Settings) -> Retention:
        return cls(
            blob_grace=dt.timedelta(seconds=s.blob_grace_s),
            uploads=dt.timedelta(hours=s.upload_retention_h),
            events=dt.timedelta(days=s.event_retention_days),
            deliveries=dt.timedelta(days=s.delivery_retention_days),
            idempotency=dt.timedelta(seconds=s.idempotency_ttl_s),
            vector_log=dt.timedelta(hours=s.vector_log_retention_h),
            batch=s.gc_batch_size,
        )


class Sweeper:
    """Runs every garbage collection of one deployment."""

    def __init__(self, settings: Settings, db: Database, blobs: BlobStore) -> None:
        self.settings = settings
        self.db = db
        self.blobs = blobs
        self.retention = Retention.from_settings(settings)
        self.scan_interval_s = settings.gc_scan_interval_s
        self._last_scan = -float("inf")  # monotonic time of this process's last store walk
        self._stopping = threading.Event()  # set at a shutdown: the sweep stops between batches

    def _checkpoint(self) -> None:
        if self._stopping.is_set():
            raise SweepStopped

    @property
    def file_indexes(self) -> bool:
        kind = self.settings.vector_index
        return kind == "file" or (kind == "auto" and self.settings.is_sqlite)

    def run(self, *, scan: bool | None = None) -> SweepCounts:
        """One sweep (blocking: call it from a thread). `scan` walks the blob store; by
        default it does when `gc_scan_interval_s` has passed since this process last did."""
        with sweep_lock(self.db, self.settings.data_dir) as mine:
            if not mine:
                return SweepCounts(skipped=True)
            if scan is None:
                scan = time.monotonic() - self._last_scan >= self.scan_interval_s
            counts = self._tables(utcnow())
            if scan:
                self._scan(utcnow(), counts)
                self._last_scan = time.monotonic()
        removed = {k: v for k, v in counts.removed().items() if v}
        level = logging.INFO if removed else logging.DEBUG  # a quiet sweep is no news
        event(log, "gc.swept", level=level, **removed, scanned=scan)
        return counts

    def _tables(self, now: dt.datetime) -> SweepCounts:
        r = self.retention
        counts = SweepCounts()
        counts.claims = self.db.write_sync(gc.prune_claims)
        counts.uploads, counts.upload_files = gc.sweep_uploads(
            self.db, self.blobs, self.upload_folder, now - r.uploads, r.batch, self._checkpoint
        )
        counts.idempotency = self._drain(gc.prune_idempotency, now - r.idempotency)
        counts.deliveries = self._drain(gc.prune_deliveries, now - r.deliveries)
        counts.events = self._drain(gc.prune_events, now - r.events)
        counts.vector_log = sweep_vector_log(
            self.db,
            self.settings.data_dir,
            file_indexes=self.file_indexes,
            retention_s=r.vector_log.total_seconds(),
            limit=r.batch,
            now=now,
            checkpoint=self._checkpoint,
        )
        return counts

    def _drain(self, prune: Callable[[Session, dt.datetime, int], int], cutoff: dt.datetime) -> int:
        n = self.retention.batch
        return gc.drain(self.db, lambda s: prune(s, cutoff, n), n, self._checkpoint)

    def _scan(self, now: dt.datetime, counts: SweepCounts) -> None:
        orphans = OrphanSweep(
            self.db,
            self.blobs,
            self.upload_folder,
            self.settings.data_dir / "indexes",
            self.retention.blob_grace,
            self.retention.batch,
            self._checkpoint,
            scratch_root=self.settings.tmp_dir,
        ).run(now)
        counts.scanned = True
        counts.blobs, counts.derived = orphans.blobs, orphans.derived
        counts.upload_files += orphans.staging
        counts.temp_files = orphans.temp

    @property
    def upload_folder(self) -> Path:
        return self.settings.tmp_dir / "uploads"  # where uploads/endpoints.py puts the desk

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Sweep every `gc_interval_s` until `stop` (the first sweep after one interval, so a
        starting server gets on with its work first)."""
        interval = self.settings.gc_interval_s
        self._stopping.clear()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
            if stop.is_set():
                return
            sweep = asyncio.ensure_future(anyio.to_thread.run_sync(self.run))
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait({sweep, stopped}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if stop.is_set():
                self._stopping.set()  # a walk of a large store must not hold up a shutdown
            try:
                await sweep
            except SweepStopped:
                return
            except Exception:  # the database or the store hiccuped: try at the next tick
                log.exception("garbage collection failed")


@contextlib.contextmanager
def sweep_lock(db: Database, data_dir: Path) -> Iterator[bool]:
    """Whether this process may sweep now (released on exit); never waits."""
    if db.is_sqlite:
        with _file_lock(data_dir / "maintenance" / "sweep.lock") as got:
            yield got
        return
    # AUTOCOMMIT: the session lock must not hold a transaction open for the whole sweep.
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        got = bool(conn.scalar(select(func.pg_try_advisory_lock(_SWEEP_LOCK_KEY))))
        try:
            yield got
        finally:
            if got:
                conn.scalar(select(func.pg_advisory_unlock(_SWEEP_LOCK_KEY)))


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[bool]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
