"""Direct-upload use-cases inside one transaction: create, record bytes, confirm."""

from __future__ import annotations

import datetime as dt
import fnmatch
import math
from typing import Any

from sqlalchemy.orm import Session

from assay.buckets.schemas import BLOB_TYPES
from assay.errors import Conflict, NotFound, PayloadTooLarge, ValidationFailed
from assay.events.outbox import emit
from assay.kit.db import utcnow
from assay.kit.ids import new_id
from assay.kit.paging import SortKey, paginate
from assay.models import Upload
from assay.objects.service import BucketRef
from assay.uploads.repository import UploadRepository, upload_by_id
from assay.uploads.schemas import UploadCreate, UploadOut, UploadStats, wire_status

# Which blob types a MIME type can fill, to pick the bucket property by content type.
_MIME_FITS = {
    "image": "image/*",
    "audio": "audio/*",
    "video": "video/*",
    "text": "text/*",
    "json": "application/json",
    "pdf": "application/pdf",
    "binary": "*",
    "excel": "application/vnd.*",
}


def pick_property(schema: dict[str, Any], body: UploadCreate) -> tuple[str, str]:
    """The blob property the upload fills: given, or the only file property fitting its type."""
    props: dict[str, Any] = schema.get("properties", {})
    if body.blob_property is not None:
        spec = props.get(body.blob_property)
        if spec is None or spec["type"] not in BLOB_TYPES:
            files = ", ".join(k for k, v in props.items() if v["type"] in BLOB_TYPES) or "none"
            msg = f"'{body.blob_property}' is not a file property of the bucket ({files})"
            raise ValidationFailed.at(["blob_property"], msg)
        return body.blob_property, spec["type"]
    mime = body.content_type.split(";")[0].strip().lower()
    fits = [
        (name, spec["type"])
        for name, spec in props.items()
        if spec["type"] in BLOB_TYPES
        and (body.blob_type in (None, spec["type"]))
        and fnmatch.fnmatch(mime, _MIME_FITS[spec["type"]])
    ]
    specific = [f for f in fits if f[1] != "binary"]  # binary takes anything: a last resort
    fits = specific or fits
    if len(fits) != 1:
        which = "several" if fits else "no"
        msg = f"{which} file properties fit content type '{mime}': give blob_property"
        raise ValidationFailed.at(["blob_property"], msg)
    return fits[0]


MAX_PARTS = 10_000  # S3's own limit; each part is a URL in the answer


def create(session: Session, bucket: BucketRef, body: UploadCreate, max_bytes: int) -> Upload:
    size = body.file_size_bytes
    if size is not None and size > max_bytes:
        raise PayloadTooLarge(f"file_size_bytes is over the {max_bytes} bytes an upload may hold")
    if body.multipart:
        if size is None:
            raise ValidationFailed.at(["file_size_bytes"], "multipart uploads need file_size_bytes")
        if math.ceil(size / body.part_size_bytes) > MAX_PARTS:
            msg = f"more than {MAX_PARTS} parts: choose a larger part_size_bytes"
            raise ValidationFailed.at(["part_size_bytes"], msg)
    prop, blob_type = pick_property(bucket.bucket_schema, body)
    now = utcnow()
    upload = Upload(
        upload_id=new_id("upl"),
        namespace_id=bucket.namespace_id,
        bucket_id=bucket.bucket_id,
        filename=body.filename,
        content_type=body.content_type,
        file_size_bytes=body.file_size_bytes,
        file_hash=body.file_hash.lower() if body.file_hash else None,
        blob_property=prop,
        blob_type=blob_type,
        object_metadata=body.object_metadata,
        key_prefix=body.key_prefix,
        skip_duplicates=body.skip_duplicates,
        multipart=body.multipart,
        part_size_bytes=body.part_size_bytes if body.multipart else None,
        presigned_url_expiration=body.presigned_url_expiration,
        expires_at=now + dt.timedelta(seconds=body.presigned_url_expiration),
        created_at=now,
    )
    return UploadRepository(session, bucket.namespace_id, bucket.bucket_id).add(upload)


def part_count(upload: Upload) -> int:
    assert upload.file_size_bytes is not None and upload.part_size_bytes
    return max(1, math.ceil(upload.file_size_bytes / upload.part_size_bytes))


