"""Content-addressed blob bytes shared by many objects, written and removed without races.

Bytes are stored once per namespace under their SHA-256. A request that writes a key claims it
for use until its rows are committed (or it gave up); removal claims the key only when no row
points at it and nobody uses it, and a use waits for a removal under way. The claims are rows
in the database (`objects/claims.py`), so the promise holds between processes too: a delete
can never remove bytes that a concurrent registration of the same content, in this process or
another, is about to reference, and bytes written for a registration that failed are removed
again unless another object uses them. A per-key lock in the process keeps its own requests
from contending for the same claim rows.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import anyio.to_thread

from assay.backends.blob.base import BlobNotFound, BlobStore
from assay.kit.db import Database
from assay.kit.keylocks import KeyLocks
from assay.objects import claims
from assay.objects.repository import small_bytes

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
                await self.remove_if_unused(namespace_id, key)

    async def remove_if_unused(
        self, namespace_id: str, key: str, own_use: str | None = None
    ) -> None:
        """Delete the bytes if no row references them and no one (but `own_use`) uses them."""
        removal = await self.db.write(
            lambda s: claims.claim_removal(s, namespace_id, key, own_use), bookkeeping=True
        )
        if removal is None:
            return
        try:
            await anyio.to_thread.run_sync(self.blobs.delete, key)
        finally:
            await self.db.write(lambda s: claims.release(s, [removal]), bookkeeping=True)

    async def claim_use(self, key: str) -> str:
        """A use claim on `key`, once no removal of it is under way."""
        delay = 0.005
        while (
            claim := await self.db.write(lambda s: claims.claim_use(s, key), bookkeeping=True)
        ) is None:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.25)
        return claim

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
        self.held: dict[str, str] = {}  # key → its use claim

    async def _hold(self, key: str) -> None:
        if key in self.held:
            return
        await self.keeper.locks.acquire(key)
        try:
            self.held[key] = await self.keeper.claim_use(key)
        except BaseException:
            self.keeper.locks.release(key)
            raise

    async def put_bytes(self, data: bytes, key: str) -> None:
        await self._hold(key)
        self.keeper.blobs.put_bytes(data, key)

    async def put_file(self, path: Path, key: str) -> None:
        await self._hold(key)
        await anyio.to_thread.run_sync(self.keeper.blobs.put_file, path, key)

    async def release(self, committed: Iterable[str] = ()) -> None:
        """Give up the claims; bytes held but not `committed` go if nothing else has them."""
        uses = dict(self.held)
        try:
            # Bytes held but not committed are removed unless a row or someone else has them,
            # even ones this request found already there: another process's failed
            # registration may have left them, counting on this one.
            for key in sorted(set(uses) - set(committed)):
                await self.keeper.remove_if_unused(self.namespace_id, key, uses.pop(key))
            if uses:
                await self.keeper.db.write(
                    lambda s: claims.release(s, list(uses.values())), bookkeeping=True
                )
        finally:
            for key in self.held:
                self.keeper.locks.release(key)
            self.held.clear()
