"""Every ORM table; importing this package registers them all on `Base.metadata`."""

from assay.models.api_key import ApiKey
from assay.models.batch import Batch, BatchItem
from assay.models.blob_bytes import BlobBytes
from assay.models.blob_claim import BlobClaim
from assay.models.bucket import Bucket
from assay.models.collection import Collection
from assay.models.document import Document, DocumentVector, VectorLogEntry
from assay.models.event import Event
from assay.models.idempotency import IdempotencyRecord
from assay.models.job import Job
from assay.models.namespace import Namespace
from assay.models.object import Blob, Object
from assay.models.retriever import Retriever
from assay.models.sync import Sync, SyncKey
from assay.models.task import Task
from assay.models.upload import Upload
from assay.models.webhook import Webhook, WebhookDelivery

__all__ = [
    "ApiKey",
    "Batch",
    "BatchItem",
    "Blob",
    "BlobBytes",
    "BlobClaim",
    "Bucket",
    "Collection",
    "Document",
    "DocumentVector",
    "Event",
    "IdempotencyRecord",
    "Job",
    "Namespace",
    "Object",
    "Retriever",
    "Sync",
    "SyncKey",
    "Task",
    "Upload",
    "VectorLogEntry",
    "Webhook",
    "WebhookDelivery",
]
