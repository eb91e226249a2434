"""`Client`: Assay's HTTP API from blocking code, one attribute per resource.

Every method runs an operation from `operations.py` / `upload.py`; `aio.py` is the same
surface with `await`. Lists are iterators that fetch page after page as they are read.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from assay.client import operations as ops
from assay.client import upload as up
from assay.client.models import (
    Batch,
    BatchFailure,
    Bucket,
    Collection,
    Document,
    FeatureExtractor,
    Namespace,
    Object,
    Retriever,
    SearchResponse,
    Task,
    Upload,
    UploadResult,
    UploadState,
    Webhook,
)
from assay.client.transport import Connection, Op, RetryPolicy, SyncRunner

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
PAGE = 100


class _Group:
    def __init__(self, client: Client) -> None:
        self._client = client

    def _run(self, op: Op[T]) -> T:
        return self._client.run(op)

    def _iterate(self, pager: ops.Pager[M]) -> Iterator[M]:
        cursor: str | None = None
        while True:
            items, cursor = self._run(pager.page(cursor))
            yield from items
            if cursor is None:
                return


class Namespaces(_Group):
    def create(
        self,
        name: str,
        feature_extractors: Iterable[str | Mapping[str, Any]] = (),
        *,
        description: str | None = None,
    ) -> Namespace:
        """A namespace; extractors as `"text_extractor"`, `"name@v1"` or full mappings."""
        return self._run(ops.create_namespace(name, feature_extractors, description))

    def get(self, namespace: str) -> Namespace:
        """A namespace by id or name."""
        return self._run(ops.get_namespace(namespace))

    def list(self, *, page_size: int = PAGE) -> Iterator[Namespace]:
        """Every namespace the key may see."""
        return self._iterate(ops.namespace_pager(page_size))

    def delete(self, namespace: str) -> None:
        """Delete a namespace and everything in it."""
        self._run(ops.delete_namespace(namespace))


class Buckets(_Group):
    def create(
        self,
        name: str,
        schema: Mapping[str, Any] | None = None,
        *,
        properties: Mapping[str, str | Mapping[str, Any]] | None = None,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Bucket:
        """A bucket, from a full `bucket_schema` or `properties={"name": "type"}`."""
        return self._run(ops.create_bucket(name, schema, properties, description, metadata))

    def get(self, bucket: str) -> Bucket:
        """A bucket by id or name, with its schema and counts."""
        return self._run(ops.get_bucket(bucket))

    def list(self, *, page_size: int = PAGE) -> Iterator[Bucket]:
        """Every bucket of the namespace."""
        return self._iterate(ops.bucket_pager(page_size))

    def delete(self, bucket: str) -> None:
        """Delete a bucket and its objects."""
        self._run(ops.delete_bucket(bucket))


class Objects(_Group):
    def create(
        self,
        bucket: str,
        blobs: Sequence[Mapping[str, Any]],
        *,
        key_prefix: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Object:
        """Register an object; each blob `{property, type, url | content | data | upload_id}`."""
        return self._run(ops.create_object(bucket, blobs, key_prefix, metadata))

    def get(self, bucket: str, object_id: str) -> Object:
        """One object with its blobs."""
        return self._run(ops.get_object(bucket, object_id))

    def list(
        self,
        bucket: str,
        *,
        filters: Mapping[str, Any] | None = None,
        sort: Mapping[str, Any] | None = None,
        page_size: int = PAGE,
    ) -> Iterator[Object]:
        """Objects of a bucket, optionally filtered: `{"AND": [{field, operator, value}]}`."""
        return self._iterate(ops.object_pager(bucket, filters, sort, page_size))

    def delete(self, bucket: str, object_id: str) -> None:
        """Delete an object and its documents."""
        self._run(ops.delete_object(bucket, object_id))


class Uploads(_Group):
    def create(
        self,
        bucket: str,
        filename: str,
        *,
        content_type: str = "application/octet-stream",
        file_size_bytes: int | None = None,
        file_hash: str | None = None,
        blob_property: str | None = None,
        key_prefix: str | None = None,
        object_metadata: Mapping[str, Any] | None = None,
        multipart: bool = False,
        part_size_bytes: int | None = None,
    ) -> Upload:
        """A pending upload and its signed URL(s); `upload_file` does the whole protocol."""
        body = {
            "filename": filename,
            "content_type": content_type,
            "file_size_bytes": file_size_bytes,
            "file_hash": file_hash,
            "blob_property": blob_property,
            "key_prefix": key_prefix,
            "object_metadata": dict(object_metadata) if object_metadata is not None else None,
            "multipart": multipart or None,
            "part_size_bytes": part_size_bytes,
        }
        return self._run(up.create_upload(bucket, body))

    def get(self, bucket: str, upload_id: str) -> Upload:
        """An upload and its status."""
        return self._run(up.get_upload(bucket, upload_id))

    def confirm(self, bucket: str, upload_id: str, *, file_hash: str | None = None) -> UploadResult:
        """Check the received bytes and register the object."""
        return self._run(up.confirm_upload(bucket, upload_id, file_hash))

    def upload_file(
        self,
        bucket: str,
        path: str | Path,
        *,
        blob_property: str | None = None,
        content_type: str | None = None,
        filename: str | None = None,
        key_prefix: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        file_hash: str | None = None,
        multipart: bool | None = None,
        multipart_threshold: int = up.MULTIPART_THRESHOLD,
        part_size: int = up.PART_SIZE,
        progress: Callable[[int, int], None] | None = None,
        resume: UploadState | None = None,
    ) -> UploadResult:
        """Upload a file (streamed; in parts above `multipart_threshold`) and confirm it.

        `progress(sent_bytes, total_bytes)` is called as bytes go out; an exception it raises
        aborts the upload (nothing is confirmed). On `UploadFailed`, pass `resume=exc.state`.
        """
        return self._run(
            up.upload_file(
                bucket,
                Path(path),
                blob_property=blob_property,
                content_type=content_type,
                filename=filename,
                key_prefix=key_prefix,
                metadata=metadata,
                file_hash=file_hash,
                multipart=multipart,
                multipart_threshold=multipart_threshold,
                part_size=part_size,
                progress=progress,
                resume=resume,
            )
        )


class Batches(_Group):
    def create(self, bucket: str, object_ids: Sequence[str]) -> Batch:
        """A DRAFT batch of these objects."""
        return self._run(ops.create_batch(bucket, object_ids))

    def add_objects(self, bucket: str, batch_id: str, object_ids: Sequence[str]) -> Batch:
        """Add objects to a DRAFT batch."""
        return self._run(ops.add_batch_objects(bucket, batch_id, object_ids))

    def submit(self, bucket: str, batch_id: str) -> Task:
        """Queue the batch for extraction."""
        return self._run(ops.submit_batch(bucket, batch_id))

    def get(self, bucket: str, batch_id: str) -> Batch:
        """A batch with its status and progress counters."""
        return self._run(ops.get_batch(bucket, batch_id))

    def list(self, bucket: str, *, page_size: int = PAGE) -> Iterator[Batch]:
        """Batches of a bucket, newest first."""
        return self._iterate(ops.batch_pager(bucket, page_size))

    def failures(self, bucket: str, batch_id: str) -> builtins.list[BatchFailure]:
        """The objects that failed, with their error type and message."""
        return self._run(ops.batch_failures(bucket, batch_id))

    def retry(self, bucket: str, batch_id: str) -> Task:
        """Reprocess only the failed objects."""
        return self._run(ops.retry_batch(bucket, batch_id))

    def cancel(self, bucket: str, batch_id: str) -> Batch:
        """Cancel a QUEUED or PROCESSING batch."""
        return self._run(ops.cancel_batch(bucket, batch_id))

    def wait(
        self,
        bucket: str,
        batch_id: str,
        *,
        progress: Callable[[Batch], None] | None = None,
        poll_s: float = 1.0,
        timeout_s: float | None = None,
    ) -> Batch:
        """Poll until the batch ends; `progress(batch)` on each change; `WaitTimeout` if late."""
        return self._run(ops.wait_batch(bucket, batch_id, progress, poll_s, timeout_s))


class Tasks(_Group):
    def get(self, task_id: str) -> Task:
        """An asynchronous operation's status."""
        return self._run(ops.get_task(task_id))


