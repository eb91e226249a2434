from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar, Literal

from pydantic import Field

from assay.kit.schemas import ListRequest, RequestSchema, Schema
from assay.namespaces.schemas import NAME_PATTERN


class CollectionSource(RequestSchema):
    type: Literal["bucket"] = "bucket"
    bucket_ids: list[str] = Field(min_length=1, max_length=100)


class CollectionExtractor(RequestSchema):
    feature_extractor_name: str = Field(min_length=1, max_length=100)
    version: str = Field(default="v1", min_length=1, max_length=20)
    params: dict[str, Any] | None = None
    input_mappings: dict[str, Any] | None = None


class CollectionCreate(RequestSchema):
    collection_name: str = Field(pattern=NAME_PATTERN)
    description: str | None = Field(default=None, max_length=10_000)
    source: CollectionSource
    feature_extractor: CollectionExtractor
    hosted_only: ClassVar[frozenset[str]] = frozenset(
        {
            "alert_applications",
            "cluster_applications",
            "enabled",
            "input_schema",
            "metadata",
            "retriever_enrichments",
            "schedule",
            "taxonomy_applications",
        }
    )


class CollectionOut(Schema):
    collection_id: str
    collection_name: str
    description: str | None = None
    source: dict[str, Any]
    feature_extractor: dict[str, Any]
    feature_uris: list[str]
    is_default: bool
    document_count: int = 0
    created_at: dt.datetime


class CollectionDeleted(Schema):
    collection_id: str
    deleted: bool = True


class DocumentSource(Schema):
    object_id: str
    blob_id: str
    property: str
    segment: dict[str, Any] | None = None


class DocumentOut(Schema):
    document_id: str
    collection_id: str
    source: DocumentSource
    content: dict[str, Any]
    features: dict[str, list[float]] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    extractor: str
    created_at: dt.datetime


class DocumentListRequest(ListRequest):
    """`POST .../documents/list`: the list body, and vectors on request."""

    return_vectors: bool = False
    hosted_only: ClassVar[frozenset[str]] = ListRequest.hosted_only - {"return_vectors"}
