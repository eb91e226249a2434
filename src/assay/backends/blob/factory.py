"""Builds the blob store named by `ASSAY_BLOB_STORE`."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from assay.backends.blob.base import BlobStore
from assay.backends.blob.local import LocalBlobStore
from assay.backends.blob.s3 import S3BlobStore


def make_blob_store(
    uri: str,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
) -> BlobStore:
    """`file:///path` (default) or `s3://bucket/prefix` (the S3 options apply only to it)."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return LocalBlobStore(Path(parsed.path if parsed.scheme else uri))
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ValueError(f"blob store '{uri}' names no bucket (expected s3://bucket/prefix)")
        return S3BlobStore(
            parsed.netloc,
            parsed.path,
            endpoint_url=endpoint_url,
            region=region,
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
        )
    raise ValueError(f"unsupported blob store '{uri}' (supported: file://, s3://)")
