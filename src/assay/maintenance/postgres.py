"""PostgreSQL's own tools for backups: `pg_dump` reads the database inside the snapshot Assay
exported (so the blobs it lists and the dump agree), `pg_restore` loads it into an empty one.

The tools must be of the server's major version or newer; they are found in `--pg-bin`, else
on PATH. The password never goes on a command line: it is handed over in `PGPASSWORD`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from sqlalchemy import Engine, func, select, text
from sqlalchemy.engine import make_url

from assay.kit.engines import masked_url


class ToolMissing(RuntimeError):
    """pg_dump or pg_restore is not there; the message says what to run instead."""


class ToolFailed(RuntimeError):
    """pg_dump or pg_restore exited with an error (its stderr is in the message)."""


def find_tool(name: str, bin_dir: Path | None) -> Path | None:
    if bin_dir is not None:
        candidate = bin_dir / name
        return candidate if os.access(candidate, os.X_OK) else None
    found = shutil.which(name)
    return Path(found) if found else None


def libpq(url: str) -> tuple[str, dict[str, str]]:
    """The libpq form of a SQLAlchemy URL (no driver, no password) and the environment that
    carries the password."""
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    bare = parsed.set(drivername="postgresql", password=None)
    return bare.render_as_string(hide_password=False), env


def _run(tool: Path, args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run([str(tool), *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        hint = ""
        if "version mismatch" in done.stderr:
            hint = f" ({tool} is too old for the server: pass --pg-bin with newer tools)"
        raise ToolFailed(
            f"{tool.name} failed ({done.returncode}): {done.stderr.strip()[-2000:]}{hint}"
        )


def dump(url: str, target: Path, snapshot: str, bin_dir: Path | None) -> None:
    """`pg_dump` of the database as seen by `snapshot` into `target` (custom format)."""
    tool = find_tool("pg_dump", bin_dir)
    if tool is None:
        raise ToolMissing(
            "assay backup on PostgreSQL runs pg_dump, which was not found "
            f"({'in ' + str(bin_dir) if bin_dir else 'on PATH'}). Install PostgreSQL's client "
            "tools of the server's major version (or pass --pg-bin), or back the database up "
            f"yourself: pg_dump --format=custom --file=assay.pgdump '{masked_url(_plain(url))}'"
            " (see README, Backups and garbage collection)."
        )
    dsn, env = libpq(url)
    args = ["--format=custom", "--no-owner", "--no-privileges", f"--snapshot={snapshot}"]
    _run(tool, [*args, f"--file={target}", f"--dbname={dsn}"], env)


def restore(url: str, source: Path, bin_dir: Path | None) -> None:
    """`pg_restore` of a custom-format dump into the (empty) database at `url`."""
    tool = find_tool("pg_restore", bin_dir)
    if tool is None:
        raise ToolMissing(
            "assay restore on PostgreSQL runs pg_restore, which was not found "
            f"({'in ' + str(bin_dir) if bin_dir else 'on PATH'}). Install PostgreSQL's client "
            "tools (or pass --pg-bin), or run it yourself: pg_restore --no-owner "
            f"--dbname='{masked_url(_plain(url))}' {source}"
        )
    dsn, env = libpq(url)
    args = ["--no-owner", "--no-privileges", "--exit-on-error", f"--dbname={dsn}", str(source)]
    _run(tool, args, env)


def is_empty(engine: Engine) -> bool:
    """Whether the database has no tables of its own (a restore never overwrites)."""
    stmt = (
        select(func.count())
        .select_from(text("information_schema.tables"))
        .where(text("table_schema NOT IN ('pg_catalog', 'information_schema')"))
    )
    with engine.connect() as conn:
        return not conn.scalar(stmt)


def _plain(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
