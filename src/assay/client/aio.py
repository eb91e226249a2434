"""`AsyncClient`: the same surface as `Client`, for asyncio (and trio, through anyio).

Every method runs the same operation as its `Client` twin; lists are async iterators
(`async for`), everything else is awaited.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
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
from assay.client.transport import AsyncRunner, Connection, Op, RetryPolicy

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
PAGE = 100


class _Group:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def _run(self, op: Op[T]) -> T:
        return await self._client.run(op)

    async def _iterate(self, pager: ops.Pager[M]) -> AsyncIterator[M]:
        cursor: str | None = None
        while True:
            items, cursor = await self._run(pager.page(cursor))
            for item in items:
                yield item
            if cursor is None:
                return


class Namespaces(_Group):
    async def create(
        self,
        name: str,
        feature_extractors: Iterable[str | Mapping[str, Any]] = (),
        *,
        description: str | None = None,
    ) -> Namespace:
        """A namespace; extractors as `"text_extractor"`, `"name@v1"` or full mappings."""
        return await self._run(ops.create_namespace(name, feature_extractors, description))

    async def get(self, namespace: str) -> Namespace:
        """A namespace by id or name."""
        return await self._run(ops.get_namespace(namespace))

    def list(self, *, page_size: int = PAGE) -> AsyncIterator[Namespace]:
        """Every namespace the key may see."""
        return self._iterate(ops.namespace_pager(page_size))

    async def delete(self, namespace: str) -> None:
        """Delete a namespace and everything in it."""
        await self._run(ops.delete_namespace(namespace))


class Buckets(_Group):
    async def create(
        self,
        name: str,
        schema: Mapping[str, Any] | None = None,
        *,
        properties: Mapping[str, str | Mapping[str, Any]] | None = None,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Bucket:
        """A bucket, from a full `bucket_schema` or `properties={"name": "type"}`."""
        return await self._run(ops.create_bucket(name, schema, properties, description, metadata))

    async def get(self, bucket: str) -> Bucket:
        """A bucket by id or name, with its schema and counts."""
        return await self._run(ops.get_bucket(bucket))

    def list(self, *, page_size: int = PAGE) -> AsyncIterator[Bucket]:
        """Every bucket of the namespace."""
        return self._iterate(ops.bucket_pager(page_size))

    async def delete(self, bucket: str) -> None:
        """Delete a bucket and its objects."""
        await self._run(ops.delete_bucket(bucket))


class Objects(_Group):
    async def create(
        self,
        bucket: str,
        blobs: Sequence[Mapping[str, Any]],
        *,
        key_prefix: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Object:
        """Register an object; each blob `{property, type, url | content | data | upload_id}`."""
        return await self._run(ops.create_object(bucket, blobs, key_prefix, metadata))

    async def get(self, bucket: str, object_id: str) -> Object:
        """One object with its blobs."""
        return await self._run(ops.get_object(bucket, object_id))

    def list(
        self,
        bucket: str,
        *,
        filters: Mapping[str, Any] | None = None,
        sort: Mapping[str, Any] | None = None,
        page_size: int = PAGE,
    ) -> AsyncIterator[Object]:
        """Objects of a bucket, optionally filtered: `{"AND": [{field, operator, value}]}`."""
        return self._iterate(ops.object_pager(bucket, filters, sort, page_size))

    async def delete(self, bucket: str, object_id: str) -> None:
        """Delete an object and its documents."""
        await self._run(ops.delete_object(bucket, object_id))


class Uploads(_Group):
    async def create(
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
        return await self._run(up.create_upload(bucket, body))

    async def get(self, bucket: str, upload_id: str) -> Upload:
        """An upload and its status."""
        return await self._run(up.get_upload(bucket, upload_id))

    async def confirm(
        self, bucket: str, upload_id: str, *, file_hash: str | None = None
    ) -> UploadResult:
        """Check the received bytes and register the object."""
        return await self._run(up.confirm_upload(bucket, upload_id, file_hash))

    async def upload_file(
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
        return await self._run(
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
    async def create(self, bucket: str, object_ids: Sequence[str]) -> Batch:
        """A DRAFT batch of these objects."""
        return await self._run(ops.create_batch(bucket, object_ids))

    async def add_objects(self, bucket: str, batch_id: str, object_ids: Sequence[str]) -> Batch:
        """Add objects to a DRAFT batch."""
        return await self._run(ops.add_batch_objects(bucket, batch_id, object_ids))

    async def submit(self, bucket: str, batch_id: str) -> Task:
        """Queue the batch for extraction."""
        return await self._run(ops.submit_batch(bucket, batch_id))

    async def get(self, bucket: str, batch_id: str) -> Batch:
        """A batch with its status and progress counters."""
        return await self._run(ops.get_batch(bucket, batch_id))

    def list(self, bucket: str, *, page_size: int = PAGE) -> AsyncIterator[Batch]:
        """Batches of a bucket, newest first."""
        return self._iterate(ops.batch_pager(bucket, page_size))

    async def failures(self, bucket: str, batch_id: str) -> builtins.list[BatchFailure]:
        """The objects that failed, with their error type and message."""
        return await self._run(ops.batch_failures(bucket, batch_id))

    async def retry(self, bucket: str, batch_id: str) -> Task:
        """Reprocess only the failed objects."""
        return await self._run(ops.retry_batch(bucket, batch_id))

    async def cancel(self, bucket: str, batch_id: str) -> Batch:
        """Cancel a QUEUED or PROCESSING batch."""
        return await self._run(ops.cancel_batch(bucket, batch_id))

    async def wait(
        self,
        bucket: str,
        batch_id: str,
        *,
        progress: Callable[[Batch], None] | None = None,
        poll_s: float = 1.0,
        timeout_s: float | None = None,
    ) -> Batch:
        """Poll until the batch ends; `progress(batch)` on each change; `WaitTimeout` if late."""
        return await self._run(ops.wait_batch(bucket, batch_id, progress, poll_s, timeout_s))


class Tasks(_Group):
    async def get(self, task_id: str) -> Task:
        """An asynchronous operation's status."""
        return await self._run(ops.get_task(task_id))


