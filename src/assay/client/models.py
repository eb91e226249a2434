"""What the client returns: typed views of Assay's answers.

Every model keeps fields it does not know (`extra="allow"`, readable as attributes and in
`model_dump()`), so a newer server adding fields never breaks an older client; fields a
server may leave out have defaults.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

TERMINAL_BATCH_STATUSES = frozenset({"COMPLETED", "FAILED", "CANCELED"})
BLOB_TYPES = frozenset({"text", "image", "audio", "video", "json", "binary", "pdf", "excel"})


class Model(BaseModel):
    """Base of every answer model: unknown fields are kept, not refused."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class ExtractorRef(Model):
    feature_extractor_name: str
    version: str = "v1"
    params: dict[str, Any] | None = None
    feature_extractor_id: str | None = None


class Namespace(Model):
    namespace_id: str
    namespace_name: str
    description: str | None = None
    feature_extractors: list[ExtractorRef] = Field(default_factory=list)
    bucket_count: int = 0
    object_count: int = 0
    collection_count: int = 0
    document_count: int = 0
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    warnings: list[str] = Field(default_factory=list)


class Bucket(Model):
    bucket_id: str
    bucket_name: str
    description: str | None = None
    bucket_schema: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    object_count: int = 0
    total_size_bytes: int = 0
    status: str | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    warnings: list[str] = Field(default_factory=list)

    @property
    def property_types(self) -> dict[str, str]:
        """Each schema property's type, by property name."""
        props = self.bucket_schema.get("properties") or {}
        return {name: str((spec or {}).get("type", "")).lower() for name, spec in props.items()}

    @property
    def file_properties(self) -> dict[str, str]:
        """The properties that hold files (blob types), with their types."""
        return {k: v for k, v in self.property_types.items() if v in BLOB_TYPES}


class Blob(Model):
    blob_id: str
    property: str
    type: str
    size_bytes: int = 0
    content_type: str = ""
    sha256: str = ""
    url: str | None = None
    key_prefix: str | None = None
    filename: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class Object(Model):
    object_id: str
    bucket_id: str | None = None
    key_prefix: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    blobs: list[Blob] = Field(default_factory=list)
    status: str | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    warnings: list[str] = Field(default_factory=list)

    @property
    def key(self) -> str:
        """`key_prefix/filename` of its first named blob, else the object id."""
        name = next((b.filename for b in self.blobs if b.filename), None)
        if name is None:
            return self.object_id
        prefix = (self.key_prefix or "").rstrip("/")
        return f"{prefix}/{name}" if prefix else name


class PartUrl(Model):
    part_number: int
    presigned_url: str


class Upload(Model):
    """A direct upload: where to PUT the bytes (`presigned_url`, or one URL per part)."""

    upload_id: str
    bucket_id: str | None = None
    filename: str = ""
    content_type: str = ""
    file_size_bytes: int | None = None
    file_hash: str | None = None
    blob_property: str | None = None
    status: str = "PENDING"
    presigned_url: str | None = None
    parts: list[PartUrl] | None = None
    object_id: str | None = None
    duplicate: bool = False
    created_at: dt.datetime | None = None
    expires_at: dt.datetime | None = None
    warnings: list[str] = Field(default_factory=list)


class UploadResult(Model):
    """A confirmed upload: the object holding the bytes (an existing one when `duplicate`)."""

    upload_id: str
    status: str
    object_id: str | None = None
    file_hash: str | None = None
    duplicate: bool = False


@dataclass
class UploadState:
    """How far an upload got: handed back by `UploadFailed` to resume it with the rest."""

    upload: Upload
    file_hash: str
    part_size: int
    sent_parts: set[int] = field(default_factory=set)


class Progress(Model):
    total: int = 0
    pending: int = 0
    processing: int = 0
    succeeded: int = 0
    failed: int = 0
    percent: float = 0.0


