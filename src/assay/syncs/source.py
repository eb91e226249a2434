"""An S3 (or S3-compatible) source: listing and reading through boto3 (imported lazily), and
the rules that decide which keys a run takes and which bucket property each one goes to.

`S3Source`'s calls block; the run hands them to threads. botocore's errors are translated here
into `SourceError`s whose messages are safe to show (credentials are scrubbed from them).
Without credentials the requests go unsigned: a sync must never borrow the server's own AWS
identity (environment, instance role) to read a bucket its creator named.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from assay.buckets.schemas import BLOB_TYPES

PAGE_SIZE = 1000  # keys per ListObjectsV2 call (the S3 maximum)
_NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})


class SourceError(Exception):
    """The source could not be listed or read; `message` is safe to show to API clients."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class KeyVanished(SourceError):
    """The key was deleted between listing and reading."""


class KeyTooLarge(SourceError):
    """The object is larger than the server's fetch limit."""


@dataclass(frozen=True)
class SourceConfig:
    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None


@dataclass(frozen=True)
class Listed:
    key: str
    etag: str
    size: int


@dataclass(frozen=True)
class Fetched:
    data: bytes
    etag: str
    content_type: str | None


class S3Source:
    """One source bucket under a prefix; the boto3 client is thread-safe and made once."""

    def __init__(self, config: SourceConfig, *, connect_timeout_s: float = 10.0) -> None:
        self.config = config
        self._secrets = [
            s for s in (config.access_key_id, config.secret_access_key, config.session_token) if s
        ]
        self._client = self._make_client(connect_timeout_s)

    def _make_client(self, connect_timeout_s: float) -> Any:
        import boto3  # heavy: only sync runs need it
        from botocore import UNSIGNED
        from botocore.config import Config

        cfg = self.config
        options: dict[str, Any] = {
            "connect_timeout": connect_timeout_s,
            "read_timeout": 60,
            "retries": {"max_attempts": 3, "mode": "standard"},
        }
        if cfg.endpoint_url:  # S3-compatible stores (MinIO, moto, ...) want path-style URLs
            options["s3"] = {"addressing_style": "path"}
        if not cfg.access_key_id:
            options["signature_version"] = UNSIGNED
        session = boto3.session.Session(
            aws_access_key_id=cfg.access_key_id,
            aws_secret_access_key=cfg.secret_access_key,
            aws_session_token=cfg.session_token,
            region_name=cfg.region or "us-east-1",
        )
        with self._translated("connect"):
            return session.client("s3", endpoint_url=cfg.endpoint_url, config=Config(**options))

    def list_page(self, token: str | None) -> tuple[list[Listed], str | None]:
        """One page of keys under the prefix (folder markers left out) and the next token."""
        args: dict[str, Any] = {
            "Bucket": self.config.bucket,
            "Prefix": self.config.prefix,
            "MaxKeys": PAGE_SIZE,
        }
        if token:
            args["ContinuationToken"] = token
        with self._translated("list"):
            answer = self._client.list_objects_v2(**args)
        items = [
            Listed(item["Key"], _etag(item.get("ETag")), int(item.get("Size", 0)))
            for item in answer.get("Contents", [])
            if not item["Key"].endswith("/")
        ]
        nxt = answer.get("NextContinuationToken") if answer.get("IsTruncated") else None
        return items, nxt

    def read(self, key: str, max_bytes: int) -> Fetched:
        """The object's bytes (at most `max_bytes`), with the ETag of exactly those bytes."""
        with self._translated("read", key):
            answer = self._client.get_object(Bucket=self.config.bucket, Key=key)
            body = answer["Body"]
            try:
                if int(answer.get("ContentLength") or 0) > max_bytes:
                    raise KeyTooLarge(f"object is larger than the limit of {max_bytes} bytes")
                data = body.read(max_bytes + 1)
            finally:
                body.close()
        if len(data) > max_bytes:
            raise KeyTooLarge(f"object is larger than the limit of {max_bytes} bytes")
        return Fetched(data, _etag(answer.get("ETag")), answer.get("ContentType"))

    @contextmanager
    def _translated(self, action: str, key: str | None = None) -> Iterator[None]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code") or "Error")
            detail = str(error.get("Message") or "").strip()
            msg = f"S3 {action} failed: {code}" + (f" ({detail})" if detail else "")
            raise (KeyVanished if key and code in _NOT_FOUND else SourceError)(
                self._scrub(msg)
            ) from exc
        except BotoCoreError as exc:
            raise SourceError(self._scrub(f"S3 {action} failed: {exc}")) from exc

    def _scrub(self, message: str) -> str:
        for secret in self._secrets:
            message = message.replace(secret, "***")
        return message[:1000]


