"""The `assay` command: serve, worker, migrate, keys; and, as a client of a running server,
ingest, search, namespaces, buckets, collections, batches (`cli_client.py`, `cli_ingest.py`)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from rich.console import Console
from rich.table import Table

from assay import cli_client, cli_ingest, cli_ops
from assay.auth import service as auth_service
from assay.cli_settings import DataDir, LogFormat, LogLevel, server_settings
from assay.errors import AppError
from assay.kit import logs, memory, serving
from assay.kit.db import (
    Database,
)
from assay.main import create_app, prepare
from assay.migrations.runner import upgrade_to_head
from assay.workers import Background

app = typer.Typer(help="Assay: a self-hosted multimodal data platform.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage API keys (same data dir as the server).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
console = Console()


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="bind address (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default 8000)")] = None,
    data_dir: DataDir = None,
    workers: Annotated[int | None, typer.Option(help="in-server job workers")] = None,
    log_format: LogFormat = "text",
    log_level: LogLevel = "info",
) -> None:
    """Run the HTTP API on embedded defaults (SQLite, local blob folder)."""
    logs.configure(_log_format(log_format), log_level)
    settings = server_settings(data_dir, host=host, port=port, workers=workers)
    console.print(
        f"[bold]Assay[/] on http://{settings.host}:{settings.port}  data: {settings.data_dir}"
    )
    memory.tune_for_serving()
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
        http=serving.http_protocol(),
    )


@app.command()
def worker(
    data_dir: DataDir = None,
    concurrency: Annotated[int, typer.Option(help="jobs run at once in this process")] = 1,
    metrics_port: Annotated[
        int | None, typer.Option(help="serve this process's Prometheus metrics on this port")
    ] = None,
    engine: Annotated[
        str | None, typer.Option(help="where extraction runs: local or ray (ASSAY_ENGINE)")
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(help="host:port of a Ray cluster (default: a local Ray in this process)"),
    ] = None,
    log_format: LogFormat = "text",
    log_level: LogLevel = "info",
) -> None:
    """Run background jobs (batch extraction) against the same database as the server."""
    logs.configure(_log_format(log_format), log_level)
    if engine not in (None, "local", "ray"):
        raise typer.BadParameter("local or ray", param_hint="--engine")
    settings = server_settings(data_dir, existing=True, engine=engine, ray_address=ray_address)
    memory.tune_for_serving()
    ctx = prepare(settings)
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr=settings.host)
    where = "" if settings.engine == "local" else f"  engine: ray {settings.ray_address or 'local'}"
    console.print(f"[bold]Assay worker[/] x{concurrency}  data: {settings.data_dir}{where}")

    async def run() -> None:
        background = Background(ctx, concurrency)
        background.start()
        memory.freeze_heap()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await background.stop()

    try:
        asyncio.run(run())
    finally:
        ctx.close()


@app.command()
def migrate(data_dir: DataDir = None) -> None:
    """Apply database migrations."""
    settings = server_settings(data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade_to_head(settings.database_url)
    console.print("database is up to date")


def _log_format(value: str) -> logs.LogFormat:
    if value not in ("text", "json"):
        raise typer.BadParameter("text or json", param_hint="--log-format")
    return "json" if value == "json" else "text"


def _database(data_dir: Path | None) -> Database:
    settings = server_settings(data_dir, existing=True)
    upgrade_to_head(settings.database_url)
    return Database(settings.database_url)


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="admin, write or read")] = "write",
    namespace: Annotated[
        list[str] | None, typer.Option(help="limit to this namespace (repeatable)")
    ] = None,
    name: Annotated[str, typer.Option(help="a label for the key")] = "cli key",
    data_dir: DataDir = None,
) -> None:
    """Create a key and print its secret (shown only once)."""
    if role not in ("admin", "write", "read"):
        raise typer.BadParameter("role must be admin, write or read", param_hint="--role")
    db = _database(data_dir)
    try:
        key, secret = db.write_sync(
            lambda s: auth_service.create_key(s, name=name, role=role, namespaces=namespace or None)  # type: ignore[arg-type]
        )
    except AppError as exc:
        console.print(f"[red]error:[/] {exc.message}")
        raise typer.Exit(1) from exc
    finally:
        db.close()
    console.print(f"created {key.key_id} ({role}); the secret is shown only once:")
    print(secret)


@keys_app.command("list")
def keys_list(data_dir: DataDir = None) -> None:
    """List keys (never their secrets)."""
    db = _database(data_dir)
    try:
        keys = db.read_sync(auth_service.list_keys)
    finally:
        db.close()
    table = Table()
    table.add_column("key_id", no_wrap=True, min_width=23)  # whole: `keys revoke` needs it
    for column in ("name", "role", "namespaces", "preview", "revoked"):
        table.add_column(column, overflow="ellipsis")
    for k in keys:
        table.add_row(
            k.key_id,
            k.name,
            k.role,
            ", ".join(k.namespaces or ["*"]),
            k.key_preview,
            str(k.revoked_at or ""),
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str, data_dir: DataDir = None) -> None:
    """Revoke a key."""
    db = _database(data_dir)
    try:
        db.write_sync(lambda s: auth_service.revoke_key(s, key_id))
    except AppError as exc:
        console.print(f"[red]error:[/] {exc.message}")
        raise typer.Exit(1) from exc
    finally:
        db.close()
    console.print(f"revoked {key_id}")


cli_ops.register(app)  # gc, backup, restore

# Client commands (they talk to a running server over HTTP), listed after the server's own.
cli_ingest.register(app)
cli_client.register(app)
