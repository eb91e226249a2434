"""What every server-side command shares: the data dir option and its settings, checked."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from assay.config import Settings
from assay.kit.engines import DatabaseUnreachable, check_reachable, has_assay_schema, masked_url

console = Console(stderr=True)

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="data folder (default: ASSAY_DATA_DIR, else ~/.local/share/assay)"
    ),
]
LogFormat = Annotated[
    str, typer.Option("--log-format", help="text (key=value lines) or json (one object a line)")
]
LogLevel = Annotated[str, typer.Option("--log-level", help="debug, info, warning or error")]


def server_settings(data_dir: Path | None, *, existing: bool = False, **overrides: Any) -> Settings:
    """The settings of a server-side command, once its database is known to answer;
    `existing`: and to hold Assay's tables (every command but `serve` and `migrate`, which
    make them: another pointed at the wrong folder must say so, not start an empty one)."""
    values = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        values["data_dir"] = data_dir
    settings = Settings(**values)
    try:
        check_reachable(settings.database_url)
    except DatabaseUnreachable as exc:
        console.print(f"[red]{exc}[/]", soft_wrap=True)
        raise typer.Exit(1) from exc
    if existing and not has_assay_schema(settings.database_url):
        where = settings.data_dir if settings.is_sqlite else masked_url(settings.database_url)
        console.print(
            f"[red]no Assay database at {where}[/]: start `assay serve` (or run `assay "
            "migrate`) there first, or point this command at the right one with --data-dir "
            "or ASSAY_DATA_DIR (ASSAY_DATABASE_URL for PostgreSQL)",
            soft_wrap=True,
        )
        raise typer.Exit(1)
    return settings
