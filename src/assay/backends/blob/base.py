"""The blob store contract. Keys are opaque strings chosen by callers (content-addressed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol


class BlobNotFound(LookupError):
    """No blob under that key."""


class BlobStore(Protocol):
    """Stores immutable byte strings by key.

    `put_file` moves a finished temporary file into the store (atomically where the store
    allows); writing a key that already exists is a no-op, since keys are content hashes.
    Both `put_*` return whether they created the key.
    `read_range` streams bytes `[start, end]` inclusive; `end=None` means to the last byte.
    """

    def put_file(self, src: Path, key: str) -> bool: ...

    def put_bytes(self, data: bytes, key: str) -> bool: ...

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int: ...

    def read_range(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]: ...

    def delete(self, key: str) -> None: ...

    def delete_prefix(self, prefix: str) -> None: ...

    def check(self) -> None:
        """Raise if the store cannot be reached (used by /readyz)."""
        ...
