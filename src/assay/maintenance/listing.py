"""Walking a blob store: every key with the time its bytes were last written.

The blob store contract (`backends/blob/base.py`) has no listing, since nothing on a request's
path needs one; garbage collection is the only reader, so the two stores are walked here.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from assay.backends.blob.base import BlobStore
from assay.backends.blob.local import LocalBlobStore
from assay.backends.blob.s3 import S3BlobStore


@dataclass(frozen=True)
class StoredKey:
    key: str
    modified: dt.datetime  # UTC


class ListingUnsupported(RuntimeError):
    """The store is of a kind this module cannot walk."""


def stored_keys(store: BlobStore) -> Iterator[StoredKey]:
    """Every key of the store, in no particular order."""
    if isinstance(store, LocalBlobStore):
        return _local_keys(store)
    if isinstance(store, S3BlobStore):
        return _s3_keys(store)
    raise ListingUnsupported(f"cannot list the keys of {store!r}")


def _local_keys(store: LocalBlobStore) -> Iterator[StoredKey]:
    root = str(store.root)
    for folder, _dirs, files in os.walk(root):
        rel = os.path.relpath(folder, root)
        prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        for name in files:
            try:
                mtime = os.stat(os.path.join(folder, name)).st_mtime
            except FileNotFoundError:  # removed while we walked
                continue
            yield StoredKey(prefix + name, dt.datetime.fromtimestamp(mtime, dt.UTC))


def _s3_keys(store: S3BlobStore) -> Iterator[StoredKey]:
    # The store keeps its boto3 client private; listing is the one use of it outside the store.
    client: Any = store._client
    prefix = f"{store.prefix}/" if store.prefix else ""
    try:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=store.bucket, Prefix=prefix)
        for page in pages:
            for item in page.get("Contents", []):
                modified = item["LastModified"]
                if modified.tzinfo is None:
                    modified = modified.replace(tzinfo=dt.UTC)
                yield StoredKey(item["Key"][len(prefix) :], modified)
    except Exception as exc:  # botocore's errors, translated at the edge as the store does
        raise OSError(f"listing {store!r} failed: {exc}") from exc
