"""Where a blob's bytes come from: the request's `url`, `content` or `data` in all their forms."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assay.buckets.schemas import SCALAR_TYPES
from assay.errors import ValidationFailed
from assay.kit import content_types
from assay.objects.schemas import BlobIn

_URL = re.compile(r"^(https?|s3)://\S+$", re.IGNORECASE)
_DATA_URI = re.compile(
    r"^data:(?P<mime>[\w.+\-]+/[\w.+\-]+)?(?P<params>(;[^;,]*)*?);base64,(?P<b64>.*)$", re.DOTALL
)
_BINARY_TYPES = frozenset({"image", "audio", "video", "pdf", "binary", "excel"})


@dataclass(frozen=True)
class InlineBytes:
    data: bytes
    content_type: str | None = None
    filename: str | None = None


@dataclass(frozen=True)
class RemoteUrl:
    url: str
    filename: str | None = None
    field: str = "url"  # where the request gave it, for error locations


@dataclass(frozen=True)
class UploadRef:
    upload_id: str


@dataclass(frozen=True)
class LocalFile:
    """Bytes already on this machine (a confirmed direct upload); consumed when stored."""

    path: Path
    content_type: str | None
    filename: str | None
    sha256: str | None = None  # known already (hashed while received): not hashed again


@dataclass(frozen=True)
class ScalarValue:
    value: Any


Source = InlineBytes | RemoteUrl | UploadRef | ScalarValue | LocalFile


def source_of(blob: BlobIn, loc: tuple[str | int, ...]) -> Source:
    """Decode one blob input into its source, or a 422 at the blob's JSON path."""
    given = [k for k in ("url", "content", "data", "upload_id") if getattr(blob, k) is not None]
    if len(given) != 1:
        msg = "give exactly one of url, content, data or upload_id"
        raise ValidationFailed.at(loc, msg + (f" (got {', '.join(given)})" if given else ""))
    field = given[0]
    where = (*loc, field)
    if field == "upload_id":
        return UploadRef(blob.upload_id or "")
    if field == "url":
        if not _URL.match(blob.url or ""):
            raise ValidationFailed.at(where, "url must be an http://, https:// or s3:// URL")
        return RemoteUrl(blob.url or "", blob.filename)
    value = blob.content if field == "content" else blob.data
    if blob.type in SCALAR_TYPES:
        return ScalarValue(value)
    if field == "data":
        return _from_data(blob, value, where)
    return _from_content(blob, value, where)


def _from_content(blob: BlobIn, value: Any, where: tuple[str | int, ...]) -> Source:
    if blob.type == "json":
        return InlineBytes(
            json.dumps(value, ensure_ascii=False).encode(), "application/json", blob.filename
        )
    if not isinstance(value, str):
        raise ValidationFailed.at(where, f"content of a '{blob.type}' blob must be a string")
    if blob.type == "text":
        return InlineBytes(value.encode(), "text/plain", blob.filename)
    return _decode_base64_or_data_uri(value, blob.filename, where)


def _from_data(blob: BlobIn, value: Any, where: tuple[str | int, ...]) -> Source:
    """The hosted spec's `data`: URL, data URI, {base64,...}, {url}, {text}, or an inline value."""
    if isinstance(value, str) and _URL.match(value):
        return RemoteUrl(value, blob.filename, "data")
    if isinstance(value, str) and value.startswith("data:"):
        return _decode_base64_or_data_uri(value, blob.filename, where)
    if isinstance(value, dict):
        keys = set(value)
        if keys == {"url"}:
            return RemoteUrl(str(value["url"]), blob.filename, "data")
        if "base64" in keys and keys <= {"base64", "mime_type", "filename"}:
            name = value.get("filename") or blob.filename
            if not isinstance(name, str | None) or len(name or "") > 1024:
                raise ValidationFailed.at((*where, "filename"), "filename must be a short string")
            src = _decode_base64_or_data_uri(str(value["base64"]), name, where)
            mime = _mime_type(value.get("mime_type"), (*where, "mime_type"))
            return InlineBytes(src.data, mime or src.content_type, name)
        if keys == {"text"} and blob.type == "text":
            return InlineBytes(str(value["text"]).encode(), "text/plain", blob.filename)
    if blob.type == "text" and isinstance(value, str):
        return InlineBytes(value.encode(), "text/plain", blob.filename)
    if blob.type in _BINARY_TYPES:
        if not isinstance(value, str):
            msg = f"data of a '{blob.type}' blob must be a URL, a data URI or base64"
            raise ValidationFailed.at(where, msg)
        return _decode_base64_or_data_uri(value, blob.filename, where)
    return _from_content(blob, value, where)


def _mime_type(value: Any, where: tuple[str | int, ...]) -> str | None:
    """A given MIME type, normalised; a 422 when it is not one."""
    if value is None:
        return None
    normal = content_types.normalize(value) if isinstance(value, str) else None
    if normal is None:
        raise ValidationFailed.at(where, "not a content type: expected type/subtype")
    return normal


def _decode_base64_or_data_uri(
    value: str, filename: str | None, where: tuple[str | int, ...]
) -> InlineBytes:
    mime = None
    match = _DATA_URI.match(value)
    if match:
        mime, value = match.group("mime"), match.group("b64")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValidationFailed.at(where, "not valid base64 (or a data: URI with base64)") from exc
    return InlineBytes(data, mime, filename)
