"""Content-addressed blob bytes shared by many objects, written and removed without races.

Bytes are stored once per namespace under their SHA-256. A request that writes a key holds its
lock until its rows are committed (or it gave up), and removal re-checks, under the same lock,
that no row points at the key any more. So a delete can never remove bytes that a concurrent
registration of the same content is about to reference, and bytes written for a registration
that failed are removed again unless another object uses them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import anyio.to_thread

from assay.backends.blob.base import BlobNotFound, BlobStore
from assay.kit.db import Database
from assay.kit.keylocks import KeyLocks
from assay.objects.repository import small_bytes, unreferenced_keys

IN_DATABASE = "db:"


def storage_key(namespace_id: str, sha256: str, *, in_database: bool = False) -> str:
    """Content address of a blob inside its namespace (`db:` for bytes kept in the database)."""
    if in_database:
        return f"{IN_DATABASE}{namespace_id}/{sha256}"
    return f"{namespace_id}/{sha256[:2]}/{sha256}"


def in_database(key: str) -> bool:
    return key.startswith(IN_DATABASE)


def derived_key(namespace_id: str, sha256: str) -> str:
    """Where bytes made by extraction (video thumbnails) live: beside blobs, never shared with
    them, so removing an object's unreferenced blob bytes can never remove a thumbnail."""
    return f"{namespace_id}/derived/{sha256[:2]}/{sha256}"


class BlobKeeper:
    """The process's blob store plus the locks that guard its shared keys."""

    def __init__(self, blobs: BlobStore, db: Database) -> None:
        self.blobs = blobs
        self.db = db
        self.locks = KeyLocks()

    def claims(self, namespace_id: str) -> BlobClaims:
        return BlobClaims(self, namespace_id)

    async def remove_unreferenced(self, namespace_id: str, keys: Iterable[str]) -> None:
        """Delete the bytes of keys no blob row references (checked again under each lock).

        Bytes kept in the database are removed by the deleting transaction itself.
        """
        for key in sorted(k for k in set(keys) if not in_database(k)):
            async with self.locks.hold(key):
                gone = await self.db.read(lambda s, k=key: unreferenced_keys(s, namespace_id, {k}))
                if gone:
                    await anyio.to_thread.run_sync(self.blobs.delete, key)

    def put_derived(self, namespace_id: str, data: bytes) -> str:
        """Store extraction output bytes under their content address; returns the SHA-256.

        Synchronous, for extraction threads. No lock: nothing removes these keys but a
        namespace's deletion, and writing an existing key is a no-op. Deleting the document or
        object that pointed at them leaves them behind (a later identical thumbnail reuses them).
        """
        sha256 = hashlib.sha256(data).hexdigest()
        self.blobs.put_bytes(data, derived_key(namespace_id, sha256))
        return sha256

    def local_file(self, key: str, folder: Callable[[], Path]) -> Path:
        """A file on this machine holding a stored blob's bytes: the store's own file when it
        keeps one, else a copy streamed into `folder()` (the caller removes it). Synchronous,
        for extraction threads; BlobNotFound when the bytes are gone."""
        path = self.blobs.local_path(key)
        if path is not None:
            return path
        copy = folder() / hashlib.sha256(key.encode()).hexdigest()
        with copy.open("wb") as out:
            for piece in self.blobs.read_range(key, 0, None):
                out.write(piece)
        return copy

    async def read_range(
        self, namespace_id: str, key: str, start: int, end: int | None
    ) -> Iterator[bytes]:
        """Bytes `[start, end]` of a blob, wherever they are kept."""
        if not in_database(key):
            return self.blobs.read_range(key, start, end)
        data = await self.db.read(lambda s: small_bytes(s, namespace_id, key))
        if data is None:
            raise BlobNotFound(key)
        return iter([data[start : None if end is None else end + 1]])


class BlobClaims:
    """The keys one request writes; hold them until its rows are committed, then `release`."""

    def __init__(self, keeper: BlobKeeper, namespace_id: str) -> None:
        self.keeper = keeper
        self.namespace_id = namespace_id
        self.held: set[str] = set()
        self.created: set[str] = set()

    async def _hold(self, key: str) -> None:
        if key not in self.held:
            await self.keeper.locks.acquire(key)
            self.held.add(key)

    async def put_bytes(self, data: bytes, key: str) -> None:
        await self._hold(key)
        if self.keeper.blobs.put_bytes(data, key):
            self.created.add(key)

    async def put_file(self, path: Path, key: str) -> None:
        await self._hold(key)
        if await anyio.to_thread.run_sync(self.keeper.blobs.put_file, path, key):
            self.created.add(key)

    async def release(self, committed: Iterable[str] = ()) -> None:
        """Drop bytes this request created that no committed row uses, then unlock."""
        try:
            doubtful = self.created - set(committed)
            if doubtful:
                gone = await self.keeper.db.read(
                    lambda s: unreferenced_keys(s, self.namespace_id, doubtful)
                )
                for key in gone:
                    await anyio.to_thread.run_sync(self.keeper.blobs.delete, key)
        finally:
            for key in self.held:
                self.keeper.locks.release(key)
            self.held.clear()
