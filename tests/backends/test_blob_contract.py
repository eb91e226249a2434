"""One contract for every blob store: the local folder and S3 (moto's server on loopback)."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import httpx
import pytest

from assay.backends.blob.base import BlobNotFound, BlobStore, PresigningStore, UploadRejected
from assay.backends.blob.factory import make_blob_store
from assay.backends.blob.local import LocalBlobStore
from assay.backends.blob.s3 import S3BlobStore
from tests.conftest import raw_s3_client as raw_client

MIB = 1024 * 1024
BUCKET = "assay-contract"
# Dummy credentials: moto accepts anything, and explicit ones keep boto3 off any real profile.
CREDS = {"access_key_id": "testing", "secret_access_key": "testing", "region": "us-east-1"}


def s3_store(endpoint: str, bucket: str = BUCKET) -> S3BlobStore:
    """A store under a fresh prefix, so tests share the bucket but never each other's keys."""
    # A 5 MiB threshold sends the big-file test through upload_file's multipart path.
    return S3BlobStore(
        bucket,
        f"t-{uuid.uuid4().hex[:8]}/",
        endpoint_url=endpoint,
        multipart_threshold=5 * MIB,
        **CREDS,
    )


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    return s3_store(request.getfixturevalue("s3_endpoint"))


def read(store: BlobStore, key: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join(store.read_range(key, start, end))


def temp_file(folder: Path, data: bytes) -> Path:
    path = folder / f"upload-{uuid.uuid4().hex}.tmp"
    path.write_bytes(data)
    return path


# The contract, for every store.


def test_put_bytes_creates_then_reports_existing(store: BlobStore) -> None:
    assert store.put_bytes(b"hello", "ns/ab/abc") is True
    assert store.put_bytes(b"hello", "ns/ab/abc") is False
    assert store.exists("ns/ab/abc") and store.size("ns/ab/abc") == 5
    assert read(store, "ns/ab/abc") == b"hello"


def test_put_file_moves_the_temp_file_away_in_both_cases(store: BlobStore, tmp_path: Path) -> None:
    first = temp_file(tmp_path, b"content")
    assert store.put_file(first, "ns/cd/cde") is True
    assert not first.exists()
    again = temp_file(tmp_path, b"content")
    assert store.put_file(again, "ns/cd/cde") is False
    assert not again.exists()
    assert read(store, "ns/cd/cde") == b"content"


def test_missing_keys(store: BlobStore) -> None:
    assert store.exists("ns/zz/missing") is False
    with pytest.raises(BlobNotFound):
        store.size("ns/zz/missing")
    # Raised on the call, before any byte streams, so an HTTP layer can still answer 404.
    with pytest.raises(BlobNotFound):
        store.read_range("ns/zz/missing")
    with pytest.raises(BlobNotFound):
        store.read_range("ns/zz/missing", 3, 10)


DATA = os.urandom(600_000)  # spans several 256 KiB read chunks


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (0, None),  # whole
        (0, len(DATA) - 1),  # whole, both ends named
        (1000, 300_000),  # middle, across a chunk boundary
        (len(DATA) - 100, len(DATA) - 1),  # the last bytes
        (500_000, None),  # open-ended
        (0, 0),  # one byte
        (len(DATA) - 10, len(DATA) + 50),  # end past the last byte is clamped
        (len(DATA), None),  # start past the last byte: nothing
        (10, 5),  # end before start: nothing
    ],
)
def test_read_range(store: BlobStore, start: int, end: int | None) -> None:
    store.put_bytes(DATA, "ns/ra/range")
    assert read(store, "ns/ra/range", start, end) == DATA[start : None if end is None else end + 1]


def test_empty_object(store: BlobStore) -> None:
    assert store.put_bytes(b"", "ns/00/empty") is True
    assert store.exists("ns/00/empty") and store.size("ns/00/empty") == 0
    assert read(store, "ns/00/empty") == b""
    assert read(store, "ns/00/empty", 0, 10) == b""


def test_delete_is_idempotent(store: BlobStore) -> None:
    store.put_bytes(b"x", "ns/de/gone")
    store.delete("ns/de/gone")
    assert not store.exists("ns/de/gone")
    store.delete("ns/de/gone")
    store.delete("ns/de/never-was")


def test_delete_prefix_removes_only_that_prefix(store: BlobStore) -> None:
    keys = ["a/1", "a/b/2", "a/b/c/3", "ab/4", "b/a/5"]
    for key in keys:
        store.put_bytes(key.encode(), key)
    store.delete_prefix("a")
    assert [k for k in keys if store.exists(k)] == ["ab/4", "b/a/5"]
    store.delete_prefix("b/")
    assert [k for k in keys if store.exists(k)] == ["ab/4"]
    store.delete_prefix("nothing-here")
    store.put_bytes(b"back", "a/1")  # a removed prefix can be written again
    assert read(store, "a/1") == b"back"


