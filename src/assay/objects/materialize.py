"""Turns validated blob inputs into stored, content-addressed bytes (outside any transaction).

Inline text and JSON are checked in memory; everything else lands in a temporary file first
(fetched through the SSRF guard, or decoded from base64), is checked against its type, and is
then moved into the blob store under `{namespace_id}/{sha[:2]}/{sha}`.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio.to_thread

from assay.backends.blob.base import BlobStore
from assay.errors import ValidationFailed
from assay.kit.fetch import FetchError, FetchPolicy, fetch_to_file
from assay.objects import media
from assay.objects.schemas import ObjectCreate
from assay.objects.sources import InlineBytes, RemoteUrl, ScalarValue, UploadRef, source_of
from assay.objects.validation import Loc, check_against_schema, check_scalar

# Inline content up to this size is checked on the event loop; larger work goes to a thread.
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


@dataclass
class PreparedObject:
    key_prefix: str | None
    metadata: dict[str, Any]
    properties: dict[str, Any] = field(default_factory=dict)
    blobs: list[StoredBlob] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Materializer:
    blobs: BlobStore
    policy: FetchPolicy
    tmp_dir: Path

    async def prepare(
        self, namespace_id: str, schema: dict[str, Any], body: ObjectCreate, loc: Loc = ()
    ) -> PreparedObject:
        """Check `body` against `schema`, then fetch, check and store each blob."""
        check_against_schema(schema, body, loc)
        props = schema.get("properties", {})
        out = PreparedObject(body.key_prefix, body.metadata, warnings=body.all_warnings())
        for i, blob in enumerate(body.blobs):
            where = (*loc, "blobs", i)
            source = source_of(blob, where)
            if isinstance(source, ScalarValue):
                out.properties[blob.property] = check_scalar(
                    props[blob.property], source.value, where
                )
                continue
            stored = await self._store(namespace_id, blob.type, source, where)
            out.blobs.append(
                StoredBlob(
                    property=blob.property,
                    type=blob.type,
                    source_url=source.url if isinstance(source, RemoteUrl) else None,
                    key_prefix=blob.key_prefix,
                    metadata=blob.metadata or {},
                    **stored,
                )
            )
        return out

    async def _store(
        self, namespace_id: str, blob_type: str, source: object, where: Loc
    ) -> dict[str, Any]:
        if isinstance(source, UploadRef):
            msg = "direct uploads are not available yet: register the blob by url or content"
            raise ValidationFailed.at((*where, "upload_id"), msg, "not_supported")
        if isinstance(source, InlineBytes):
            if blob_type in ("text", "json") and len(source.data) <= INLINE_FAST_PATH:
                return self._store_small(namespace_id, blob_type, source, where)
            path = await anyio.to_thread.run_sync(self._spill, source.data)
            declared, filename, url = source.content_type, source.filename, None
        else:
            assert isinstance(source, RemoteUrl)
            path, declared, filename, url = await self._fetch(source, where)
        try:
            return await anyio.to_thread.run_sync(
                self._check_and_put,
                namespace_id,
                blob_type,
                path,
                declared,
                filename or _name_of(url),
                where,
            )
        finally:
            path.unlink(missing_ok=True)

    def _store_small(
        self, namespace_id: str, blob_type: str, source: InlineBytes, where: Loc
    ) -> dict[str, Any]:
        try:
            content_type = media.check_bytes(blob_type, source.data)
        except media.MediaError as exc:
            raise ValidationFailed.at(where, str(exc), "invalid_content") from exc
        sha = hashlib.sha256(source.data).hexdigest()
        key = storage_key(namespace_id, sha)
        self.blobs.put_bytes(source.data, key)
        return _stored(sha, len(source.data), content_type, key, source.filename)

    async def _fetch(
        self, source: RemoteUrl, where: Loc
    ) -> tuple[Path, str | None, str | None, str]:
        if source.url.lower().startswith("s3://"):
            msg = "s3:// URLs need the S3 blob store, which is not configured"
            raise ValidationFailed.at((*where, "url"), msg, "not_supported")
        try:
            fetched = await fetch_to_file(source.url, self.tmp_dir, self.policy)
        except FetchError as exc:
            raise ValidationFailed.at(
                (*where, "url"), f"could not fetch: {exc.message}", "fetch_failed"
            ) from exc
        return fetched.path, fetched.content_type, source.filename, fetched.final_url

    def _spill(self, data: bytes) -> Path:
        with tempfile.NamedTemporaryFile(dir=self.tmp_dir, delete=False) as fh:
            fh.write(data)
        return Path(fh.name)

    def _check_and_put(
        self,
        namespace_id: str,
        blob_type: str,
        path: Path,
        declared: str | None,
        filename: str | None,
        where: Loc,
    ) -> dict[str, Any]:
        try:
            content_type = media.check(blob_type, path, declared, filename)
        except media.MediaError as exc:
            raise ValidationFailed.at(where, str(exc), "invalid_content") from exc
        sha, size = _hash_file(path)
        key = storage_key(namespace_id, sha)
        self.blobs.put_file(path, key)
        return _stored(sha, size, content_type, key, filename)


def storage_key(namespace_id: str, sha256: str) -> str:
    """Content address of a blob inside its namespace."""
    return f"{namespace_id}/{sha256[:2]}/{sha256}"


def _stored(
    sha: str, size: int, content_type: str, key: str, filename: str | None
) -> dict[str, Any]:
    return {
        "sha256": sha,
        "size_bytes": size,
        "content_type": content_type,
        "storage_key": key,
        "filename": filename,
    }


def _hash_file(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _name_of(url: str | None) -> str | None:
    if not url:
        return None
    name = url.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
    return name or None
