"""Direct uploads end to end: signed URLs, streaming the bytes to disk, confirming them.

The body of a PUT is written to a temporary file while it is hashed, never held in memory;
a body larger than declared is refused (413) and whatever arrived is removed, as it is when
the client goes away midway. Confirmation checks size and SHA-256, then hands the file to the
object registration pipeline (type checks, content addressing) as a `LocalFile`.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import anyio
import anyio.to_thread

from assay.backends.blob.base import PresigningStore
from assay.errors import Conflict, Forbidden, PayloadTooLarge, ValidationFailed
from assay.kit import signing
from assay.kit.db import Database
from assay.models import Upload
from assay.objects.registration import Registrar
from assay.objects.schemas import BlobIn, ObjectCreate
from assay.objects.service import BucketRef
from assay.objects.sources import LocalFile
from assay.uploads import service
from assay.uploads.schemas import ConfirmOut, PartUrl, UploadOut

CHUNK = 1 << 20
BLOCK = 4 << 20


@dataclass(frozen=True)
class UploadDesk:
    db: Database
    registrar: Registrar
    signing_key: bytes
    folder: Path
    max_bytes: int
    # Set when the blob store is S3: clients then send bytes to S3 itself (real presigned URLs).
    remote: PresigningStore | None = None

    async def open(self, upload: Upload) -> Upload:
        """With S3, give the upload its staging key (and S3 multipart upload) before use."""
        if self.remote is None:
            return upload
        staging = f"{upload.namespace_id}/uploads/{upload.upload_id}"
        s3_id = None
        if upload.multipart:
            s3_id = await anyio.to_thread.run_sync(self.remote.create_multipart, staging)
        return await self.db.write(
            lambda s: service.set_staging(s, upload.upload_id, staging, s3_id)
        )

    def describe(self, upload: Upload, base_url: str) -> UploadOut:
        """The upload with its signed URL (or one per part)."""
        ttl = upload.presigned_url_expiration
        if upload.staging_key is not None and self.remote is not None:
            return self._describe_remote(upload, self.remote, ttl)
        if not upload.multipart:
            return service.to_out(upload, presigned_url=self._url(upload, base_url, 0, ttl))
        parts = [
            PartUrl(part_number=n, presigned_url=self._url(upload, base_url, n, ttl))
            for n in range(1, service.part_count(upload) + 1)
        ]
        return service.to_out(upload, parts=parts)

    def _describe_remote(self, upload: Upload, remote: PresigningStore, ttl: int) -> UploadOut:
        key = upload.staging_key or ""
        if not upload.multipart:
            url = remote.presigned_put_url(key, ttl, upload.file_size_bytes)
            return service.to_out(upload, presigned_url=url)
        parts = [
            PartUrl(
                part_number=n,
                presigned_url=remote.presigned_part_url(key, upload.s3_upload_id or "", n, ttl),
            )
            for n in range(1, service.part_count(upload) + 1)
        ]
        return service.to_out(upload, parts=parts)

    def _url(self, upload: Upload, base_url: str, part: int, ttl: int) -> str:
        limit = upload.part_size_bytes if part else upload.file_size_bytes
        claims = {"u": upload.upload_id, "b": upload.bucket_id, "p": part, "s": limit}
        return f"{base_url.rstrip('/')}/v1/uploads/{signing.sign(self.signing_key, claims, ttl)}"

    async def receive(self, token: str, body: AsyncIterator[bytes]) -> tuple[str, int, str]:
        """Store a PUT's bytes; returns (upload_id, size, sha256)."""
        try:
            claims = signing.verify(self.signing_key, token)
        except signing.BadToken as exc:
            raise Forbidden(f"upload URL refused: {exc}") from exc
        upload_id, part = str(claims["u"]), int(claims["p"])
        await self.db.read(lambda s: service.for_transfer(s, upload_id))
        limit = min(
            int(claims["s"]) if claims.get("s") is not None else self.max_bytes, self.max_bytes
        )
        size, sha = await _stream_to_file(body, self._path(upload_id, part), limit)
        if part == 0:
            await self.db.write(lambda s: service.record_received(s, upload_id, size, sha))
        return upload_id, size, sha

    async def confirm(self, bucket: BucketRef, upload_id: str, file_hash: str | None) -> ConfirmOut:
        """Check the bytes and register the object; confirming twice answers the same."""
        async with self.registrar.keeper.locks.hold(f"upload:{upload_id}"):
            upload = await self.db.read(lambda s: service.get(s, bucket, upload_id))
            if upload.status != "CONFIRMED":
                upload = await self._confirm(bucket, upload, file_hash)
        return ConfirmOut(
            upload_id=upload.upload_id,
            status=upload.status,
            object_id=upload.object_id,
            file_hash=upload.received_sha256,
            duplicate=upload.duplicate,
        )

    async def _confirm(self, bucket: BucketRef, upload: Upload, file_hash: str | None) -> Upload:
        path, size, sha = await self._assembled(upload)
        expected_size = upload.file_size_bytes
        expected_hash = (file_hash or upload.file_hash or "").lower() or None
        if expected_size is not None and size != expected_size:
            path.unlink(missing_ok=True)
            msg = f"received {size} bytes, {expected_size} were declared; upload them again"
            raise ValidationFailed.at(["file_size_bytes"], msg, "size_mismatch")
        if expected_hash is not None and sha != expected_hash:
            path.unlink(missing_ok=True)
            msg = f"the bytes' SHA-256 is {sha}, not {expected_hash}; nothing was registered"
            raise ValidationFailed.at(["file_hash"], msg, "hash_mismatch")
        existing = None
        if upload.skip_duplicates:
            existing = await self.db.read(lambda s: service.existing_object(s, bucket, upload, sha))
        if existing is not None:
            path.unlink(missing_ok=True)
            object_id = existing
        else:
            blob = BlobIn(
                property=upload.blob_property,
                type=upload.blob_type,  # type: ignore[arg-type]
                upload_id=upload.upload_id,
                filename=upload.filename,
            )
            body = ObjectCreate(
                key_prefix=upload.key_prefix, metadata=upload.object_metadata, blobs=[blob]
            )
            files = {upload.upload_id: LocalFile(path, upload.content_type, upload.filename, sha)}
            out = await self.registrar.register_one(bucket, body, files=files)
            object_id = out.object_id
        duplicate = existing is not None
        return await self.db.write(
            lambda s: service.confirm(s, bucket, upload.upload_id, object_id, sha, size, duplicate)
        )

    async def _assembled(self, upload: Upload) -> tuple[Path, int, str]:
        """The uploaded file, parts joined in order, with its size and SHA-256."""
        if upload.staging_key is not None and self.remote is not None:
            return await self._fetch_staged(upload, self.remote)
        if not upload.multipart:
            path = self._path(upload.upload_id, 0)
            if not path.is_file() or upload.received_sha256 is None:
                raise Conflict(f"nothing was uploaded to {upload.upload_id} yet: PUT it first")
            return path, int(upload.received_bytes or 0), upload.received_sha256
        parts = [self._path(upload.upload_id, n) for n in range(1, service.part_count(upload) + 1)]
        missing = [n for n, p in enumerate(parts, 1) if not p.is_file()]
        if missing:
            raise Conflict(f"parts not uploaded yet: {missing}")
        target = self._path(upload.upload_id, 0)
        size, sha = await anyio.to_thread.run_sync(_join, parts, target)
        return target, size, sha

    async def _fetch_staged(self, upload: Upload, remote: PresigningStore) -> tuple[Path, int, str]:
        """Complete the S3 upload if it has parts, then bring its bytes here to be checked."""
        key = upload.staging_key or ""
        store: Any = remote
        if not await anyio.to_thread.run_sync(store.exists, key):
            if not upload.multipart:
                raise Conflict(f"nothing was uploaded to {upload.upload_id} yet: PUT it first")
            got = await anyio.to_thread.run_sync(
                remote.uploaded_parts, key, upload.s3_upload_id or ""
            )
            missing = sorted(set(range(1, service.part_count(upload) + 1)) - {n for n, _ in got})
            if missing:
                raise Conflict(f"parts not uploaded yet: {missing}")
            await anyio.to_thread.run_sync(
                remote.complete_multipart, key, upload.s3_upload_id or "", got
            )
        target = self._path(upload.upload_id, 0)
        size, sha = await anyio.to_thread.run_sync(_download, store, key, target)
        await anyio.to_thread.run_sync(store.delete, key)
        return target, size, sha

    def _path(self, upload_id: str, part: int) -> Path:
        return self.folder / (f"{upload_id}.part{part}" if part else upload_id)