def test_big_file_round_trips_exactly(store: BlobStore, tmp_path: Path) -> None:
    data = os.urandom(6 * MIB + 12_345)
    assert store.put_file(temp_file(tmp_path, data), "ns/bi/big") is True
    assert store.size("ns/bi/big") == len(data)
    digest = hashlib.sha256()
    for chunk in store.read_range("ns/bi/big"):
        digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()


def test_nested_slashes(store: BlobStore) -> None:
    key = "ns/deep/er/still/deeper/blob.bin"
    store.put_bytes(b"deep", key)
    assert store.exists(key) and read(store, key, 1, 2) == b"ee"
    assert not store.exists("ns/deep/er")


def test_check_passes(store: BlobStore) -> None:
    store.check()


# S3 only: errors at the edge, key mapping, and direct uploads.


@pytest.mark.s3
def test_missing_bucket_fails_clearly(s3_endpoint: str) -> None:
    store = s3_store(s3_endpoint, bucket="no-such-bucket")
    with pytest.raises(OSError, match="bucket 'no-such-bucket' does not exist"):
        store.check()
    with pytest.raises(OSError, match="bucket 'no-such-bucket' does not exist"):
        store.put_bytes(b"x", "k")
    with pytest.raises(OSError, match="Could not connect"):
        S3BlobStore(BUCKET, endpoint_url="http://127.0.0.1:9", **CREDS).check()


@pytest.mark.s3
def test_factory_maps_keys_under_the_prefix(s3_endpoint: str) -> None:
    store = make_blob_store(f"s3://{BUCKET}/tenant/blobs", endpoint_url=s3_endpoint, **CREDS)
    assert isinstance(store, S3BlobStore) and isinstance(store, PresigningStore)
    store.put_bytes(b"mapped", "ns/ab/key")
    body = raw_client(s3_endpoint).get_object(Bucket=BUCKET, Key="tenant/blobs/ns/ab/key")["Body"]
    assert body.read() == b"mapped"
    assert not isinstance(make_blob_store("file:///tmp/x"), PresigningStore)
    with pytest.raises(ValueError, match="no bucket"):
        make_blob_store("s3:///prefix")


@pytest.mark.s3
def test_presigned_put(s3_endpoint: str) -> None:
    store = s3_store(s3_endpoint)
    data = os.urandom(1000)
    url = store.presigned_put_url("ns/up/one", 60, content_length=len(data))
    assert "content-length" in url  # signed, so real S3 refuses other sizes
    assert httpx.put(url, content=data).status_code == 200
    assert store.exists("ns/up/one") and read(store, "ns/up/one") == data


@pytest.mark.s3
def test_multipart_through_presigned_part_urls(s3_endpoint: str) -> None:
    store = s3_store(s3_endpoint)
    parts = [os.urandom(5 * MIB), os.urandom(4321)]
    upload_id = store.create_multipart("ns/mp/whole")
    etags = []
    for number, part in enumerate(parts, start=1):
        url = store.presigned_part_url("ns/mp/whole", upload_id, number, 60)
        response = httpx.put(url, content=part)
        assert response.status_code == 200
        etags.append((number, response.headers["ETag"]))
    assert not store.exists("ns/mp/whole")
    store.complete_multipart("ns/mp/whole", upload_id, list(reversed(etags)))
    assert read(store, "ns/mp/whole") == b"".join(parts)


@pytest.mark.s3
def test_multipart_rejects_bad_parts_and_aborts_idempotently(s3_endpoint: str) -> None:
    store = s3_store(s3_endpoint)
    upload_id = store.create_multipart("ns/mp/bad")
    httpx.put(store.presigned_part_url("ns/mp/bad", upload_id, 1, 60), content=b"part")
    with pytest.raises(UploadRejected, match="InvalidPart"):
        store.complete_multipart("ns/mp/bad", upload_id, [(1, '"not-the-etag"')])
    store.abort_multipart("ns/mp/bad", upload_id)
    store.abort_multipart("ns/mp/bad", upload_id)
    store.abort_multipart("ns/mp/bad", "no-such-upload")
    assert not store.exists("ns/mp/bad")


def test_local_path_is_the_file_for_local_stores_and_none_for_remote_ones(store: BlobStore) -> None:
    store.put_bytes(b"on disk", "ns/lp/here")
    path = store.local_path("ns/lp/here")
    if isinstance(store, LocalBlobStore):
        assert path is not None and path.read_bytes() == b"on disk"
        with pytest.raises(BlobNotFound):
            store.local_path("ns/lp/missing")
    else:
        assert path is None
