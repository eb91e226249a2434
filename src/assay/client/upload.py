"""The direct-upload protocol as operations: create, PUT the bytes (whole or in parts), confirm.

Bytes are streamed from the file, never read whole. A part whose PUT fails is sent again
alone (a few tries, with backoff); when it keeps failing `UploadFailed` carries how far the
upload got, and `upload_file(..., resume=exc.state)` sends only what is missing. A confirm
that names parts the server lacks gets those parts sent once more.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from assay.client.errors import AssayError, Conflict, UploadFailed
from assay.client.models import Upload, UploadResult, UploadState
from assay.client.operations import drop_none, one, q
from assay.client.transport import Backoff, HashFile, Op, Put, create, get

MIB = 1024 * 1024
MULTIPART_THRESHOLD = 64 * MIB
PART_SIZE = 16 * MIB
MIN_PART_SIZE = 5 * MIB  # S3's smallest part (all but the last)
# Types the standard table may lack, and that decide a bucket property.
_EXTRA_TYPES = {
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".jsonl": "application/jsonl",
    ".webp": "image/webp",
    ".m4a": "audio/mp4",
    ".flac": "audio/flac",
    ".opus": "audio/ogg",
    ".mkv": "video/x-matroska",
    ".webm": "video/webm",
}


def guess_content_type(path: str | Path) -> str:
    """The MIME type a file's extension suggests; `application/octet-stream` if none."""
    suffix = Path(path).suffix.lower()
    if suffix in _EXTRA_TYPES:
        return _EXTRA_TYPES[suffix]
    return mimetypes.guess_type(Path(path).name)[0] or "application/octet-stream"


def create_upload(bucket: str, body: Mapping[str, Any]) -> Op[Upload]:
    """A pending upload with its signed URL(s)."""
    return one(create(uploads_path(bucket), drop_none(body)), Upload)


def get_upload(bucket: str, upload_id: str) -> Op[Upload]:
    """An upload and its status."""
    return one(get(f"{uploads_path(bucket)}/{q(upload_id)}"), Upload)


def uploads_path(bucket: str) -> str:
    """The uploads route of a bucket."""
    return f"/v1/buckets/{q(bucket)}/uploads"


def confirm_upload(bucket: str, upload_id: str, file_hash: str | None = None) -> Op[UploadResult]:
    """Check the received bytes and register the object."""
    body = drop_none({"file_hash": file_hash})
    return one(create(f"{uploads_path(bucket)}/{q(upload_id)}/confirm", body), UploadResult)


class _Meter:
    """Bytes sent so far for a progress callback; a failed try takes its bytes back."""

    def __init__(self, total: int, progress: Callable[[int, int], None] | None) -> None:
        self.total, self.progress = total, progress
        self.done, self.inflight = 0, 0

    def add(self, n: int) -> None:
        """Count bytes of the try in flight."""
        self.inflight += n
        self._report()

    def commit(self) -> None:
        """The try in flight succeeded: its bytes are sent for good."""
        self.done, self.inflight = self.done + self.inflight, 0

    def skip(self, n: int) -> None:
        """Count bytes sent by an earlier run (a resumed upload)."""
        self.done += n
        self._report()

    def rollback(self) -> None:
        """The try in flight failed: its bytes will be sent again."""
        if self.inflight:
            self.inflight = 0
            self._report()

    def _report(self) -> None:
        if self.progress is not None:
            self.progress(self.done + self.inflight, self.total)


def _resendable(exc: AssayError) -> bool:
    """Worth another try: no answer, or the server (or S3) was briefly unable."""
    return exc.status in (0, 408, 429) or exc.status >= 500


def _send(put: Put, meter: _Meter) -> Op[None]:
    """PUT one file or part, trying again (per the retry policy) after a lost connection or
    a 5xx; the bytes are read from the file again each time."""
    attempt = 0
    while True:
        try:
            yield Put(put.url, put.path, put.offset, put.length, meter.add)
        except AssayError as exc:
            meter.rollback()
            if not _resendable(exc) or not (yield Backoff(attempt)):
                raise
            attempt += 1
            continue
        meter.commit()
        return


def _part_span(number: int, part_size: int, size: int) -> tuple[int, int]:
    start = (number - 1) * part_size
    return start, max(0, min(part_size, size - start))


def _missing_parts(exc: Conflict) -> list[int]:
    """The part numbers a 409 from confirm says were not received ("parts ...: [2, 3]")."""
    found = re.search(r"\[([\d,\s]+)\]", exc.message)
    return [int(n) for n in found.group(1).split(",") if n.strip()] if found else []


def _send_bytes(
    path: Path, size: int, state: UploadState, only: set[int] | None, meter: _Meter
) -> Op[None]:
    """Send what `state` has not sent yet (or just the parts in `only`)."""
    upload = state.upload
    if not upload.parts:
        if upload.presigned_url is None:
            raise AssayError(f"upload {upload.upload_id} came back without a URL to send to")
        yield from _send(Put(upload.presigned_url, path, 0, size), meter)
        return
    for part in sorted(upload.parts, key=lambda p: p.part_number):
        n = part.part_number
        offset, length = _part_span(n, state.part_size, size)
        wanted = n in only if only is not None else n not in state.sent_parts
        if not wanted:
            if only is None:
                meter.skip(length)
            continue
        yield from _send(Put(part.presigned_url, path, offset, length), meter)
        state.sent_parts.add(n)


def upload_file(
    bucket: str,
    path: Path,
    *,
    blob_property: str | None = None,
    content_type: str | None = None,
    filename: str | None = None,
    key_prefix: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    file_hash: str | None = None,
    multipart: bool | None = None,
    multipart_threshold: int = MULTIPART_THRESHOLD,
    part_size: int = PART_SIZE,
    progress: Callable[[int, int], None] | None = None,
    resume: UploadState | None = None,
) -> Op[UploadResult]:
    """Create an upload, PUT the file's bytes (in parts above the threshold), confirm it."""
    path = Path(path)
    size = path.stat().st_size
    if resume is not None:
        state = resume
    else:
        sha = file_hash or (yield HashFile(path))
        use_parts = size > multipart_threshold if multipart is None else multipart
        part_size = max(part_size, MIN_PART_SIZE)
        body = {
            "filename": filename or path.name,
            "content_type": content_type or guess_content_type(path),
            "file_size_bytes": size,
            "file_hash": sha,
            "blob_property": blob_property,
            "key_prefix": key_prefix,
            "object_metadata": dict(metadata) if metadata is not None else None,
            "multipart": True if use_parts else None,
            "part_size_bytes": part_size if use_parts else None,
        }
        upload = yield from create_upload(bucket, body)
        state = UploadState(upload=upload, file_hash=sha, part_size=part_size)
    meter = _Meter(size, progress)
    only: set[int] | None = None
    for _ in range(2):  # a confirm naming missing parts gets them sent once more
        try:
            yield from _send_bytes(path, size, state, only, meter)
        except AssayError as exc:
            msg = f"sending {path.name} to upload {state.upload.upload_id} failed: {exc.message}"
            raise UploadFailed(msg, state, exc) from exc
        try:
            return (yield from confirm_upload(bucket, state.upload.upload_id, state.file_hash))
        except Conflict as exc:
            missing = _missing_parts(exc)
            if not missing or not state.upload.parts:
                raise
            state.sent_parts -= set(missing)
            only = set(missing)
            meter.done -= sum(_part_span(n, state.part_size, size)[1] for n in only)
    raise UploadFailed(f"upload {state.upload.upload_id} is still missing parts", state)
