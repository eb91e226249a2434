"""`assay backup DEST`: a consistent online backup, taken while the server serves.

What lands in DEST:
- the database: `assay.db` (SQLite's online backup API: one consistent copy, writers go on)
  or `assay.pgdump` (`pg_dump --snapshot`, see `postgres.py`);
- `blobs/<key>`: the bytes of every blob and thumbnail the snapshot references, each checked
  against its SHA-256 (local blob store), or nothing but a pointer to the S3 store;
- `blobs.tsv`: those keys with their SHA-256 and size (the blobs manifest);
- `signing.key` when the data dir holds one (upload URLs signed before stay valid);
- `manifest.json`, written last: a folder without it is not a finished backup.
Vector index files are left out: they are caches, rebuilt from the vector tables on the first
search after a restore.

Consistency: the snapshot comes first, then the blobs it references are copied. Object deletes
remove bytes at once, so before the snapshot the backup holds every key referenced then
(`holds.py`), and after it the few keys registered in between; a key that was removed in that
gap (its object deleted after the snapshot) makes the backup take the snapshot again, with
that key now held as well. Unreferenced bytes are also kept by the garbage collector's
grace period (`blob_grace_s`), but the hold is what makes the copy complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from assay.backends.blob.base import BlobNotFound, BlobStore
from assay.backends.blob.local import LocalBlobStore
from assay.backends.blob.s3 import S3BlobStore
from assay.config import Settings
from assay.kit.db import Database, utcnow
from assay.maintenance import postgres
from assay.maintenance.holds import BlobHold
from assay.maintenance.queries import all_thumbnails
from assay.models import Blob
from assay.objects.storage import IN_DATABASE, derived_key

FORMAT = "assay-backup/1"
MANIFEST = "manifest.json"
BLOB_INDEX = "blobs.tsv"
SQLITE_FILE = "assay.db"
PG_FILE = "assay.pgdump"
SIGNING_KEY = "signing.key"
_SNAPSHOT_TRIES = 5


class BackupError(RuntimeError):
    """The backup cannot be taken (the message says why and what to do)."""


@dataclass(frozen=True)
class BlobRef:
    key: str
    sha256: str


@dataclass
class BackupReport:
    dest: Path
    database_file: str
    blobs: int = 0
    bytes: int = 0
    store: str = "local"  # or the `s3://bucket/prefix` the backup points at
    snapshots: int = 0  # how many snapshots it took (more than 1: keys went meanwhile)
    missing: list[str] = field(default_factory=list)  # referenced, already gone at the start


def sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError(f"{url} is not a SQLite database file")
    return Path(database)


def references(session: Session) -> list[BlobRef]:
    """Every stored key the database references: blob bytes outside the database, and the
    thumbnails of documents."""
    stmt = (
        select(Blob.storage_key, Blob.sha256)
        .where(~Blob.storage_key.startswith(IN_DATABASE, autoescape=True))
        .distinct()
    )
    refs = [BlobRef(key, sha) for key, sha in session.execute(stmt)]
    refs += [BlobRef(derived_key(ns, sha), sha) for ns, sha in all_thumbnails(session)]
    return refs


class Backup:
    """One backup of the deployment `settings` describes, into the empty folder `dest`."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        store: BlobStore,
        dest: Path,
        pg_bin: Path | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.store = store
        self.dest = dest
        self.pg_bin = pg_bin
        self.hold = BlobHold(db)
        self.copies = isinstance(store, LocalBlobStore)  # S3: a pointer, no copy
        self.report = BackupReport(dest, SQLITE_FILE if settings.is_sqlite else PG_FILE)

    def run(self, pause: Callable[[str], None] | None = None) -> BackupReport:
        """Take the backup. `pause(stage)` runs after the first hold (`"held"`) and after each
        snapshot (`"snapshot"`): tests change the data there, at the worst moments."""
        self._prepare_dest()
        pause = pause or (lambda _stage: None)
        try:
            with self.hold.kept_alive():
                self.hold.take(r.key for r in self.db.read_sync(references))
                pause("held")
                refs = self._snapshot_and_copy(pause)
                self._finish(refs)
        finally:
            self.hold.release()
        return self.report

    def _prepare_dest(self) -> None:
        if self.dest.exists() and any(self.dest.iterdir()):
            raise BackupError(f"{self.dest} is not empty: back up into a new folder")
        self.dest.mkdir(parents=True, exist_ok=True)

    def _snapshot_and_copy(self, pause: Callable[[str], None]) -> list[BlobRef]:
        for _ in range(_SNAPSHOT_TRIES):
            self.report.snapshots += 1
            refs = self.snapshot()
            pause("snapshot")
            # Keys registered since the first hold: held now, once removals under way are done.
            late = set(self.hold.take(r.key for r in refs))
            self.hold.wait_for_removals(sorted(late))
            missing = self._copy(refs)
            if not missing & late:
                # Keys held before the snapshot cannot have gone since: if they are missing,
                # they were already (the backup says so, as the source would answer 404).
                self.report.missing = sorted(missing)
                return refs
            # A late key went before it was held: its object was deleted after the snapshot.
        raise BackupError("blobs kept vanishing between snapshot and copy; try again")

    # -- the database --------------------------------------------------------------------

    def snapshot(self) -> list[BlobRef]:
        """Copy the database into DEST; returns what that copy references."""
        if self.settings.is_sqlite:
            return self._sqlite_snapshot()
        return self._pg_snapshot()

    def _sqlite_snapshot(self) -> list[BlobRef]:
        target = self.dest / SQLITE_FILE
        target.unlink(missing_ok=True)
        path = sqlite_path(self.settings.database_url)
        # Read-only: a mistyped path fails instead of becoming a new, empty database.
        source = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=30)
        copy = sqlite3.connect(target)
        try:
            # One step (pages=-1): a single read transaction, so one consistent state; under
            # WAL the server's writers are not blocked meanwhile.
            source.backup(copy)
        finally:
            copy.close()
            source.close()
        engine = create_engine(f"sqlite:///{target}")
        try:
            with Session(engine) as session:
                return references(session)
        finally:
            engine.dispose()

    def _pg_snapshot(self) -> list[BlobRef]:
        target = self.dest / PG_FILE
        target.unlink(missing_ok=True)
        engine = self.db.engine
        with engine.connect() as raw:
            conn = raw.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                # pg_dump reads in the snapshot of this transaction, so the keys read below
                # are exactly those the dump references; it stays open until pg_dump is done.
                snapshot = str(conn.scalar(text("SELECT pg_export_snapshot()")))
                with Session(bind=conn) as session:
                    refs = references(session)
                postgres.dump(self.settings.database_url, target, snapshot, self.pg_bin)
        return refs

    # -- the blobs -----------------------------------------------------------------------

    def _copy(self, refs: list[BlobRef]) -> set[str]:
        """Copy (local store) or look up (S3) every referenced key; returns the missing ones."""
        missing: set[str] = set()
        for ref in refs:
            try:
                if self.copies:
                    self._copy_one(ref)
                elif not self.store.exists(ref.key):
                    missing.add(ref.key)
            except BlobNotFound:
                missing.add(ref.key)
        return missing

    def _copy_one(self, ref: BlobRef) -> None:
        target = self.dest / "blobs" / ref.key
        if target.is_file():
            return  # copied by an earlier try
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        digest = hashlib.sha256()
        with partial.open("wb") as out:
            for chunk in self.store.read_range(ref.key, 0, None):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != ref.sha256:
            partial.unlink()
            raise BackupError(f"the stored bytes of {ref.key} do not match their SHA-256")
        os.replace(partial, target)

    # -- the rest ------------------------------------------------------------------------

    def _finish(self, refs: list[BlobRef]) -> None:
        gone = set(self.report.missing)
        present = [r for r in refs if r.key not in gone]
        self._drop_unlisted({r.key for r in present})
        sizes = {r.key: self._size(r.key) for r in present}
        with (self.dest / BLOB_INDEX).open("w", encoding="utf-8") as fh:
            for ref in sorted(present, key=lambda r: r.key):
                fh.write(f"{ref.key}\t{ref.sha256}\t{sizes[ref.key]}\n")
        self.report.blobs, self.report.bytes = len(present), sum(sizes.values())
        files = []
        key_file = self.settings.data_dir / SIGNING_KEY
        if key_file.is_file():
            shutil.copy2(key_file, self.dest / SIGNING_KEY)
            files.append(SIGNING_KEY)
        self.report.store = self._store_uri()
        manifest = {
            "format": FORMAT,
            "created_at": utcnow().isoformat(),
            "database": {
                "kind": "sqlite" if self.settings.is_sqlite else "postgresql",
                "file": self.report.database_file,
            },
            "blobs": {
                "copied": self.copies,
                "store": self.report.store,
                "index": BLOB_INDEX,
                "count": self.report.blobs,
                "bytes": self.report.bytes,
                "missing": self.report.missing,
            },
            "files": files,
        }
        write_json(self.dest / MANIFEST, manifest)

    def _drop_unlisted(self, keys: set[str]) -> None:
        """Copies an earlier snapshot needed and the last one does not (after a retry)."""
        folder = self.dest / "blobs"
        if not folder.is_dir():
            return
        for path in [p for p in folder.rglob("*") if p.is_file()]:
            if path.relative_to(folder).as_posix() not in keys:
                path.unlink()

    def _size(self, key: str) -> int:
        if self.copies:
            return (self.dest / "blobs" / key).stat().st_size
        return self.store.size(key)

    def _store_uri(self) -> str:
        if isinstance(self.store, S3BlobStore):
            prefix = f"/{self.store.prefix}" if self.store.prefix else ""
            return f"s3://{self.store.bucket}{prefix}"
        return "local"


def write_json(path: Path, data: dict[str, Any]) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    try:
        manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise BackupError(f"{folder} holds no {MANIFEST}: not a finished Assay backup") from exc
    except ValueError as exc:
        raise BackupError(f"{path} is not valid JSON: {exc}") from exc
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{path} is not an {FORMAT} manifest")
    return manifest


def blob_index(folder: Path) -> Iterator[tuple[str, str, int]]:
    """(key, SHA-256, size) of every blob the backup lists."""
    with (folder / BLOB_INDEX).open(encoding="utf-8") as fh:
        for line in fh:
            key, sha, size = line.rstrip("\n").split("\t")
            yield key, sha, int(size)