class Batch(Model):
    batch_id: str
    bucket_id: str | None = None
    status: str
    object_ids: list[str] = Field(default_factory=list)
    task_id: str | None = None
    progress: Progress = Field(default_factory=Progress)
    error_summary: dict[str, int] = Field(default_factory=dict)
    error: str | None = None
    collections: list[str] = Field(default_factory=list)
    created_at: dt.datetime | None = None
    started_at: dt.datetime | None = None
    completed_at: dt.datetime | None = None

    @property
    def done(self) -> bool:
        """True once the batch reached COMPLETED, FAILED or CANCELED."""
        return self.status in TERMINAL_BATCH_STATUSES


class BatchFailure(Model):
    object_id: str
    error_type: str | None = None
    message: str | None = None
    attempts: int = 0


class Task(Model):
    task_id: str
    task_type: str = ""
    status: str
    progress: Progress | None = None
    error: str | None = None
    result: dict[str, Any] = Field(default_factory=dict)
    estimated_wait_minutes: int | None = None
    batch_id: str | None = None


class Collection(Model):
    collection_id: str
    collection_name: str
    description: str | None = None
    source: dict[str, Any] = Field(default_factory=dict)
    feature_extractor: dict[str, Any] = Field(default_factory=dict)
    feature_uris: list[str] = Field(default_factory=list)
    is_default: bool = False
    document_count: int = 0
    created_at: dt.datetime | None = None

    @property
    def bucket_ids(self) -> list[str]:
        """The buckets it draws objects from."""
        return [str(b) for b in self.source.get("bucket_ids") or []]


class DocumentSource(Model):
    object_id: str
    blob_id: str | None = None
    property: str | None = None
    segment: dict[str, Any] | None = None


def _text_of(content: dict[str, Any]) -> str:
    for key in ("text", "transcript", "ocr_text"):
        value = content.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return ""


class Document(Model):
    document_id: str
    collection_id: str
    source: DocumentSource
    content: dict[str, Any] = Field(default_factory=dict)
    features: dict[str, list[float]] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    extractor: str | None = None
    created_at: dt.datetime | None = None

    @property
    def text(self) -> str:
        """Its text: chunk text, else transcript, else OCR text."""
        return _text_of(self.content)


class SearchResult(Model):
    document_id: str
    collection_id: str | None = None
    score: float
    source: DocumentSource
    content: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def text(self) -> str:
        """Its text: chunk text, else transcript, else OCR text."""
        return _text_of(self.content)


class StageStat(Model):
    stage_name: str
    stage_id: str | None = None
    input_count: int = 0
    output_count: int = 0
    duration_ms: float = 0.0


class SearchResponse(Model):
    results: list[SearchResult] = Field(default_factory=list)
    stage_stats: list[StageStat] = Field(default_factory=list)
    pagination: dict[str, Any] = Field(default_factory=dict)
    duration_ms: float | None = None
    warnings: list[str] = Field(default_factory=list)

    @property
    def next_cursor(self) -> str | None:
        """The cursor of the next page of results, or None on the last."""
        value = self.pagination.get("next_cursor")
        return str(value) if value else None


class FeatureOutput(Model):
    name: str
    feature_uri: str
    type: str
    dimensions: int | None = None
    description: str = ""


class FeatureExtractor(Model):
    feature_extractor_name: str
    version: str
    description: str = ""
    input_types: list[str] = Field(default_factory=list)
    outputs: list[FeatureOutput] = Field(default_factory=list)
    params_schema: dict[str, Any] = Field(default_factory=dict)


class Retriever(Model):
    retriever_id: str
    retriever_name: str
    description: str | None = None
    collection_ids: list[str] = Field(default_factory=list)
    input_schema: dict[str, Any] = Field(default_factory=dict)
    stages: list[dict[str, Any]] = Field(default_factory=list)
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    warnings: list[str] = Field(default_factory=list)


class Webhook(Model):
    webhook_id: str
    webhook_name: str | None = None
    url: str
    event_types: list[str] = Field(default_factory=list)
    description: str | None = None
    is_active: bool = True
    secret: str | None = Field(default=None, description="only in the creation answer")
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
