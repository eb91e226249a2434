"""Every ORM table; importing this package registers them all on `Base.metadata`."""

from assay.models.api_key import ApiKey
from assay.models.blob_bytes import BlobBytes
from assay.models.bucket import Bucket
from assay.models.idempotency import IdempotencyRecord
from assay.models.namespace import Namespace
from assay.models.object import Blob, Object

__all__ = ["ApiKey", "Blob", "BlobBytes", "Bucket", "IdempotencyRecord", "Namespace", "Object"]
