from __future__ import annotations

import datetime as dt
import re
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from assay.kit.fetch import FetchError, checked_url
from assay.kit.schemas import ListRequest, Page, RequestSchema, Schema

MIME_PATTERN = re.compile(r"^[a-z0-9*][a-z0-9.+\-*]*/[a-z0-9*][a-z0-9.+\-*]*$")
LAST_ERRORS_MAX = 20  # how many recent errors a sync keeps for its readers

SyncMode = Literal["one_time", "continuous"]
# The hosted product's names for the same two modes.
_MODE_ALIASES = {"initial_only": "one_time", "scheduled": "continuous"}


class S3Credentials(RequestSchema):
    access_key_id: str = Field(min_length=1, max_length=256)
    secret_access_key: str = Field(min_length=1, max_length=1024)
    session_token: str | None = Field(default=None, min_length=1, max_length=4096)


class SyncSource(RequestSchema):
    provider: Literal["s3"] = "s3"
    bucket: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]{1,254}$", examples=["my-assets"])
    prefix: str = Field(default="", max_length=1024, examples=["images/"])
    endpoint_url: str | None = Field(
        default=None, max_length=2048, description="an S3-compatible endpoint (http or https)"
    )
    region: str | None = Field(default=None, pattern=r"^[a-z0-9\-]{1,64}$")
    credentials: S3Credentials | None = None

    @field_validator("endpoint_url")
    @classmethod
    def _http_only(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(checked_url(value)).rstrip("/")
        except FetchError as exc:
            raise ValueError(exc.message) from exc


class FileFilters(RequestSchema):
    """Globs (fnmatch, case-sensitive) over each key relative to the prefix; `*` spans `/`."""

    include: list[str] | None = Field(default=None, max_length=100, examples=[["*.png"]])
    exclude: list[str] | None = Field(default=None, max_length=100, examples=[["tmp/*"]])

    @field_validator("include", "exclude")
    @classmethod
    def _sane(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any(not p or len(p) > 1024 for p in value):
            raise ValueError("each glob must be 1 to 1024 characters")
        return value


class SyncCreate(RequestSchema):
    source: SyncSource
    sync_mode: SyncMode = "one_time"
    polling_interval_seconds: int = Field(default=300, ge=10, le=7 * 24 * 3600)
    file_filters: FileFilters | None = None
    property_mapping: dict[str, str] = Field(
        default_factory=dict,
        max_length=50,
        description="content-type pattern → bucket file property",
        examples=[{"image/*": "hero_image", "text/*": "product_text"}],
    )
    batch_size: int = Field(default=100, ge=1, le=1000)
    auto_submit: bool = False

    hosted_only: ClassVar[frozenset[str]] = frozenset(
        {
            "connection_id",
            "metadata",
            "schema_mapping",
            "skip_batch_submission",
            "skip_duplicates",
            "source_path",
        }
    )

    @field_validator("sync_mode", mode="before")
    @classmethod
    def _mode_alias(cls, value: Any) -> Any:
        return _MODE_ALIASES.get(value, value) if isinstance(value, str) else value

    @field_validator("property_mapping")
    @classmethod
    def _patterns(cls, value: dict[str, str]) -> dict[str, str]:
        lowered = {k.strip().lower(): v for k, v in value.items()}
        bad = [k for k in lowered if not MIME_PATTERN.match(k)]
        if bad:
            raise ValueError(f"not content-type patterns (like 'image/*'): {bad}")
        return lowered


class SourceOut(Schema):
    provider: str
    bucket: str
    prefix: str
    endpoint_url: str | None = None
    region: str | None = None
    credentials_set: bool = Field(description="whether credentials are stored (never shown)")


class SyncKeyError(Schema):
    key: str | None = Field(description="the source key, or null for an error of the whole run")
    message: str
    at: dt.datetime | None = None


class RunSummary(Schema):
    started_at: dt.datetime
    finished_at: dt.datetime | None = None
    objects_created: int = 0
    objects_skipped: int = 0
    errors: int = 0
    batches_submitted: int = 0
    stopped: str | None = Field(default=None, description="why the run ended early, if it did")


class SyncOut(Schema):
    sync_id: str
    sync_config_id: str = Field(description="the hosted product's name for sync_id")
    bucket_id: str
    namespace_id: str
    source: SourceOut
    sync_mode: SyncMode
    status: Literal["ACTIVE", "PAUSED", "RUNNING"]
    polling_interval_seconds: int
    file_filters: dict[str, Any]
    property_mapping: dict[str, str]
    batch_size: int
    auto_submit: bool
    last_run_at: dt.datetime | None = None
    next_run_at: dt.datetime | None = None
    objects_created: int
    objects_skipped: int
    errors: int
    last_errors: list[SyncKeyError] = Field(description=f"the {LAST_ERRORS_MAX} most recent errors")
    last_run: RunSummary | None = None
    created_at: dt.datetime
    updated_at: dt.datetime
    warnings: list[str] = Field(default_factory=list)


class SyncPage(Page[SyncOut]):
    total: int


class SyncListRequest(ListRequest):
    """The list body; filters may name `sync_mode`, `status` (ACTIVE/PAUSED), `auto_submit`."""


class SyncTriggered(Schema):
    sync_id: str
    job_id: str
    status: Literal["QUEUED"] = "QUEUED"


class SyncDeleted(Schema):
    sync_id: str
    deleted: bool = True
