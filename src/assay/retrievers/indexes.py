"""Vector indexes per (collection, feature URI), kept in step with `document_vectors`.

The table is the truth and an index is a cache of it. The documents layer appends every
insert and delete of a vector to `vector_log`, in the transaction that makes it; an index
remembers the last `seq` it applied (its watermark, saved with it) and replays the log past it
before each search. So extraction in another process, a delete of an object, or a crash
between a commit and a save never leave an index that disagrees with the table: the next
search catches up. An index that
cannot be read, or whose size disagrees with the table after catching up, is rebuilt.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from sqlalchemy import Engine, bindparam, func, select
from sqlalchemy.orm import Session

from assay.backends.vector.adaptive import AdaptiveIndex, load_index
from assay.backends.vector.base import VectorIndex, VectorIndexError
from assay.documents.vectors import unpack_vector
from assay.kit import bulk
from assay.kit.db import table_of
from assay.models import DocumentVector, VectorLogEntry
from assay.retrievers.candidates import Candidates
from assay.retrievers.inline import RunInThread

log = logging.getLogger(__name__)

_REBUILD_CHUNK = 20_000
# An inline search replays at most this many vector-log changes on the event loop (a graph
# insert at 1M vectors costs ~1 ms); more, and the search goes to a thread.
_INLINE_CHANGES = 16
_SAVE_EVERY_CHANGES = 5_000  # save after this many applied changes...
_SAVE_EVERY_S = 60.0  # ...or this long after the first unsaved one


_LOG = table_of(VectorLogEntry)
# Every search asks this first (has the index's collection feature changed since it was
# read?); built once (building the select took ~70 us a search), of table columns (the ORM
# step took a third of the time).
_CHANGES_SINCE = (
    select(_LOG.c.seq, _LOG.c.doc_key, _LOG.c.op)
    .where(
        _LOG.c.collection_id == bindparam("collection"),
        _LOG.c.feature_uri == bindparam("feature"),
        _LOG.c.seq > bindparam("after"),
    )
    .order_by(_LOG.c.seq)
)


class FeatureIndex(Protocol):
    """Nearest-neighbour search over one backend's copy of `document_vectors`."""

    def search(
        self,
        session: Session,
        collection_id: str,
        feature_uri: str,
        query: np.ndarray,
        k: int,
        allowed: Candidates | None = None,
        *,
        inline: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """`inline` (on the event loop): raise `RunInThread` rather than start work that may
        take long."""
        ...

    def size(self, session: Session, collection_id: str, feature_uri: str) -> int: ...

    def keys(self, session: Session, collection_id: str, feature_uri: str) -> np.ndarray: ...

    def check(self) -> None: ...

    def drop(self, collection_ids: list[str]) -> None: ...

    def save_all(self) -> None: ...

    def open_sizes(self) -> dict[tuple[str, str], int]:
        """Vectors per (collection, feature URI) index this process holds open (metrics)."""
        ...


def make_feature_index(
    kind: str, database_url: str, engine: Engine, root: Path, exact_limit: int
) -> FeatureIndex:
    """The configured index: pgvector inside PostgreSQL, or file caches under `root`."""
    if kind == "auto":
        kind = "file" if database_url.startswith("sqlite") else "pgvector"
    if kind == "pgvector":
        if database_url.startswith("sqlite"):
            raise ValueError("vector_index = pgvector needs a PostgreSQL database_url")
        from assay.backends.vector.pgvector import PgVectorIndexes

        # Not the file index's exact limit: pgvector's exact path reads a heap row per key, so
        # its own limit is ten times lower (see PgVectorIndexes).
        return PgVectorIndexes(engine)
    return FeatureIndexes(root, exact_limit=exact_limit)


@dataclass
class _Entry:
    index: VectorIndex | None  # None until the first vector arrives (dimensions unknown)
    seq: int  # the last vector_log seq applied
    lock: threading.Lock = field(default_factory=threading.Lock)
    unsaved: int = 0
    dirty_since: float = 0.0


class FeatureIndexes:
    """Every vector index of this process, opened on first use."""

    def __init__(self, root: Path, *, exact_limit: int = 20_000) -> None:
        self.root = root
        self.exact_limit = exact_limit
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._open_lock = threading.Lock()

    def search(
        self,
        session: Session,
        collection_id: str,
        feature_uri: str,
        query: np.ndarray,
        k: int,
        allowed: Candidates | None = None,
        *,
        inline: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Doc keys and cosine similarities of the `k` nearest vectors, best first. `inline`:
        `RunInThread` rather than open the index, wait for another search of it, or replay
        more than a few changes."""
        keys = None if allowed is None else allowed.keys()
        if inline:
            entry = self._entries.get((collection_id, feature_uri))
            if entry is None or not entry.lock.acquire(blocking=False):
                raise RunInThread
        else:
            entry = self._entry(session, collection_id, feature_uri)
            entry.lock.acquire()
        try:
            limit = _INLINE_CHANGES if inline else None
            self._catch_up(session, collection_id, feature_uri, entry, limit)
            if entry.index is None or len(entry.index) == 0:
                return np.empty(0, np.uint64), np.empty(0, np.float32)
            if query.shape[-1] != entry.index.dimensions:
                raise VectorIndexError(
                    f"{feature_uri} holds {entry.index.dimensions}-d vectors; "
                    f"the query has {query.shape[-1]}"
                )
            return entry.index.search(query, k, keys)
        finally:
            entry.lock.release()

    def size(self, session: Session, collection_id: str, feature_uri: str) -> int:
        """How many vectors the index holds once it has caught up."""
        return len(self.keys(session, collection_id, feature_uri))

    def keys(self, session: Session, collection_id: str, feature_uri: str) -> np.ndarray:
        """Every key the index holds once it has caught up (checks and tests)."""
        entry = self._entry(session, collection_id, feature_uri)
        with entry.lock:
            self._catch_up(session, collection_id, feature_uri, entry)
            return np.empty(0, np.uint64) if entry.index is None else entry.index.keys()

    def check(self) -> None:
        """Raise unless the index folder can be written (readiness)."""
        self.root.mkdir(parents=True, exist_ok=True)
        probe = self.root / ".ready"
        probe.write_bytes(b"")
        probe.unlink()

    def drop(self, collection_ids: list[str]) -> None:
        """Forget the indexes of deleted collections and remove their files."""
        gone = set(collection_ids)
        for key in [k for k in self._entries if k[0] in gone]:
            self._entries.pop(key, None)
        for collection_id in gone:
            shutil.rmtree(self.root / collection_id, ignore_errors=True)

    def open_sizes(self) -> dict[tuple[str, str], int]:
        return {
            key: len(entry.index)
            for key, entry in list(self._entries.items())
            if entry.index is not None
        }

    def save_all(self) -> None:
        """Write every index with unsaved changes (at shutdown)."""
        for (collection_id, feature_uri), entry in list(self._entries.items()):
            with entry.lock:
                if entry.unsaved:
                    self._save(collection_id, feature_uri, entry)

    def path(self, collection_id: str, feature_uri: str) -> Path:
        digest = hashlib.sha256(feature_uri.encode()).hexdigest()[:16]
        return self.root / collection_id / f"{digest}.index"

    # -- opening, replaying, rebuilding --------------------------------------------------

    def _entry(self, session: Session, collection_id: str, feature_uri: str) -> _Entry:
        key = (collection_id, feature_uri)
        entry = self._entries.get(key)
        if entry is not None:
            return entry
        with self._open_lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._open(session, collection_id, feature_uri)
                self._entries[key] = entry
            return entry

    def _open(self, session: Session, collection_id: str, feature_uri: str) -> _Entry:
        path = self.path(collection_id, feature_uri)
        if path.exists() or path.with_name(path.name + ".meta.json").exists():
            try:
                index, meta = load_index(path)
                entry = _Entry(index, int(meta["seq"]))
                self._catch_up(session, collection_id, feature_uri, entry)
                if len(index) == self._count(session, collection_id, feature_uri):
                    return entry
                log.warning("index %s disagrees with the database; rebuilding", path)
            except (VectorIndexError, KeyError, ValueError) as exc:
                log.warning("index %s unreadable (%s); rebuilding", path, exc)
        return self._rebuild(session, collection_id, feature_uri)

    def _rebuild(self, session: Session, collection_id: str, feature_uri: str) -> _Entry:
        # One read transaction: the vectors and the watermark come from the same snapshot.
        seq = self._last_seq(session, collection_id, feature_uri)
        entry = _Entry(None, seq)
        stmt = (
            select(DocumentVector.doc_key, DocumentVector.vector)
            .where(
                DocumentVector.collection_id == collection_id,
                DocumentVector.feature_uri == feature_uri,
            )
            .execution_options(yield_per=_REBUILD_CHUNK)
        )
        for rows in session.execute(stmt).partitions():
            self._add(entry, [r[0] for r in rows], [r[1] for r in rows])
        if entry.index is not None:
            self._save(collection_id, feature_uri, entry)
        return entry

    def _catch_up(
        self,
        session: Session,
        collection_id: str,
        feature_uri: str,
        entry: _Entry,
        limit: int | None = None,
    ) -> None:
        """Apply the vector log past the entry's watermark (`RunInThread` if it holds more
        than `limit` changes)."""
        where = {"collection": collection_id, "feature": feature_uri, "after": entry.seq}
        changes = bulk.rows(session, _CHANGES_SINCE, where)
        if not changes:
            return
        if limit is not None and len(changes) > limit:
            raise RunInThread
        # Keys are never reused (a re-extracted document gets a new id), so the net effect
        # is: what was removed goes, what was added and not removed since comes in.
        removed = {key for _, key, op in changes if op == "-"}
        added = [key for _, key, op in changes if op == "+" and key not in removed]
        if removed and entry.index is not None:
            entry.index.remove(np.fromiter(removed, np.uint64, len(removed)))
        for start in range(0, len(added), _REBUILD_CHUNK):
            chunk = added[start : start + _REBUILD_CHUNK]
            keys, blobs = self._vectors(session, collection_id, feature_uri, chunk)
            self._add(entry, keys, blobs)
        entry.seq = changes[-1][0]
        entry.unsaved += len(changes)
        entry.dirty_since = entry.dirty_since or time.monotonic()
        if (
            entry.unsaved >= _SAVE_EVERY_CHANGES
            or time.monotonic() - entry.dirty_since >= _SAVE_EVERY_S
        ):
            self._save(collection_id, feature_uri, entry)

    def _vectors(
        self, session: Session, collection_id: str, feature_uri: str, keys: list[int]
    ) -> tuple[list[int], list[bytes]]:
        # By key only (the unique key index): naming the collection too would make SQLite
        # walk all of the collection's vectors instead.
        stmt = select(
            DocumentVector.doc_key, DocumentVector.vector, DocumentVector.collection_id
        ).where(DocumentVector.doc_key.in_(keys), DocumentVector.feature_uri == feature_uri)
        rows = [r for r in session.execute(stmt) if r[2] == collection_id]
        return [r[0] for r in rows], [r[1] for r in rows]

    def _add(self, entry: _Entry, keys: list[int], blobs: list[bytes]) -> None:
        if not keys:
            return
        vectors = np.stack([unpack_vector(b) for b in blobs])
        if entry.index is None:
            entry.index = AdaptiveIndex(vectors.shape[1], exact_limit=self.exact_limit)
        entry.index.add(np.asarray(keys, dtype=np.uint64), vectors)

    def _save(self, collection_id: str, feature_uri: str, entry: _Entry) -> None:
        if entry.index is None:
            return
        path = self.path(collection_id, feature_uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        entry.index.save(path, {"seq": entry.seq, "feature_uri": feature_uri})
        entry.unsaved, entry.dirty_since = 0, 0.0

    @staticmethod
    def _count(session: Session, collection_id: str, feature_uri: str) -> int:
        stmt = select(func.count()).where(
            DocumentVector.collection_id == collection_id,
            DocumentVector.feature_uri == feature_uri,
        )
        return int(session.scalar(stmt) or 0)

    @staticmethod
    def _last_seq(session: Session, collection_id: str, feature_uri: str) -> int:
        stmt = select(func.max(VectorLogEntry.seq)).where(
            VectorLogEntry.collection_id == collection_id,
            VectorLogEntry.feature_uri == feature_uri,
        )
        return int(session.scalar(stmt) or 0)
