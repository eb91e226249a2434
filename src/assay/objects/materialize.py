"""Turns validated blob inputs into checked, content-addressed bytes (outside any transaction).

Inline text and JSON are checked in memory; everything else lands in a temporary file first
(fetched through the SSRF guard, or decoded from base64) and is checked against its type.
Small blobs are then carried to the transaction, which stores them in the database with their
rows; larger ones are moved into the blob store through the request's `BlobClaims`.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import anyio.to_thread

from assay.backends.blob.base import BlobNotFound
from assay.errors import ValidationFailed
from assay.kit.fetch import FetchError, FetchPolicy, fetch_to_file
from assay.kit.ids import new_id
from assay.kit.limits import MediaLimits
from assay.kit.scratch import process_folder
from assay.objects import media
from assay.objects.schemas import ObjectCreate
from assay.objects.sources import (
    InlineBytes,
    LocalFile,
    RemoteUrl,
    ScalarValue,
    Source,
    UploadRef,
    source_of,
)
from assay.objects.storage import BlobClaims, storage_key
from assay.objects.validation import Loc, check_against_schema, check_scalar

# Text and JSON up to this size are checked on the event loop; larger work goes to a thread.
INLINE_FAST_PATH = 64 * 1024


@dataclass(frozen=True)
class StoredBlob:
    property: str
    type: str
    sha256: str
    size_bytes: int
    content_type: str
    storage_key: str
    filename: str | None
    source_url: str | None
    key_prefix: str | None
    metadata: dict[str, Any]
    data: bytes | None = None  # the bytes of a small blob, stored with its rows


@dataclass
class PreparedObject:
    key_prefix: str | None
    metadata: dict[str, Any]
    properties: dict[str, Any] = field(default_factory=dict)
    blobs: list[StoredBlob] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def storage_keys(self) -> set[str]:
        return {b.storage_key for b in self.blobs}


@dataclass(frozen=True)
class _Checked:
    sha256: str
    size_bytes: int
    content_type: str
    filename: str | None
    data: bytes | None = None


S3Download = Callable[[str, Path, int], "str | None"]  # (s3 url, dest, max bytes) → content type


@dataclass(frozen=True)
class Materializer:
    policy: FetchPolicy
    tmp_dir: Path
    small_max_bytes: int = 64 * 1024
    s3_download: S3Download | None = None  # present when the blob store is S3
    limits: MediaLimits = field(default_factory=MediaLimits)

    @property
    def scratch(self) -> Path:
        """Where files wait before they are stored: this process's folder under `tmp_dir`,
        which a sweep removes if the process dies (`kit/scratch.py`)."""
        return process_folder(self.tmp_dir)

    async def prepare(
        self,
        claims: BlobClaims,
        schema: dict[str, Any],
        body: ObjectCreate,
        loc: Loc = (),
        files: Mapping[str, LocalFile] | None = None,
    ) -> PreparedObject:
        """Check `body` against `schema`, then fetch, check and store each blob.

        `files` holds the bytes of direct uploads that `upload_id` blobs refer to; an object
        made from one upload carries that one blob, so the other required properties are not
        asked of it (as with the hosted product's uploads).
        """
        check_against_schema(schema, body, loc, partial=bool(files))
        props = schema.get("properties", {})
        out = PreparedObject(body.key_prefix, body.metadata, warnings=body.all_warnings())
        for i, blob in enumerate(body.blobs):
            where = (*loc, "blobs", i)
            source = source_of(blob, where)
            if isinstance(source, ScalarValue):
                spec = props[blob.property]
                out.properties[blob.property] = check_scalar(spec, source.value, where)
                continue
            if isinstance(source, UploadRef) and files and source.upload_id in files:
                source = files[source.upload_id]
            checked = await self._store(claims, blob.type, source, where)
            out.blobs.append(
                StoredBlob(
                    property=blob.property,
                    type=blob.type,
                    sha256=checked.sha256,
                    size_bytes=checked.size_bytes,
                    content_type=checked.content_type,
                    storage_key=storage_key(
                        claims.namespace_id, checked.sha256, in_database=checked.data is not None
                    ),
                    filename=checked.filename,
                    source_url=source.url if isinstance(source, RemoteUrl) else None,
                    key_prefix=blob.key_prefix,
                    metadata=blob.metadata or {},
                    data=checked.data,
                )
            )
        return out

    async def _store(
        self, claims: BlobClaims, blob_type: str, source: Source, where: Loc
    ) -> _Checked:
        if isinstance(source, UploadRef):
            msg = "an upload becomes an object through POST .../uploads/{upload_id}/confirm"
            raise ValidationFailed.at((*where, "upload_id"), msg, "not_supported")
        known_sha = None
        if isinstance(source, LocalFile):
            path, declared, filename = source.path, source.content_type, source.filename
            known_sha = source.sha256
        elif isinstance(source, InlineBytes):
            if blob_type in ("text", "json") and len(source.data) <= INLINE_FAST_PATH:
                return await self._store_small(claims, blob_type, source, where)
            path = await anyio.to_thread.run_sync(self._spill, source.data)
            declared, filename = source.content_type, source.filename
        else:
            assert isinstance(source, RemoteUrl)
            path, declared = await self._fetch(source, where)
            filename = source.filename or _name_of(source.url)
        try:
            checked = await anyio.to_thread.run_sync(
                _check_file,
                blob_type,
                path,
                declared,
                filename,
                where,
                self.small_max_bytes,
                known_sha,
                self.limits,
            )
            if checked.data is None:
                await claims.put_file(path, storage_key(claims.namespace_id, checked.sha256))
            return checked
        finally:
            path.unlink(missing_ok=True)

    async def _store_small(
        self, claims: BlobClaims, blob_type: str, source: InlineBytes, where: Loc
    ) -> _Checked:
        try:
            content_type = media.check_bytes(blob_type, source.data)
        except media.MediaError as exc:
            raise ValidationFailed.at(where, str(exc), "invalid_content") from exc
        sha = hashlib.sha256(source.data).hexdigest()
        if len(source.data) > self.small_max_bytes:
            await claims.put_bytes(source.data, storage_key(claims.namespace_id, sha))
            return _Checked(sha, len(source.data), content_type, source.filename)
        return _Checked(sha, len(source.data), content_type, source.filename, source.data)

    async def _fetch(self, source: RemoteUrl, where: Loc) -> tuple[Path, str | None]:
        at = (*where, source.field)
        if source.url.lower().startswith("s3://"):
            return await self._fetch_s3(source.url, at)
        try:
            fetched = await fetch_to_file(source.url, self.scratch, self.policy)
        except FetchError as exc:
            msg = f"could not fetch: {exc.message}"
            raise ValidationFailed.at(at, msg, "fetch_failed") from exc
        return fetched.path, fetched.content_type

    async def _fetch_s3(self, url: str, at: Loc) -> tuple[Path, str | None]:
        if self.s3_download is None:
            msg = "s3:// URLs need the S3 blob store, which is not configured"
            raise ValidationFailed.at(at, msg, "not_supported")
        dest = self.scratch / f"s3-{new_id('tmp')}"
        try:
            content_type = await anyio.to_thread.run_sync(
                self.s3_download, url, dest, self.policy.max_bytes
            )
        except BlobNotFound as exc:
            raise ValidationFailed.at(
                at, f"could not fetch: {url} does not exist", "fetch_failed"
            ) from exc
        except OSError as exc:
            raise ValidationFailed.at(at, f"could not fetch: {exc}", "fetch_failed") from exc
        return dest, content_type

    def _spill(self, data: bytes) -> Path:
        with tempfile.NamedTemporaryFile(dir=self.scratch, delete=False) as fh:
            try:
                fh.write(data)
            except BaseException:  # e.g. a full disk: no partial file stays behind
                Path(fh.name).unlink(missing_ok=True)
                raise
        return Path(fh.name)


def _check_file(
    blob_type: str,
    path: Path,
    declared: str | None,
    filename: str | None,
    where: Loc,
    small_max_bytes: int,
    known_sha: str | None = None,
    limits: MediaLimits | None = None,
) -> _Checked:
    try:
        content_type = media.check(blob_type, path, declared, filename, limits)
    except media.MediaError as exc:
        raise ValidationFailed.at(where, str(exc), "invalid_content") from exc
    if path.stat().st_size <= small_max_bytes:
        data = path.read_bytes()
        return _Checked(hashlib.sha256(data).hexdigest(), len(data), content_type, filename, data)
    if known_sha is not None:
        return _Checked(known_sha, path.stat().st_size, content_type, filename)
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return _Checked(digest.hexdigest(), size, content_type, filename)


def _name_of(url: str) -> str | None:
    name = PurePosixPath(urlsplit(url).path).name
    return name or None
