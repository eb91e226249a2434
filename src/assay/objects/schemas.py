from __future__ import annotations

import builtins
import datetime as dt
from typing import Any, ClassVar

from pydantic import AliasChoices, Field, computed_field

from assay.buckets.schemas import PropertyType
from assay.kit.schemas import ItemFailure, RequestSchema, Schema


class BlobIn(RequestSchema):
    """One blob: exactly one of `url`, `content`, `data` (hosted alias) or `upload_id`."""

    property: str = Field(min_length=1, max_length=100)
    type: PropertyType
    url: str | None = Field(default=None, max_length=4096)
    content: Any = None
    data: Any = None
    upload_id: str | None = Field(default=None, max_length=64)
    metadata: dict[str, Any] | None = None
    key_prefix: str | None = Field(default=None, max_length=1024)
    filename: str | None = Field(default=None, max_length=1024)
    canonicalize_source: bool | None = None
    force_remirror: bool | None = None

    unimplemented: ClassVar[frozenset[str]] = frozenset({"canonicalize_source", "force_remirror"})
    hosted_only: ClassVar[frozenset[str]] = frozenset({"checksum"})


class ObjectCreate(RequestSchema):
    key_prefix: str | None = Field(default=None, max_length=1024, examples=["/products"])
    metadata: dict[str, Any] = Field(default_factory=dict)
    blobs: list[BlobIn] = Field(default_factory=list, max_length=100)
    skip_duplicates: bool | None = None
    canonicalize_source: bool | None = None
    force_remirror: bool | None = None

    unimplemented: ClassVar[frozenset[str]] = frozenset(
        {"skip_duplicates", "canonicalize_source", "force_remirror"}
    )
    hosted_only: ClassVar[frozenset[str]] = frozenset({"edges", "idempotency_key"})

    def all_warnings(self) -> list[str]:
        out = self.warnings() if _may_warn(self) else []
        for i, blob in enumerate(self.blobs):
            if _may_warn(blob):
                out += [f"blobs[{i}]: {w}" for w in blob.warnings()]
        return out


def _may_warn(model: RequestSchema) -> bool:
    """Whether `warnings()` can say anything (a cheap test: registration asks for every
    object and blob, and almost none set a field that is not implemented)."""
    if not model.unimplemented.isdisjoint(model.model_fields_set):
        return True
    # `_ignored` read from pydantic's private store: the attribute lookup is a slow fallback.
    private = model.__pydantic_private__ or {}
    return bool(private.get("_ignored"))


class ObjectBatchCreate(RequestSchema):
    objects: list[ObjectCreate] = Field(min_length=1, max_length=100)


class BlobDetails(Schema):
    filename: str | None = None
    size_bytes: int
    mime_type: str
    hash: str


# Read from ORM rows (`metadata_`, `source_url`) as well as from plain column dicts.
_METADATA = AliasChoices("metadata_", "metadata")


class BlobOut(Schema):
    blob_id: str
    property: str
    type: str
    size_bytes: int
    content_type: str
    sha256: str
    url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("source_url", "url"),
        description="the source URL, for URL blobs",
    )
    key_prefix: str | None = None
    filename: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict, validation_alias=_METADATA)

    # `builtins.`: a field of this class is named "property"
    @computed_field  # type: ignore[prop-decorator]
    @builtins.property
    def details(self) -> BlobDetails:
        """The hosted product's spelling of the same facts."""
        return BlobDetails(
            filename=self.filename,
            size_bytes=self.size_bytes,
            mime_type=self.content_type,
            hash=self.sha256,
        )


class ObjectOut(Schema):
    object_id: str
    bucket_id: str
    key_prefix: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict, validation_alias=_METADATA)
    properties: dict[str, Any] = Field(default_factory=dict)
    blobs: list[BlobOut]
    status: str
    created_at: dt.datetime
    updated_at: dt.datetime
    warnings: list[str] = Field(default_factory=list)


class ObjectBatchOut(Schema):
    succeeded: list[ObjectOut]
    failed: list[ItemFailure]
    succeeded_count: int
    failed_count: int

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total_requested(self) -> int:
        return self.succeeded_count + self.failed_count