async def _stream_to_file(body: AsyncIterator[bytes], path: Path, limit: int) -> tuple[int, str]:
    """Write a request body to `path` while hashing; nothing is left behind on failure.

    Chunks are gathered into blocks of a few MB, each hashed and written in a worker thread
    (hashlib and file writes release the GIL) while the event loop goes on receiving the next
    block: receiving and writing overlap instead of taking turns.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".incoming")
    digest, size, block = hashlib.sha256(), 0, bytearray()
    loop = asyncio.get_running_loop()
    writing: asyncio.Future[None] | None = None  # the one block being written, in order

    def flush(fh: BinaryIO, data: bytearray) -> None:
        digest.update(data)
        fh.write(data)

    try:
        with partial.open("wb") as fh:
            try:
                async for chunk in body:
                    size += len(chunk)
                    if size > limit:
                        msg = f"the body is larger than the {limit} bytes allowed"
                        raise PayloadTooLarge(msg)
                    block += chunk
                    if len(block) >= BLOCK:
                        if writing is not None:
                            await writing
                        writing = loop.run_in_executor(None, flush, fh, block)
                        block = bytearray()  # handed over whole: no copy
                if writing is not None:
                    await writing
                await anyio.to_thread.run_sync(flush, fh, block)
            finally:
                if writing is not None and not writing.done():
                    await asyncio.wait([writing])  # its thread writes into fh: let it end first
        partial.replace(path)  # a re-sent part replaces the earlier one whole
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return size, digest.hexdigest()


def _download(store: Any, key: str, target: Path) -> tuple[int, str]:
    target.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    try:
        with target.open("wb") as out:
            for chunk in store.read_range(key, 0, None):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
    except BaseException:  # e.g. a full disk: no partial copy stays
        target.unlink(missing_ok=True)
        raise
    return size, digest.hexdigest()


def _join(parts: list[Path], target: Path) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    try:
        with target.open("wb") as out:
            for part in parts:
                with part.open("rb") as fh:
                    while chunk := fh.read(CHUNK):
                        digest.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
    except BaseException:  # e.g. a full disk: the parts stay, the half-joined file goes
        target.unlink(missing_ok=True)
        raise
    for part in parts:
        part.unlink()
    return size, digest.hexdigest()