class Collections(_Group):
    def create(
        self,
        name: str,
        bucket_ids: Sequence[str],
        feature_extractor: str | Mapping[str, Any],
        *,
        description: str | None = None,
    ) -> Collection:
        """A collection of documents extracted from these buckets."""
        return self._run(ops.create_collection(name, bucket_ids, feature_extractor, description))

    def get(self, collection: str) -> Collection:
        """A collection by id or name."""
        return self._run(ops.get_collection(collection))

    def list(self, *, page_size: int = PAGE) -> Iterator[Collection]:
        """Collections of the namespace."""
        return self._iterate(ops.collection_pager(page_size))

    def delete(self, collection: str) -> None:
        """Delete a collection and its documents."""
        self._run(ops.delete_collection(collection))

    def documents(
        self, collection: str, *, include_vectors: bool = False, page_size: int = PAGE
    ) -> Iterator[Document]:
        """Documents of a collection, in creation order."""
        return self._iterate(ops.document_pager(collection, include_vectors, page_size))

    def document(
        self, collection: str, document_id: str, *, include_vectors: bool = False
    ) -> Document:
        """One document with its lineage."""
        return self._run(ops.get_document(collection, document_id, include_vectors))


class FeatureExtractors(_Group):
    def list(self) -> list[FeatureExtractor]:
        """The extractor catalogue, with each one's outputs and feature URIs."""
        return self._run(ops.feature_extractors())