def get(session: Session, bucket: BucketRef, upload_id: str) -> Upload:
    upload = UploadRepository(session, bucket.namespace_id, bucket.bucket_id).get(upload_id)
    if upload is None:
        raise NotFound(f"upload '{upload_id}' not found")
    return upload


def for_transfer(session: Session, upload_id: str) -> Upload:
    """The upload a signed PUT names; it must still be waiting for bytes."""
    upload = upload_by_id(session, upload_id)
    if upload is None:
        raise NotFound("upload not found")
    if upload.status not in ("PENDING", "UPLOADED"):
        raise Conflict(f"upload {upload_id} is {upload.status}: it takes no more bytes")
    return upload


def set_staging(session: Session, upload_id: str, staging: str, s3_id: str | None) -> Upload:
    upload = upload_by_id(session, upload_id)
    assert upload is not None
    upload.staging_key, upload.s3_upload_id = staging, s3_id
    return upload


def record_received(session: Session, upload_id: str, size: int, sha256: str) -> None:
    upload = upload_by_id(session, upload_id)
    if upload is not None and upload.status in ("PENDING", "UPLOADED"):
        upload.status, upload.received_bytes, upload.received_sha256 = "UPLOADED", size, sha256


def existing_object(session: Session, bucket: BucketRef, upload: Upload, sha256: str) -> str | None:
    """The object already holding these bytes in the upload's property, if any."""
    repo = UploadRepository(session, bucket.namespace_id, bucket.bucket_id)
    return repo.object_with_content(sha256, upload.blob_property, upload.blob_type)


def confirm(
    session: Session,
    bucket: BucketRef,
    upload_id: str,
    object_id: str,
    sha256: str,
    size: int,
    duplicate: bool,
) -> Upload:
    """CONFIRMED, with the object that holds the bytes; the event goes out with it."""
    upload = get(session, bucket, upload_id)
    if upload.status == "CONFIRMED":
        return upload
    upload.status, upload.object_id, upload.duplicate = "CONFIRMED", object_id, duplicate
    upload.received_sha256, upload.received_bytes, upload.confirmed_at = sha256, size, utcnow()
    data = {"upload_id": upload_id, "object_id": object_id, "duplicate": duplicate}
    emit(session, bucket.namespace_id, "upload.confirmed", ("upload", upload_id), data)
    return upload


def list_page(
    session: Session, bucket: BucketRef, *, limit: int, cursor: str | None
) -> tuple[list[Upload], str | None, UploadStats]:
    repo = UploadRepository(session, bucket.namespace_id, bucket.bucket_id)
    key = SortKey(Upload.upload_id, Upload.upload_id)
    rows, nxt = paginate(session, repo.scoped(), key, limit=limit, cursor=cursor)
    return rows, nxt, _stats(repo.status_counts())


def _stats(by_status: list[tuple[str, int, int]]) -> UploadStats:
    """The bucket's uploads in figures, as the hosted product's list answers them."""
    total = sum(n for _, n, _ in by_status)
    size = sum(b for _, _, b in by_status)
    counts: dict[str, int] = {}
    for status, n, _ in by_status:
        wire = wire_status(status)
        counts[wire] = counts.get(wire, 0) + n
    return UploadStats(
        total_uploads=total,
        total_size_bytes=size,
        uploads_by_status=counts,
        avg_file_size_bytes=size / total if total else 0,
        unique_buckets=1 if total else 0,
    )


def to_out(upload: Upload, **urls: Any) -> UploadOut:
    return UploadOut(
        upload_id=upload.upload_id,
        bucket_id=upload.bucket_id,
        filename=upload.filename,
        content_type=upload.content_type,
        file_size_bytes=upload.file_size_bytes,
        file_hash=upload.file_hash,
        blob_property=upload.blob_property,
        status=upload.status,
        presigned_url_expiration=upload.presigned_url_expiration,
        s3_key=f"{upload.namespace_id}/uploads/{upload.upload_id}",
        object_id=upload.object_id,
        duplicate=upload.duplicate,
        created_at=upload.created_at,
        expires_at=upload.expires_at,
        **urls,
    )
