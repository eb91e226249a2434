"""Builds the blob store named by `ASSAY_BLOB_STORE`."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from assay.backends.blob.base import BlobStore
from assay.backends.blob.local import LocalBlobStore


def make_blob_store(uri: str) -> BlobStore:
    """`file:///path` (default) or, once the S3 store lands, `s3://bucket/prefix`."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return LocalBlobStore(Path(parsed.path if parsed.scheme else uri))
    raise ValueError(f"unsupported blob store '{uri}' (supported: file://)")
