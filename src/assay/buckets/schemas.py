from __future__ import annotations

import datetime as dt
import re
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from assay.kit.schemas import RequestSchema, Schema
from assay.namespaces.schemas import NAME_PATTERN

BLOB_TYPES = frozenset({"text", "image", "audio", "video", "json", "binary", "pdf", "excel"})
SCALAR_TYPES = frozenset(
    {"string", "number", "integer", "float", "boolean", "object", "array", "date", "datetime"}
)
PropertyType = Literal[
    "text", "image", "audio", "video", "json", "binary", "pdf", "excel",
    "string", "number", "integer", "float", "boolean", "object", "array", "date", "datetime",
]  # fmt: skip
PROPERTY_NAME = r"^[A-Za-z_][A-Za-z0-9_\-]{0,99}$"


class PropertySpec(RequestSchema):
    type: PropertyType
    required: bool = False
    description: str | None = Field(default=None, max_length=2000)
    default: Any = None
    items: PropertySpec | None = None
    properties: dict[str, PropertySpec] | None = None
    examples: list[Any] | None = None
    enum: list[Any] | None = Field(default=None, max_length=1000)

    @field_validator("type", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


class BucketSchema(RequestSchema):
    properties: dict[str, PropertySpec] = Field(max_length=200)

    @field_validator("properties")
    @classmethod
    def _names(cls, value: dict[str, PropertySpec]) -> dict[str, PropertySpec]:
        bad = [k for k in value if not re.match(PROPERTY_NAME, k)]
        if bad:
            raise ValueError(f"invalid property name(s) {bad}: use letters, digits, '_' and '-'")
        return value


class BucketCreate(RequestSchema):
    bucket_name: str = Field(pattern=NAME_PATTERN, examples=["product-catalog"])
    description: str | None = Field(default=None, max_length=10_000)
    bucket_schema: BucketSchema
    metadata: dict[str, Any] = Field(default_factory=dict)
    unique_key: Any = None

    unimplemented: ClassVar[frozenset[str]] = frozenset({"unique_key"})


class BucketPatch(RequestSchema):
    bucket_name: str | None = Field(default=None, pattern=NAME_PATTERN)
    description: str | None = Field(default=None, max_length=10_000)
    metadata: dict[str, Any] | None = None


class BucketOut(Schema):
    bucket_id: str
    bucket_name: str
    description: str | None = None
    bucket_schema: dict[str, Any]
    metadata: dict[str, Any] = Field(default_factory=dict, validation_alias="metadata_")
    object_count: int
    total_size_bytes: int
    status: str = "ACTIVE"
    created_at: dt.datetime
    updated_at: dt.datetime
    warnings: list[str] = Field(default_factory=list)


class BucketDeleted(Schema):
    bucket_id: str
    deleted: bool = True