def _etag(raw: str | None) -> str:
    return (raw or "").strip('"')


# --- which keys a run takes, and where each one goes --------------------------------------

GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})
# The content types each file property type accepts (fnmatch patterns).
TYPE_MIMES: dict[str, tuple[str, ...]] = {
    "image": ("image/*",),
    "audio": ("audio/*",),
    "video": ("video/*",),
    "text": ("text/*",),
    "json": ("application/json", "application/*+json"),
    "pdf": ("application/pdf",),
    "excel": (
        "application/vnd.ms-excel",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ),
    "binary": ("*/*",),
}


def relative_key(key: str, prefix: str) -> str:
    """The key below the sync's prefix, without a leading slash."""
    return key[len(prefix) :].lstrip("/") if key.startswith(prefix) else key


def wanted(rel_key: str, filters: dict[str, Any]) -> bool:
    """Whether a key passes the include globs (if any) and none of the exclude globs."""
    include, exclude = filters.get("include"), filters.get("exclude") or []
    if include and not any(fnmatchcase(rel_key, p) for p in include):
        return False
    return not any(fnmatchcase(rel_key, p) for p in exclude)


def content_type_of(declared: str | None, key: str) -> str:
    """The source's content type, or one guessed from the key's extension when it gave none."""
    base = (declared or "").split(";")[0].strip().lower()
    if base in GENERIC_TYPES:
        return (mimetypes.guess_type(key)[0] or "application/octet-stream").lower()
    return base


def pattern_fits(pattern: str, prop_type: str) -> bool:
    """Whether every content type `pattern` matches is one a `prop_type` property accepts."""
    # The pattern is matched as a name against the type's patterns: `image/*` fits `image/*`
    # (a literal `*` matches `*`) but `*/*` does not, so only what is certain to fit passes.
    return any(fnmatchcase(pattern, accepted) for accepted in TYPE_MIMES.get(prop_type, ()))


def file_properties(schema: dict[str, Any]) -> dict[str, str]:
    """The bucket's file properties: name → type."""
    props = schema.get("properties", {})
    return {n: spec["type"] for n, spec in props.items() if spec.get("type") in BLOB_TYPES}


def choose_property(
    content_type: str, mapping: dict[str, str], files: dict[str, str]
) -> tuple[str, str] | str:
    """(property, type) for a content type, or why there is none."""
    hits = [p for p in mapping if fnmatchcase(content_type, p)]
    if hits:
        # The most specific pattern wins: `image/png` over `image/*` over `*/*`.
        best = max(hits, key=lambda p: (2 - p.count("*"), -list(mapping).index(p)))
        name = mapping[best]
        if name in files:
            return name, files[name]
        return f"property_mapping names '{name}', which is not a file property of the bucket"
    fits = [n for n, t in files.items() if pattern_fits(content_type, t)]
    if len(fits) > 1:  # a binary property takes anything; a typed one is the better match
        fits = [n for n in fits if files[n] != "binary"] or fits
    if len(fits) == 1:
        return fits[0], files[fits[0]]
    if not fits:
        return f"no file property of the bucket accepts content type '{content_type}'"
    return (
        f"several properties accept content type '{content_type}' ({', '.join(fits)}): "
        "add it to property_mapping"
    )
