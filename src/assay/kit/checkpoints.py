"""SQLite WAL checkpoints in a thread of their own, never on the event loop.

By default the connection whose commit takes the write-ahead log past 1,000 pages copies the
log back into the database file and fsyncs it, inside that commit: on the loop's writer,
10 ms or so during which no request moves (4 % of group commits under steady registration
load, and the whole of its p99). The loop's writer therefore never checkpoints
(`wal_autocheckpoint=0`); after its commits, `committed()` hands a PASSIVE checkpoint to a
background thread every `EVERY_COMMITS` commits, or on the first commit `EVERY_S` after the
last one. A PASSIVE checkpoint takes no lock writers wait for, and Python's sqlite3 lets go
of the GIL while SQLite works, so the loop goes on meanwhile.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger("assay.db")


class WalCheckpointer:
    """Checkpoints one SQLite file's WAL in a background thread, when commits have added up."""

    EVERY_COMMITS = 64
    EVERY_S = 5.0

    def __init__(self, path: str) -> None:
        self.path = path
        self._executor: ThreadPoolExecutor | None = None
        self._connection: sqlite3.Connection | None = None  # used by the thread only
        self._running = False
        self._commits = 0  # since the last checkpoint started
        self._started_at = time.monotonic()

    def committed(self) -> None:
        """After a commit that skipped checkpointing: start one if enough has piled up."""
        self._commits += 1
        if self._running:
            return
        due = self._commits >= self.EVERY_COMMITS
        if not due and time.monotonic() - self._started_at < self.EVERY_S:
            return
        self._running, self._commits, self._started_at = True, 0, time.monotonic()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="sqlite-checkpoint")
        self._executor.submit(self._checkpoint)

    def _checkpoint(self) -> None:
        try:
            if self._connection is None:
                self._connection = sqlite3.connect(self.path, timeout=0, check_same_thread=False)
            self._connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:  # another checkpoint, a closing database: the next one
            log.debug("WAL checkpoint skipped: %s", exc)
        finally:
            self._running = False

    def close(self) -> None:
        """Wait for a running checkpoint and close the thread's connection."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        if self._connection is not None:
            self._connection.close()
            self._connection = None