class Collections(_Group):
    async def create(
        self,
        name: str,
        bucket_ids: Sequence[str],
        feature_extractor: str | Mapping[str, Any],
        *,
        description: str | None = None,
    ) -> Collection:
        """A collection of documents extracted from these buckets."""
        return await self._run(
            ops.create_collection(name, bucket_ids, feature_extractor, description)
        )

    async def get(self, collection: str) -> Collection:
        """A collection by id or name."""
        return await self._run(ops.get_collection(collection))

    def list(self, *, page_size: int = PAGE) -> AsyncIterator[Collection]:
        """Collections of the namespace."""
        return self._iterate(ops.collection_pager(page_size))

    async def delete(self, collection: str) -> None:
        """Delete a collection and its documents."""
        await self._run(ops.delete_collection(collection))

    def documents(
        self, collection: str, *, include_vectors: bool = False, page_size: int = PAGE
    ) -> AsyncIterator[Document]:
        """Documents of a collection, in creation order."""
        return self._iterate(ops.document_pager(collection, include_vectors, page_size))

    async def document(
        self, collection: str, document_id: str, *, include_vectors: bool = False
    ) -> Document:
        """One document with its lineage."""
        return await self._run(ops.get_document(collection, document_id, include_vectors))


class FeatureExtractors(_Group):
    async def list(self) -> list[FeatureExtractor]:
        """The extractor catalogue, with each one's outputs and feature URIs."""
        return await self._run(ops.feature_extractors())


class Retrievers(_Group):
    async def create(
        self,
        name: str,
        collections: Sequence[str],
        stages: Sequence[Mapping[str, Any]],
        *,
        input_schema: Mapping[str, Any] | None = None,
        description: str | None = None,
    ) -> Retriever:
        """Save a retriever: collections (ids or names) and its stages."""
        return await self._run(
            ops.create_retriever(name, collections, stages, input_schema, description)
        )

    async def get(self, retriever: str) -> Retriever:
        """A saved retriever by id or name."""
        return await self._run(ops.get_retriever(retriever))

    def list(self, *, page_size: int = PAGE) -> AsyncIterator[Retriever]:
        """Saved retrievers of the namespace."""
        return self._iterate(ops.retriever_pager(page_size))

    async def delete(self, retriever: str) -> None:
        """Delete a saved retriever."""
        await self._run(ops.delete_retriever(retriever))

    async def execute(
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
        return await self._run(ops.execute(retriever, values, collections, stages, limit, cursor))

    async def search(
        self, query: str, *, collections: Sequence[str] = (), limit: int = 10, top_k: int = 50
    ) -> SearchResponse:
        """Search text across the namespace's collections (or the named ones) by meaning."""
        return await self._run(ops.text_search(query, collections, limit, top_k))


class Webhooks(_Group):
    async def create(
        self,
        url: str,
        event_types: Sequence[str] = ("*",),
        *,
        description: str | None = None,
        secret: str | None = None,
    ) -> Webhook:
        """Subscribe a URL to events; the answer holds the signing secret, shown only once."""
        return await self._run(ops.create_webhook(url, event_types, description, secret))

    async def get(self, webhook_id: str) -> Webhook:
        """A webhook by id."""
        return await self._run(ops.get_webhook(webhook_id))

    def list(self, *, page_size: int = PAGE) -> AsyncIterator[Webhook]:
        """Webhooks of the namespace."""
        return self._iterate(ops.webhook_pager(page_size))

    async def delete(self, webhook_id: str) -> None:
        """Unsubscribe."""
        await self._run(ops.delete_webhook(webhook_id))


class AsyncClient:
    """Assay's HTTP API for async code; one connection pool shared by all tasks.

    `url`, `api_key` and `namespace` default to ASSAY_URL (else http://127.0.0.1:8000),
    ASSAY_API_KEY and ASSAY_NAMESPACE. Use it as an async context manager, or await `close()`.
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        namespace: str | None = None,
        *,
        timeout: float | httpx.Timeout = 60.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.connection = Connection.resolve(url, api_key, namespace, retry)
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=timeout, transport=transport)
        self._runner = AsyncRunner(self._http, self.connection)
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

    def with_namespace(self, namespace: str) -> AsyncClient:
        """The same client (and connection pool) working in another namespace."""
        c = self.connection
        return AsyncClient(c.url, c.api_key, namespace, retry=c.retry, http_client=self._http)

    async def run(self, op: Op[T]) -> T:
        """Run an operation from `assay.client.operations`."""
        return await self._runner.run(op)

    async def close(self) -> None:
        """Close the connection pool (unless it was handed in)."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
