"""A backup's hold on blob bytes: a use claim (`objects/claims.py`) on every key it will copy.

Object deletes remove bytes at once (not after the GC's grace period), so a backup copying the
blobs its database snapshot references could otherwise find some gone. A removal is granted
only while no use claim is live on the key, in every process, so once a key is held its bytes
stay until the hold is released; removals refused meanwhile leave the bytes to the garbage
collector, which takes them once the hold is gone. The claims expire (`HOLD_TTL`, renewed
while the backup runs), so a backup that dies holds nothing for long.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import partial

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from assay.kit.db import Database, utcnow
from assay.kit.ids import random_base62
from assay.models import BlobClaim

log = logging.getLogger("assay.maintenance")

HOLD_TTL = dt.timedelta(hours=1)
_RENEW_EVERY_S = 600.0
_CHUNK = 1000
_REMOVAL_WAIT_S = 90.0  # longer than a removal claim lives (objects.claims.REMOVE_TTL)


class BlobHold:
    """The keys one backup holds; `release` (or expiry) lets them go."""

    def __init__(self, db: Database) -> None:
        self.db = db
        # Claim ids are the prefix and a counter: one statement finds all of them again.
        self.prefix = f"bkp{random_base62(10)}-"
        self.held: set[str] = set()

    def take(self, keys: Iterable[str]) -> list[str]:
        """Hold the keys not held yet; returns them. Each chunk commits on its own."""
        new = sorted(set(keys) - self.held)
        for start in range(0, len(new), _CHUNK):
            chunk = new[start : start + _CHUNK]
            expires = utcnow() + HOLD_TTL
            rows = [
                {
                    "claim_id": f"{self.prefix}{len(self.held) + n}",
                    "storage_key": key,
                    "kind": "use",
                    "expires_at": expires,
                }
                for n, key in enumerate(chunk)
            ]
            self.db.write_sync(partial(_insert, rows))
            self.held.update(chunk)
        return new

    def wait_for_removals(self, keys: list[str]) -> None:
        """Wait until no removal granted before the hold is still deleting one of `keys`."""
        deadline = time.monotonic() + _REMOVAL_WAIT_S
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            while self.db.read_sync(partial(_removing, keys=chunk)):
                if time.monotonic() > deadline:
                    raise TimeoutError("blob removals did not finish; try the backup again")
                time.sleep(0.05)

    @contextmanager
    def kept_alive(self) -> Iterator[None]:
        """Renew the claims' expiry every few minutes while the body runs (a pg_dump or a
        copy may take hours; the claims must outlive it, and a dead backup's must not)."""
        done = threading.Event()

        def renew() -> None:
            while not done.wait(_RENEW_EVERY_S):
                try:
                    self.renew()
                except Exception:  # the database hiccuped: the next round tries again
                    log.exception("renewing a backup's blob hold failed")

        thread = threading.Thread(target=renew, name="assay-backup-hold", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    def renew(self) -> None:
        """Push the claims' expiry out again."""
        stmt = (
            update(BlobClaim)
            .where(BlobClaim.claim_id.startswith(self.prefix, autoescape=True))
            .values(expires_at=utcnow() + HOLD_TTL)
        )
        self.db.write_sync(lambda s: s.execute(stmt))

    def release(self) -> None:
        stmt = delete(BlobClaim).where(BlobClaim.claim_id.startswith(self.prefix, autoescape=True))
        self.db.write_sync(lambda s: s.execute(stmt))
        self.held.clear()


def _insert(rows: list[dict[str, object]], session: Session) -> None:
    session.execute(insert(BlobClaim), rows)


def _removing(session: Session, keys: list[str]) -> bool:
    stmt = select(func.count()).where(
        BlobClaim.storage_key.in_(keys),
        BlobClaim.kind == "remove",
        BlobClaim.expires_at > utcnow(),
    )
    return bool(session.scalar(stmt))
