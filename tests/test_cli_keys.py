"""`assay keys create|list|revoke` against the same data dir as a running app."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from assay.cli import app as cli
from assay.config import Settings
from assay.main import create_app
from tests.conftest import make_bucket, make_namespace

WIDE = {"COLUMNS": "250"}  # rich tables wrap at the terminal width; keep rows on one line


def run_cli(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env={**WIDE, **(env or {})})


def secret_of(result: Result) -> str:
    """The secret `keys create` prints on its own last line."""
    assert result.exit_code == 0, (result.output, result.exception)
    lines = [line.strip() for line in result.output.splitlines() if line.strip()]
    assert lines[-1].startswith("sk_live_"), result.output
    return lines[-1]


def key_id_of(result: Result) -> str:
    words = result.output.split()
    return next(w for w in words if w.startswith("sk_") and not w.startswith("sk_live_"))


@asynccontextmanager
async def app_on(data_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A freshly built app on `data_dir` (its own process state, e.g. an empty key cache)."""
    application = create_app(Settings(data_dir=data_dir))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://assay.test") as c:
            yield c


def bearer(secret: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}", **extra}


def assert_error(r: httpx.Response, status: int, type_: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["success"] is False and body["status"] == status
    assert body["error"]["type"] == type_
    return dict(body)


async def test_created_key_authenticates_limited_to_its_namespace(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    prod = await make_namespace(client, "prod")
    await make_namespace(client, "staging")
    await make_bucket(client, "staging", "staging-bucket")

    result = run_cli(
        "keys", "create", "--role", "write", "--namespace", "prod", "--name", "ci writer",
        "--data-dir", str(settings.data_dir),
    )  # fmt: skip
    secret = secret_of(result)
    key_id = key_id_of(result)
    assert "(write)" in result.output and "only once" in result.output

    async with app_on(settings.data_dir) as c:
        r = await c.get("/v1/namespaces", headers=bearer(secret))
        assert r.status_code == 200, r.text
        assert [n["namespace_id"] for n in r.json()["results"]] == [prod["namespace_id"]]
        r = await c.get("/v1/namespaces/staging", headers=bearer(secret))
        assert_error(r, 404, "NotFoundError")
        r = await c.get("/v1/buckets", headers=bearer(secret, **{"X-Namespace": "staging"}))
        assert_error(r, 404, "NotFoundError")
        r = await c.post(
            "/v1/buckets",
            headers=bearer(secret, **{"X-Namespace": "prod"}),
            json={"bucket_name": "from-cli-key", "bucket_schema": {"properties": {}}},
        )
        assert r.status_code == 200, r.text
        assert r.json()["bucket_name"] == "from-cli-key"
        r = await c.post("/v1/namespaces", headers=bearer(secret), json={"namespace_name": "x"})
        assert_error(r, 403, "ForbiddenError")
        r = await c.get("/v1/keys", headers=bearer(secret))
        assert_error(r, 403, "ForbiddenError")

    # The running app (built before the key existed) accepts it too, and lists it.
    r = await client.get("/v1/keys")
    listed = next(k for k in r.json()["results"] if k["key_id"] == key_id)
    assert listed["name"] == "ci writer"
    assert listed["role"] == "write"
    assert listed["namespaces"] == [prod["namespace_id"]]
    assert listed["revoked_at"] is None
    assert secret not in r.text
    r = await client.get(
        "/v1/buckets/from-cli-key", headers=bearer(secret, **{"X-Namespace": "prod"})
    )
    assert r.status_code == 200, r.text


async def test_repeated_namespace_option_and_ids(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    prod = await make_namespace(client, "prod")
    await make_namespace(client, "staging")
    await make_namespace(client, "dev")
    result = run_cli(
        "keys", "create", "--role", "read",
        "--namespace", prod["namespace_id"], "--namespace", "staging",
        "--data-dir", str(settings.data_dir),
    )  # fmt: skip
    secret = secret_of(result)
    async with app_on(settings.data_dir) as c:
        r = await c.get("/v1/namespaces", headers=bearer(secret))
        assert r.status_code == 200, r.text
        assert sorted(n["namespace_name"] for n in r.json()["results"]) == ["prod", "staging"]
        r = await c.patch("/v1/namespaces/prod", headers=bearer(secret), json={"description": "x"})
        assert_error(r, 403, "ForbiddenError")  # a read key, in its own namespace


async def test_unknown_namespace_fails_clearly_and_creates_nothing(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    await make_namespace(client, "prod")
    result = run_cli(
        "keys", "create", "--role", "write", "--namespace", "prod", "--namespace", "nope",
        "--data-dir", str(settings.data_dir),
    )  # fmt: skip
    assert result.exit_code != 0
    assert "namespace 'nope' does not exist" in result.output
    assert "sk_live_" not in result.output
    r = await client.get("/v1/keys")
    assert r.json()["total_count"] == 1  # only the bootstrap admin key

    result = run_cli("keys", "create", "--role", "root", "--data-dir", str(settings.data_dir))
    assert result.exit_code != 0
    assert "role" in result.output and "sk_live_" not in result.output
    r = await client.get("/v1/keys")
    assert r.json()["total_count"] == 1


async def test_list_shows_keys_without_secrets_and_revoke_makes_them_401(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    prod = await make_namespace(client, "prod")
    data_dir = str(settings.data_dir)
    created = run_cli("keys", "create", "--role", "write", "--namespace", "prod",
                      "--name", "ingester", "--data-dir", data_dir)  # fmt: skip
    secret, key_id = secret_of(created), key_id_of(created)

    listing = run_cli("keys", "list", "--data-dir", data_dir)
    assert listing.exit_code == 0, listing.output
    row = next(line for line in listing.output.splitlines() if key_id in line)
    assert "ingester" in row and "write" in row and prod["namespace_id"] in row
    assert secret[:12] in row  # the preview
    assert secret not in listing.output
    assert "sk_live_test_admin_key_0123456789" not in listing.output
    assert "*" in listing.output  # the bootstrap admin key: every namespace

    async with app_on(settings.data_dir) as c:
        r = await c.get("/v1/namespaces", headers=bearer(secret))
        assert r.status_code == 200, r.text

    revoked = run_cli("keys", "revoke", key_id, "--data-dir", data_dir)
    assert revoked.exit_code == 0, revoked.output
    assert f"revoked {key_id}" in revoked.output

    async with app_on(settings.data_dir) as c:
        r = await c.get("/v1/namespaces", headers=bearer(secret))
        assert_error(r, 401, "UnauthorizedError")

    listing = run_cli("keys", "list", "--data-dir", data_dir)
    row = next(line for line in listing.output.splitlines() if key_id in line)
    assert str(dt.datetime.now(dt.UTC).year) in row  # the revoked column now holds a timestamp
    r = await client.get("/v1/keys")
    assert next(k for k in r.json()["results"] if k["key_id"] == key_id)["revoked_at"]


def test_keys_list_shows_whole_key_ids_on_an_80_column_terminal(tmp_path: Path) -> None:
    """`keys revoke` needs the id that `keys list` shows; a cut-off id is of no use."""
    data_dir = str(tmp_path / "d")
    assert run_cli("migrate", "--data-dir", data_dir).exit_code == 0
    key_id = key_id_of(run_cli("keys", "create", "--role", "admin", "--data-dir", data_dir))
    result = CliRunner().invoke(
        cli, ["keys", "list", "--data-dir", data_dir], env={"COLUMNS": "80"}
    )
    assert result.exit_code == 0, result.output
    assert key_id in result.output


def test_revoking_an_unknown_key_fails_clearly(tmp_path: Path) -> None:
    assert run_cli("migrate", "--data-dir", str(tmp_path / "d")).exit_code == 0
    result = run_cli("keys", "revoke", "sk_00000000000000000000", "--data-dir", str(tmp_path / "d"))
    assert result.exit_code != 0
    assert "sk_00000000000000000000" in result.output
    assert "not found" in result.output


async def test_assay_data_dir_environment_is_honoured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "from-env"
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("ASSAY_DATA_DIR", str(data_dir))
    monkeypatch.delenv("ASSAY_ADMIN_KEY", raising=False)
    monkeypatch.delenv("ASSAY_DATABASE_URL", raising=False)

    assert run_cli("migrate").exit_code == 0  # keys never make a database of their own
    created = run_cli("keys", "create", "--role", "admin", "--name", "env admin")
    secret, key_id = secret_of(created), key_id_of(created)
    assert (data_dir / "assay.db").is_file()
    assert not (elsewhere / ".assay").exists()

    listing = run_cli("keys", "list")
    assert listing.exit_code == 0 and key_id in listing.output and "env admin" in listing.output

    # --data-dir wins over the environment: an empty folder is refused, not created.
    other = tmp_path / "explicit"
    listing = run_cli("keys", "list", "--data-dir", str(other))
    assert listing.exit_code == 1 and "no Assay database" in listing.output
    assert not other.exists()

    async with app_on(data_dir) as c:
        r = await c.get("/v1/keys", headers=bearer(secret))
        assert r.status_code == 200, r.text
        assert [k["key_id"] for k in r.json()["results"]] == [key_id]
        r = await c.post("/v1/namespaces", headers=bearer(secret), json={"namespace_name": "env"})
        assert r.status_code == 200, r.text

    revoked = run_cli("keys", "revoke", key_id)
    assert revoked.exit_code == 0, revoked.output
    async with app_on(data_dir) as c:
        r = await c.get("/v1/keys", headers=bearer(secret))
        assert_error(r, 401, "UnauthorizedError")


def test_installed_assay_command_with_environment(tmp_path: Path) -> None:
    """The real console script, in its own process, reading ASSAY_DATA_DIR."""
    exe = Path(sys.executable).parent / "assay"
    assert exe.exists(), exe
    data_dir = tmp_path / "proc"
    env = {**os.environ, "ASSAY_DATA_DIR": str(data_dir), "COLUMNS": "250"}
    env.pop("ASSAY_DATABASE_URL", None)
    subprocess.run([str(exe), "migrate"], cwd=tmp_path, env=env, timeout=60, check=True)
    proc = subprocess.run(
        [str(exe), "keys", "create", "--role", "read", "--name", "proc key"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    secret = proc.stdout.strip().splitlines()[-1]
    assert secret.startswith("sk_live_")
    proc = subprocess.run(
        [str(exe), "keys", "list"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "proc key" in proc.stdout and "read" in proc.stdout and secret not in proc.stdout
    assert (data_dir / "assay.db").is_file()
