"""`assay restore SRC`: a backup into an empty data dir (and, on PostgreSQL, an empty
database), giving a server with the same namespaces, objects, documents and search.

The database comes back as it was in the snapshot, then is migrated (a backup of an older
release restores into a newer one). Copied blobs are written into the configured blob store,
local or S3, each checked against its SHA-256; a backup that points at an S3 store needs that
store configured, and every key it lists is looked up there. Vector indexes are rebuilt from
the restored vector tables on the first search.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select

from assay.backends.blob.base import BlobStore
from assay.config import Settings
from assay.kit.scratch import process_folder
from assay.maintenance import postgres
from assay.maintenance.backup import (
    BackupError,
    blob_index,
    read_manifest,
    sqlite_path,
)
from assay.migrations.runner import upgrade_to_head
from assay.models import Document, Namespace, Object

# What an empty data dir may already hold: the new deployment's own settings.
_ALLOWED = {"assay.toml"}


@dataclass
class RestoreReport:
    namespaces: int = 0
    objects: int = 0
    documents: int = 0
    blobs: int = 0
    bytes: int = 0
    missing: int = 0  # keys a pointer backup lists that its S3 store no longer has


class Restore:
    def __init__(
        self, settings: Settings, store: BlobStore, source: Path, pg_bin: Path | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self.source = source
        self.pg_bin = pg_bin
        self.manifest = read_manifest(source)

    def run(self) -> RestoreReport:
        self._check_target()
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        for name in self.manifest.get("files", []):
            shutil.copy2(self.source / name, self.settings.data_dir / name)
        self._database()
        report = RestoreReport()
        if self.manifest["blobs"]["copied"]:
            report.blobs, report.bytes = self._copy_blobs()
        else:
            listed = (key for key, _sha, _size in blob_index(self.source))
            report.missing = sum(1 for key in listed if not self.store.exists(key))
        self._count(report)
        return report

    # -- checks --------------------------------------------------------------------------

    def _check_target(self) -> None:
        kind = self.manifest["database"]["kind"]
        here = "sqlite" if self.settings.is_sqlite else "postgresql"
        if kind != here:
            raise BackupError(
                f"the backup holds a {kind} database and this deployment uses {here}: "
                "set ASSAY_DATABASE_URL to a database of the backup's kind"
            )
        data_dir = self.settings.data_dir
        # Empty folders do not count: making the blob store's object creates its folder.
        held = [p for p in data_dir.rglob("*") if not p.is_dir()] if data_dir.exists() else []
        if [p for p in held if p.relative_to(data_dir).as_posix() not in _ALLOWED]:
            raise BackupError(f"{data_dir} is not empty: restore into a new data dir")
        if self.settings.is_sqlite:
            if sqlite_path(self.settings.database_url).exists():
                raise BackupError(f"{self.settings.database_url} exists already")
        elif not self._pg_empty():
            raise BackupError(
                "the PostgreSQL database has tables already: restore into an empty database "
                "(CREATE DATABASE ...)"
            )
        store = self.manifest["blobs"]["store"]
        if not self.manifest["blobs"]["copied"] and store != self._store_uri():
            raise BackupError(
                f"the backup's blobs stay in {store}: set ASSAY_BLOB_STORE={store} (and the "
                "ASSAY_S3_* settings to reach it) before restoring"
            )

    def _pg_empty(self) -> bool:
        engine = create_engine(self.settings.database_url)
        try:
            return postgres.is_empty(engine)
        finally:
            engine.dispose()

    def _store_uri(self) -> str:
        return self.settings.blob_store.rstrip("/")

    # -- restoring -----------------------------------------------------------------------

    def _database(self) -> None:
        dump = self.source / self.manifest["database"]["file"]
        if self.settings.is_sqlite:
            target = sqlite_path(self.settings.database_url)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(dump, target)
        else:
            postgres.restore(self.settings.database_url, dump, self.pg_bin)
        upgrade_to_head(self.settings.database_url)

    def _copy_blobs(self) -> tuple[int, int]:
        count = size = 0
        staging = process_folder(self.settings.tmp_dir) / "restore"
        staging.mkdir(parents=True, exist_ok=True)
        try:
            for key, sha, length in blob_index(self.source):
                self._put(key, sha, staging)
                count, size = count + 1, size + length
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return count, size

    def _put(self, key: str, sha: str, staging: Path) -> None:
        """Copy one blob into the store through a checked temporary file (the store moves it
        into place, so a reader never sees half)."""
        fd, name = tempfile.mkstemp(dir=staging)
        tmp = Path(name)
        digest = hashlib.sha256()
        with (self.source / "blobs" / key).open("rb") as src, open(fd, "wb") as out:
            while chunk := src.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha:
            tmp.unlink()
            raise BackupError(f"the backup's copy of {key} does not match its SHA-256")
        self.store.put_file(tmp, key)
        tmp.unlink(missing_ok=True)

    def _count(self, report: RestoreReport) -> None:
        engine = create_engine(self.settings.database_url)
        try:
            with engine.connect() as conn:

                def count(model: Any) -> int:
                    return int(conn.scalar(select(func.count()).select_from(model)) or 0)

                report.namespaces = count(Namespace)
                report.objects = count(Object)
                report.documents = count(Document)
        finally:
            engine.dispose()
