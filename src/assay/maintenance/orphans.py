"""Bytes nothing references any more, found by walking the blob store and the data dir.

Keys of the store (named by `objects/storage.py` and `uploads/desk.py`):
- `{ns}/{sha[:2]}/{sha}`: blob bytes, referenced by `blobs.storage_key`. Orphans are left by
  a process that died between committing an object's delete and removing its bytes, or
  between writing bytes and committing the object, and by removals a backup held off.
- `{ns}/derived/{sha[:2]}/{sha}`: extraction output (video thumbnails), referenced by a
  document's `content.thumbnail.sha256`; deleting the document leaves them behind.
- `{ns}/uploads/{upload_id}`: an S3 direct upload's staging key, referenced by its upload.
- `.tmp-*` (local store): a write cut short by a crash.
And in the data dir's `tmp/`: the folders of processes that are gone (`kit/scratch.py`), and
loose files an older version left there.
Anything else is left alone. Only bytes last written more than `blob_grace_s` ago are looked
at, so work in flight is never even considered.

Blob and thumbnail bytes are removed only under a removal claim (`objects/claims.py`), the
protocol object deletes use: the claim is refused while any process holds a use claim on the
key (a registration writing or reusing those bytes, a backup copying them) or a row points at
it, and a registration waits for a removal under way and then writes the bytes again. So an
object registered during a sweep with the same content always ends up with its bytes.
Extraction writes thumbnails without claims (from its threads, then commits the documents), so
a namespace's thumbnails are only swept when none of its batch jobs has been queued, running or
touched for `QUIET`, and bytes removed while one started are put back (a thumbnail is a few
KB, held meanwhile).
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from assay.backends.blob.base import BlobNotFound, BlobStore
from assay.kit.db import Database, utcnow
from assay.kit.scratch import sweep_dead_folders
from assay.maintenance.gc import never_stop
from assay.maintenance.listing import stored_keys
from assay.maintenance.queries import (
    existing_collections,
    extraction_active,
    referenced_thumbnails,
    unconfirmed_uploads,
)
from assay.objects import claims
from assay.objects.repository import unreferenced_keys

_SHA = r"[0-9a-f]{64}"
_BLOB = re.compile(rf"(?P<ns>[^/]+)/[0-9a-f]{{2}}/(?P<sha>{_SHA})")
_DERIVED = re.compile(rf"(?P<ns>[^/]+)/derived/[0-9a-f]{{2}}/(?P<sha>{_SHA})")
_STAGING = re.compile(r"(?P<ns>[^/]+)/uploads/(?P<upload>[A-Za-z0-9_]+)")
_TEMP = re.compile(r"(.*/)?\.tmp-[^/]*")
# A namespace's thumbnails are swept only when none of its batch jobs was queued, running or
# touched for this long (and put back if one was while they were removed).
QUIET = dt.timedelta(minutes=10)


@dataclass
class OrphanCounts:
    blobs: int = 0
    derived: int = 0
    staging: int = 0  # upload bytes: S3 staging keys and files of the local upload folder
    temp: int = 0  # halves of interrupted writes, index folders of deleted collections


@dataclass(frozen=True)
class OrphanSweep:
    db: Database
    store: BlobStore
    upload_folder: Path
    index_root: Path
    grace: dt.timedelta
    limit: int
    checkpoint: Callable[[], None] = never_stop  # raises to stop the walk at a shutdown
    scratch_root: Path | None = None  # the data dir's tmp/, holding each process's folder

    def run(self, now: dt.datetime) -> OrphanCounts:
        counts = OrphanCounts()
        self._walk_store(now - self.grace, counts)
        counts.staging += self._upload_folder(now - self.grace)
        counts.temp += self._index_leftovers(now - self.grace)
        counts.temp += self._scratch_leftovers(now - self.grace)
        return counts

    # -- the store ---------------------------------------------------------------------

    def _walk_store(self, cutoff: dt.datetime, counts: OrphanCounts) -> None:
        blobs: list[tuple[str, str]] = []  # (namespace id, key)
        derived: list[tuple[str, str, str]] = []  # (namespace id, key, sha256)
        staging: list[tuple[str, str]] = []  # (key, upload id)

        def flush(final: bool = False) -> None:
            if blobs and (final or len(blobs) >= self.limit):
                counts.blobs += self._blobs(blobs)
                blobs.clear()
            if derived and (final or len(derived) >= self.limit):
                counts.derived += self._derived(derived)
                derived.clear()
            if staging and (final or len(staging) >= self.limit):
                counts.staging += self._staging(staging)
                staging.clear()

        for item in stored_keys(self.store):
            self.checkpoint()
            if item.modified >= cutoff:
                continue
            key = item.key
            if m := _BLOB.fullmatch(key):
                blobs.append((m["ns"], key))
            elif m := _DERIVED.fullmatch(key):
                derived.append((m["ns"], key, m["sha"]))
            elif m := _STAGING.fullmatch(key):
                staging.append((key, m["upload"]))
            elif _TEMP.fullmatch(key):
                self.store.delete(key)
                counts.temp += 1
            flush()
        flush(final=True)

    def _blobs(self, items: list[tuple[str, str]]) -> int:
        """Remove the bytes of these blob keys that no row references and nobody uses."""
        by_ns: dict[str, set[str]] = defaultdict(set)
        for ns, key in items:
            by_ns[ns].add(key)
        # A plain read first: nearly every key walked is referenced, and needs no lock.
        candidates = self.db.read_sync(
            lambda s: [
                (ns, k) for ns, keys in by_ns.items() for k in unreferenced_keys(s, ns, keys)
            ]
        )
        return len(self._remove_claimed(candidates))

    def _derived(self, items: list[tuple[str, str, str]]) -> int:
        by_ns: dict[str, dict[str, str]] = defaultdict(dict)  # ns → sha → key
        for ns, key, sha in items:
            by_ns[ns][sha] = key
        return sum(self._derived_of(ns, keys) for ns, keys in by_ns.items())

    def _derived_of(self, ns: str, keys: dict[str, str]) -> int:
        # Job times come from the clocks of the machines that ran them: a margin covers skew.
        quiet_since = utcnow() - QUIET

        def candidates(s: Session) -> list[tuple[str, str]]:
            if extraction_active(s, ns, since=quiet_since):
                return []  # its documents may be about to point at any of these
            used = referenced_thumbnails(s, ns, set(keys))
            return [(ns, key) for sha, key in keys.items() if sha not in used]

        held: dict[str, bytes] = {}

        def keep_copy(key: str) -> None:
            held[key] = b"".join(self.store.read_range(key, 0, None))

        removed = self._remove_claimed(self.db.read_sync(candidates), before_delete=keep_copy)
        if not removed:
            return 0
        started: bool = self.db.read_sync(lambda s: extraction_active(s, ns, since=quiet_since))
        if started:
            for key in removed:  # a job started meanwhile and may have counted on them
                self.store.put_bytes(held[key], key)
            return 0
        return len(removed)

    def _remove_claimed(
        self,
        candidates: list[tuple[str, str]],
        before_delete: Callable[[str], None] | None = None,
    ) -> list[str]:
        """Claim each (namespace, key) for removal, delete the bytes of those granted, release
        the claims; returns the keys removed."""
        if not candidates:
            return []

        def claim(s: Session) -> list[tuple[str, str]]:
            granted = []
            for ns, key in sorted(candidates, key=lambda c: c[1]):  # one lock order everywhere
                claim_id = claims.claim_removal(s, ns, key)
                if claim_id is not None:
                    granted.append((key, claim_id))
            return granted

        granted = self.db.write_sync(claim)
        removed: list[str] = []
        try:
            for key, _ in granted:
                try:
                    if before_delete is not None:
                        before_delete(key)
                except BlobNotFound:
                    continue
                self.store.delete(key)
                removed.append(key)
        finally:
            ids = [claim_id for _, claim_id in granted]
            self.db.write_sync(lambda s: claims.release(s, ids))
        return removed

    def _staging(self, items: list[tuple[str, str]]) -> int:
        """S3 staging keys of uploads that are gone or confirmed (expired ones are removed
        with their rows by `gc.sweep_uploads`)."""
        live = self.db.read_sync(lambda s: unconfirmed_uploads(s, {u for _, u in items}))
        gone = [key for key, upload_id in items if upload_id not in live]
        for key in gone:
            self.store.delete(key)
        return len(gone)

    # -- the data dir ------------------------------------------------------------------

    def _upload_folder(self, cutoff: dt.datetime) -> int:
        """Files of the local upload folder whose upload is gone or confirmed."""
        old = [p for p in _files(self.upload_folder) if _modified(p) < cutoff]
        ids = {p.name.split(".", 1)[0] for p in old}
        live = self.db.read_sync(lambda s: unconfirmed_uploads(s, ids)) if ids else set()
        gone = [p for p in old if p.name.split(".", 1)[0] not in live]
        for path in gone:
            path.unlink(missing_ok=True)
        return len(gone)

    def _index_leftovers(self, cutoff: dt.datetime) -> int:
        """Temporary files of index saves a crash cut short, and the index folders of
        collections deleted while another process had them open."""
        if not self.index_root.is_dir():
            return 0
        removed = 0
        for path in self.index_root.glob("*/*.tmp-*"):
            if _modified(path) < cutoff:
                path.unlink(missing_ok=True)
                removed += 1
        folders = {p.name: p for p in self.index_root.iterdir() if p.is_dir()}
        live = self.db.read_sync(lambda s: existing_collections(s, set(folders)))
        for name, folder in folders.items():
            if name not in live and _modified(folder) < cutoff:
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        return removed

    def _scratch_leftovers(self, cutoff: dt.datetime) -> int:
        """Folders of dead processes (whatever their age: a dead owner is certain), and old
        loose files (before per-process folders, temporary files lay in `tmp/` itself)."""
        if self.scratch_root is None:
            return 0
        removed = sweep_dead_folders(self.scratch_root)
        for path in _files(self.scratch_root):
            if not path.name.endswith(".lock") and _modified(path) < cutoff:
                path.unlink(missing_ok=True)
                removed += 1
        return removed


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []


def _modified(path: Path) -> dt.datetime:
    try:
        return dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
    except FileNotFoundError:
        return dt.datetime.max.replace(tzinfo=dt.UTC)  # gone already: nothing to do
