"""`assay gc`, `assay backup` and `assay restore`: operating a deployment's data (server-side
commands: they work on the data dir and database directly, as `assay keys` does)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from assay.backends.blob.base import BlobStore
from assay.backends.blob.factory import make_blob_store
from assay.cli_settings import DataDir, server_settings
from assay.config import Settings
from assay.kit.db import Database
from assay.kit.engines import DatabaseUnreachable, check_reachable
from assay.maintenance.backup import Backup, BackupError
from assay.maintenance.postgres import ToolFailed, ToolMissing
from assay.maintenance.restore import Restore
from assay.maintenance.sweeper import Sweeper
from assay.migrations.runner import upgrade_to_head

console = Console()
err = Console(stderr=True)

PgBin = Annotated[
    Path | None,
    typer.Option("--pg-bin", help="folder holding pg_dump and pg_restore (default: PATH)"),
]
JsonOut = Annotated[bool, typer.Option("--json", help="print the result as JSON")]


def _store(settings: Settings) -> BlobStore:
    return make_blob_store(
        settings.blob_store,
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        access_key_id=settings.s3_access_key_id,
        secret_access_key=settings.s3_secret_access_key,
    )


def _show(heading: str, rows: dict[str, Any]) -> None:
    console.print(f"[bold]{heading}[/]", soft_wrap=True)
    table = Table(show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    for name, value in rows.items():
        table.add_row(name.replace("_", " "), str(value))
    console.print(table)


def gc(
    data_dir: DataDir = None,
    scan: Annotated[
        bool, typer.Option("--scan/--no-scan", help="walk the blob store for orphaned bytes")
    ] = True,
    as_json: JsonOut = False,
) -> None:
    """Remove what nothing uses any more, once (servers do it every gc_interval_s)."""
    settings = server_settings(data_dir, existing=True)
    upgrade_to_head(settings.database_url)
    db = Database(settings.database_url)
    try:
        counts = Sweeper(settings, db, _store(settings)).run(scan=scan)
    finally:
        db.close()
    if counts.skipped:
        err.print("another process is sweeping right now; nothing done")
        raise typer.Exit(1)
    removed = counts.removed()
    if as_json:
        print(json.dumps({"removed": removed, "scanned": counts.scanned}))
        return
    _show("removed", removed)
    if not counts.scanned:
        console.print("(the blob store was not walked: --scan)")


def backup(
    dest: Annotated[Path, typer.Argument(help="a new or empty folder for the backup")],
    data_dir: DataDir = None,
    pg_bin: PgBin = None,
    as_json: JsonOut = False,
) -> None:
    """Back up the database and the blobs it references while the server runs."""
    settings = server_settings(data_dir, existing=True)
    db = Database(settings.database_url)
    try:
        report = Backup(settings, db, _store(settings), dest.resolve(), pg_bin).run()
    except (BackupError, ToolMissing, ToolFailed) as exc:
        err.print(f"[red]backup failed:[/] {exc}", soft_wrap=True)
        raise typer.Exit(1) from exc
    finally:
        db.close()
    summary = {
        "database": report.database_file,
        "blobs": report.blobs,
        "bytes": report.bytes,
        "blob_store": report.store,
        "snapshots": report.snapshots,
        "missing": len(report.missing),
    }
    if as_json:
        print(json.dumps({"dest": str(report.dest), **summary, "missing": report.missing}))
        return
    _show(f"backup in {report.dest}", summary)
    for key in report.missing[:20]:
        err.print(f"[yellow]missing already in the source:[/] {key}")


def restore(
    source: Annotated[Path, typer.Argument(help="a folder made by `assay backup`")],
    data_dir: DataDir = None,
    pg_bin: PgBin = None,
    as_json: JsonOut = False,
) -> None:
    """Restore a backup into an empty data dir (and, on PostgreSQL, an empty database)."""
    settings = Settings(data_dir=data_dir) if data_dir is not None else Settings()
    try:
        check_reachable(settings.database_url)
        report = Restore(settings, _store(settings), source.resolve(), pg_bin).run()
    except DatabaseUnreachable as exc:
        err.print(f"[red]{exc}[/]", soft_wrap=True)
        raise typer.Exit(1) from exc
    except (BackupError, ToolMissing, ToolFailed) as exc:
        err.print(f"[red]restore failed:[/] {exc}", soft_wrap=True)
        raise typer.Exit(1) from exc
    summary = {
        "namespaces": report.namespaces,
        "objects": report.objects,
        "documents": report.documents,
        "blobs": report.blobs,
        "bytes": report.bytes,
        "missing_blobs": report.missing,
    }
    if as_json:
        print(json.dumps({"data_dir": str(settings.data_dir), **summary}))
        return
    _show(f"restored into {settings.data_dir}", summary)
    console.print("vector indexes are rebuilt from the restored tables on the first search")
    if report.missing:
        err.print(f"[yellow]{report.missing} blobs the backup lists are not in the store[/]")


def register(app: typer.Typer) -> None:
    """Add `assay gc`, `assay backup` and `assay restore` to the `assay` command."""
    app.command("gc")(gc)
    app.command("backup")(backup)
    app.command("restore")(restore)
