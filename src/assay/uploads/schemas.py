from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from pydantic import Field, field_validator

from assay.buckets.schemas import PropertyType
from assay.kit import content_types
from assay.kit.schemas import RequestSchema, Schema

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


class UploadConfirm(RequestSchema):
    file_hash: str | None = Field(default=None, pattern=SHA256_HEX)
    etag: str | None = None

    unimplemented: ClassVar[frozenset[str]] = frozenset({"etag"})


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
    status: str
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
    status: str
    object_id: str | None
    file_hash: str | None
    duplicate: bool = False


class UploadBatchFailure(Schema):
    index: int
    error: dict[str, Any]


class UploadBatchOut(Schema):
    succeeded: list[UploadOut]
    failed: list[UploadBatchFailure]
    succeeded_count: int
    failed_count: int
