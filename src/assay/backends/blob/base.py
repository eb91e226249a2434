"""The blob store contract. Keys are opaque strings chosen by callers (content-addressed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable


class BlobNotFound(LookupError):
    """No blob under that key."""


class UploadRejected(OSError):
    """The store refused to assemble a direct upload (missing, too small or misordered parts)."""


class BlobStore(Protocol):
    """Stores immutable byte strings by key.

    `put_file` moves a finished temporary file into the store (atomically where the store
    allows); writing a key that already exists is a no-op, since keys are content hashes.
    Both `put_*` return whether they created the key.
    `read_range` streams bytes `[start, end]` inclusive; `end=None` means to the last byte.
    Failures other than a missing key surface as `OSError` (never a client library's own
    exception type), so callers need no knowledge of the backend.
    """

    def put_file(self, src: Path, key: str) -> bool: ...

    def put_bytes(self, data: bytes, key: str) -> bool: ...

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int: ...

    def read_range(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]: ...

    def delete(self, key: str) -> None: ...

    def delete_prefix(self, prefix: str) -> None: ...

    def local_path(self, key: str) -> Path | None:
        """The file on this machine holding a key's bytes, if the store keeps them in one
        (BlobNotFound when it would but the key is missing); None for remote stores."""
        ...

    def check(self) -> None:
        """Raise if the store cannot be reached (used by /readyz)."""
        ...


@runtime_checkable
class PresigningStore(Protocol):
    """A store that lets clients send bytes to it directly, bypassing Assay (S3 does).

    Optional next to `BlobStore`: test with `isinstance(store, PresigningStore)` and fall back
    to Assay's own signed upload URLs otherwise. URLs are plain HTTP `PUT` targets valid for
    `expires_s` seconds; a `content_length` given to `presigned_put_url` is signed, so the
    store refuses a body of any other size. A multipart upload is `create_multipart`, one
    `PUT` per part to `presigned_part_url` (parts numbered from 1, each but the last at least
    5 MiB, re-sendable), then `complete_multipart` with each part's number and the `ETag`
    header its `PUT` returned, or `abort_multipart` to discard the parts. Completing an unknown
    upload raises `BlobNotFound`; bad parts raise `UploadRejected`; aborting is idempotent.
    The assembled object lands under `key` like any other blob.
    """

    def presigned_put_url(
        self, key: str, expires_s: int, content_length: int | None = None
    ) -> str: ...

    def create_multipart(self, key: str) -> str: ...

    def presigned_part_url(
        self, key: str, upload_id: str, part_number: int, expires_s: int
    ) -> str: ...

    def complete_multipart(
        self, key: str, upload_id: str, parts: list[tuple[int, str]]
    ) -> None: ...

    def uploaded_parts(self, key: str, upload_id: str) -> list[tuple[int, str]]: ...

    def abort_multipart(self, key: str, upload_id: str) -> None: ...