class Retrievers(_Group):
    def create(
        self,
        name: str,
        collections: Sequence[str],
        stages: Sequence[Mapping[str, Any]],
        *,
        input_schema: Mapping[str, Any] | None = None,
        description: str | None = None,
    ) -> Retriever:
        """Save a retriever: collections (ids or names) and its stages."""
        return self._run(ops.create_retriever(name, collections, stages, input_schema, description))

    def get(self, retriever: str) -> Retriever:
        """A saved retriever by id or name."""
        return self._run(ops.get_retriever(retriever))

    def list(self, *, page_size: int = PAGE) -> Iterator[Retriever]:
        """Saved retrievers of the namespace."""
        return self._iterate(ops.retriever_pager(page_size))

    def delete(self, retriever: str) -> None:
        """Delete a saved retriever."""
        self._run(ops.delete_retriever(retriever))

    def execute(
        self,
        retriever: str | None = None,
        *,
        query: str | None = None,
        inputs: Mapping[str, Any] | None = None,
        collections: Sequence[str] | None = None,
        stages: Sequence[Mapping[str, Any]] | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> SearchResponse:
        """Run a saved retriever by name, or an inline one given `collections` and `stages`."""
        values = {**(inputs or {}), **({"query": query} if query is not None else {})}
        return self._run(ops.execute(retriever, values, collections, stages, limit, cursor))

    def search(
        self, query: str, *, collections: Sequence[str] = (), limit: int = 10, top_k: int = 50
    ) -> SearchResponse:
        """Search text across the namespace's collections (or the named ones) by meaning."""
        return self._run(ops.text_search(query, collections, limit, top_k))


class Webhooks(_Group):
    def create(
        self,
        url: str,
        event_types: Sequence[str] = ("*",),
        *,
        description: str | None = None,
        secret: str | None = None,
    ) -> Webhook:
        """Subscribe a URL to events; the answer holds the signing secret, shown only once."""
        return self._run(ops.create_webhook(url, event_types, description, secret))

    def get(self, webhook_id: str) -> Webhook:
        """A webhook by id."""
        return self._run(ops.get_webhook(webhook_id))

    def list(self, *, page_size: int = PAGE) -> Iterator[Webhook]:
        """Webhooks of the namespace."""
        return self._iterate(ops.webhook_pager(page_size))

    def delete(self, webhook_id: str) -> None:
        """Unsubscribe."""
        self._run(ops.delete_webhook(webhook_id))


class Client:
    """Assay's HTTP API, blocking; thread-safe (one connection pool shared by all threads).

    `url`, `api_key` and `namespace` default to ASSAY_URL (else http://127.0.0.1:8000),
    ASSAY_API_KEY and ASSAY_NAMESPACE. Use it as a context manager, or call `close()`.
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        namespace: str | None = None,
        *,
        timeout: float | httpx.Timeout = 60.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        self.connection = Connection.resolve(url, api_key, namespace, retry)
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(timeout=timeout, transport=transport)
        self._runner = SyncRunner(self._http, self.connection)
        self.namespaces = Namespaces(self)
        self.buckets = Buckets(self)
        self.objects = Objects(self)
        self.uploads = Uploads(self)
        self.batches = Batches(self)
        self.tasks = Tasks(self)
        self.collections = Collections(self)
        self.feature_extractors = FeatureExtractors(self)
        self.retrievers = Retrievers(self)
        self.webhooks = Webhooks(self)

    @property
    def url(self) -> str:
        """The server's base URL."""
        return self.connection.url

    @property
    def namespace(self) -> str | None:
        """The namespace sent as X-Namespace."""
        return self.connection.namespace

    def with_namespace(self, namespace: str) -> Client:
        """The same client (and connection pool) working in another namespace."""
        c = self.connection
        return Client(c.url, c.api_key, namespace, retry=c.retry, http_client=self._http)

    def run(self, op: Op[T]) -> T:
        """Run an operation from `assay.client.operations`."""
        return self._runner.run(op)

    def close(self) -> None:
        """Close the connection pool (unless it was handed in)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
