from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from pydantic import Field

from assay.kit.schemas import RequestSchema, Schema

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$"


class ExtractorRef(RequestSchema):
    feature_extractor_name: str = Field(min_length=1, max_length=100)
    version: str = Field(default="v1", min_length=1, max_length=20)
    params: dict[str, Any] | None = None


class NamespaceCreate(RequestSchema):
    namespace_name: str = Field(pattern=NAME_PATTERN, examples=["production"])
    description: str | None = Field(default=None, max_length=10_000)
    feature_extractors: list[ExtractorRef] = Field(default_factory=list, max_length=20)
    namespace_type: Any = None
    payload_indexes: Any = None
    auto_create_indexes: Any = None
    infrastructure: Any = None

    unimplemented: ClassVar[frozenset[str]] = frozenset(
        {"namespace_type", "payload_indexes", "auto_create_indexes", "infrastructure"}
    )
    hosted_only: ClassVar[frozenset[str]] = frozenset(
        {
            "adaptive_indexing",
            "cost_cap_override",
            "features",
            "mode",
            "namespace_id",
            "scope",
            "spend_budget",
            "tiering",
            "trusted_issuers",
            "ttl_seconds",
            "vector_configs",
        }
    )


class NamespacePatch(RequestSchema):
    description: str | None = Field(default=None, max_length=10_000)
    hosted_only: ClassVar[frozenset[str]] = frozenset(
        {"auto_create_indexes", "infrastructure", "payload_indexes"}
    )


class ExtractorOut(Schema):
    feature_extractor_name: str
    version: str
    params: dict[str, Any] | None = None
    feature_extractor_id: str


class NamespaceOut(Schema):
    namespace_id: str
    namespace_name: str
    namespace_type: str = "standard"
    description: str | None = None
    feature_extractors: list[ExtractorOut]
    bucket_count: int = 0
    object_count: int = 0
    collection_count: int = 0
    document_count: int = 0
    created_at: dt.datetime
    updated_at: dt.datetime
    warnings: list[str] = Field(default_factory=list)


class NamespaceDeleted(Schema):
    namespace_id: str
    deleted: bool = True
