from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, Field, computed_field, field_validator

from assay.buckets.schemas import PropertyType
from assay.kit import content_types
from assay.kit.schemas import ItemFailure, Page, RequestSchema, Schema

SHA256_HEX = r"^[0-9a-fA-F]{64}$"
MIN_PART = 5 * 1024 * 1024
MAX_FILE_BYTES = 5 * 1024**4  # S3's largest object


class UploadCreate(RequestSchema):
    filename: str = Field(min_length=1, max_length=1024, examples=["photo.jpg"])
    content_type: str = Field(default="application/octet-stream", max_length=200)
    file_size_bytes: int | None = Field(default=None, ge=0, le=MAX_FILE_BYTES)
    file_hash: str | None = Field(default=None, pattern=SHA256_HEX)
    blob_property: str | None = Field(default=None, max_length=100)
    blob_type: PropertyType | None = None
    object_metadata: dict[str, Any] = Field(default_factory=dict)
    key_prefix: str | None = Field(default=None, max_length=1024)
    presigned_url_expiration: int = Field(default=3600, ge=60, le=86400)
    multipart: bool = False
    part_size_bytes: int = Field(default=16 * 1024 * 1024, ge=MIN_PART, le=5 * 1024**3)
    skip_duplicates: bool = True
    create_object_on_confirm: bool = True
    metadata: dict[str, Any] | None = None

    unimplemented: ClassVar[frozenset[str]] = frozenset({"metadata"})

    @field_validator("content_type")
    @classmethod
    def _normalised(cls, value: str) -> str:
        normal = content_types.normalize(value)
        if normal is None:
            raise ValueError("not a content type: expected type/subtype, e.g. image/jpeg")
        return normal


class UploadBatchCreate(RequestSchema):
    uploads: list[UploadCreate] = Field(min_length=1, max_length=100)
    hosted_only: ClassVar[frozenset[str]] = frozenset({"shared_metadata", "shared_object_metadata"})


class UploadConfirm(RequestSchema):
    file_hash: str | None = Field(default=None, pattern=SHA256_HEX)
    etag: str | None = None

    unimplemented: ClassVar[frozenset[str]] = frozenset({"etag"})
    hosted_only: ClassVar[frozenset[str]] = frozenset({"auto_submit_batch", "file_size_bytes"})


# How an upload's stored states are spelled on the wire: the hosted product's task statuses
# (its SDK refuses any other value).
_WIRE_STATUS = {"UPLOADED": "IN_PROGRESS", "CONFIRMED": "COMPLETED"}


def wire_status(value: str) -> str:
    """An upload's stored status as the API spells it."""
    return _WIRE_STATUS.get(value, value)


WireStatus = Annotated[str, AfterValidator(wire_status)]


class PartUrl(Schema):
    part_number: int
    presigned_url: str


class UploadOut(Schema):
    upload_id: str
    bucket_id: str
    filename: str
    content_type: str
    file_size_bytes: int | None = None
    file_hash: str | None = None
    blob_property: str
    status: WireStatus
    presigned_url: str | None = None
    parts: list[PartUrl] | None = None
    presigned_url_expiration: int
    s3_key: str
    create_object_on_confirm: bool = True
    object_id: str | None = None
    duplicate: bool = False
    created_at: dt.datetime
    expires_at: dt.datetime
    warnings: list[str] = Field(default_factory=list)


class ConfirmOut(Schema):
    upload_id: str
    status: WireStatus
    object_id: str | None
    file_hash: str | None
    duplicate: bool = False


class UploadBatchOut(Schema):
    succeeded: list[UploadOut]
    failed: list[ItemFailure]
    succeeded_count: int
    failed_count: int

    @computed_field  # type: ignore[prop-decorator]
    @property
    def uploads(self) -> list[UploadOut]:
        """The hosted product's name for the uploads made."""
        return self.succeeded

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total(self) -> int:
        return self.succeeded_count


class UploadStats(Schema):
    total_uploads: int
    total_size_bytes: int
    uploads_by_status: dict[str, int]
    avg_file_size_bytes: float
    unique_buckets: int


class UploadPage(Page[UploadOut]):
    """A page of uploads with the bucket's upload figures (the hosted list answers `stats`)."""

    stats: UploadStats
