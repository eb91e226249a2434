"""Assay's Python client: `Client` (blocking) and `AsyncClient` (async), on httpx.

from assay.client import Client

with Client("http://127.0.0.1:8000", api_key="sk_...", namespace="production") as c:
    up = c.uploads.upload_file("product-catalog", "photo.jpg")
    batch = c.batches.create("product-catalog", [up.object_id])
    c.batches.submit("product-catalog", batch.batch_id)
    c.batches.wait("product-catalog", batch.batch_id, progress=print)
    for hit in c.retrievers.search("wireless headphones").results:
        print(hit.score, hit.source.object_id, hit.text)
"""

from assay.client.aio import AsyncClient
from assay.client.errors import (
    AlreadyExists,
    AssayConnectionError,
    AssayError,
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    Unauthorized,
    UploadFailed,
    ValidationError,
    WaitTimeout,
)
from assay.client.models import (
    Batch,
    BatchFailure,
    Blob,
    Bucket,
    Collection,
    Document,
    FeatureExtractor,
    Namespace,
    Object,
    Progress,
    Retriever,
    SearchResponse,
    SearchResult,
    Task,
    Upload,
    UploadResult,
    UploadState,
    Webhook,
)
from assay.client.sync import Client
from assay.client.transport import RetryPolicy

__all__ = [
    "AlreadyExists",
    "AssayConnectionError",
    "AssayError",
    "AsyncClient",
    "BadRequest",
    "Batch",
    "BatchFailure",
    "Blob",
    "Bucket",
    "Client",
    "Collection",
    "Conflict",
    "Document",
    "FeatureExtractor",
    "Forbidden",
    "Namespace",
    "NotFound",
    "Object",
    "PayloadTooLarge",
    "Progress",
    "RateLimited",
    "Retriever",
    "RetryPolicy",
    "SearchResponse",
    "SearchResult",
    "ServerError",
    "Task",
    "Unauthorized",
    "Upload",
    "UploadFailed",
    "UploadResult",
    "UploadState",
    "ValidationError",
    "WaitTimeout",
    "Webhook",
]
