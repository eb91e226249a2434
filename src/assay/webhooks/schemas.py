from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar, Literal

from pydantic import Field, computed_field, field_validator, model_validator

from assay.events.types import EVENT_TYPES
from assay.kit.schemas import ListRequest, Page, RequestSchema, Schema

ALL_EVENTS = "*"
PENDING, DELIVERED, FAILED = "PENDING", "DELIVERED", "FAILED"


def check_event_types(value: list[str] | None) -> list[str] | None:
    """Known event names (or `*`), deduplicated; `*` alongside others means just `*`."""
    if value is None:
        return None
    unknown = [t for t in value if t != ALL_EVENTS and t not in EVENT_TYPES]
    if unknown:
        allowed = ", ".join([ALL_EVENTS, *sorted(EVENT_TYPES)])
        raise ValueError(f"unknown event type(s) {unknown}; allowed: {allowed}")
    return [ALL_EVENTS] if ALL_EVENTS in value else list(dict.fromkeys(value))


class WebhookChannelIn(RequestSchema):
    """The hosted product's channel form; only `webhook` channels exist here."""

    channel: Literal["webhook"]
    configs: dict[str, Any]


class WebhookCreate(RequestSchema):
    url: str | None = Field(default=None, max_length=2048, examples=["https://example.com/hook"])
    event_types: list[str] = Field(min_length=1, max_length=50, examples=[["batch.completed"]])
    description: str | None = Field(default=None, max_length=2000)
    secret: str | None = Field(default=None, min_length=16, max_length=200)
    webhook_name: str | None = Field(default=None, min_length=1, max_length=200)
    is_active: bool = True
    channels: list[WebhookChannelIn] | None = Field(default=None, min_length=1, max_length=10)
    webhook_id: Any = None
    internal_id: Any = None
    created_at: Any = None
    updated_at: Any = None

    unimplemented: ClassVar[frozenset[str]] = frozenset(
        {"webhook_id", "internal_id", "created_at", "updated_at"}
    )
    hosted_only: ClassVar[frozenset[str]] = frozenset({"delivery_health", "resource_types"})

    @field_validator("event_types")
    @classmethod
    def _check_types(cls, value: list[str]) -> list[str] | None:
        return check_event_types(value)

    @model_validator(mode="after")
    def _url_from_channels(self) -> WebhookCreate:
        if self.url is None and self.channels:
            url = self.channels[0].configs.get("url")
            self.url = url if isinstance(url, str) else None
        if self.url is None:
            raise ValueError("url is required (or a webhook channel with configs.url)")
        return self


class WebhookPatch(RequestSchema):
    url: str | None = Field(default=None, max_length=2048)
    event_types: list[str] | None = Field(default=None, min_length=1, max_length=50)
    description: str | None = Field(default=None, max_length=2000)
    webhook_name: str | None = Field(default=None, min_length=1, max_length=200)
    is_active: bool | None = None

    @field_validator("event_types")
    @classmethod
    def _check_types(cls, value: list[str] | None) -> list[str] | None:
        return check_event_types(value)


class WebhookListRequest(ListRequest):
    """The hosted product's list body, with its two filters."""

    event_type: str | None = None
    is_active: bool | None = None


class WebhookOut(Schema):
    webhook_id: str
    webhook_name: str
    url: str
    event_types: list[str]
    description: str | None = None
    is_active: bool
    created_at: dt.datetime
    updated_at: dt.datetime
    warnings: list[str] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def channels(self) -> list[dict[str, Any]]:
        """The hosted product's view of the url: one `webhook` channel."""
        return [{"channel": "webhook", "configs": {"url": self.url}}]


class WebhookCreated(WebhookOut):
    """The creation answer: the only time the signing secret is shown."""

    secret: str


class WebhookPage(Page[WebhookOut]):
    total: int


class WebhookDeleted(Schema):
    webhook_id: str
    deleted: bool = True


class DeliveryOut(Schema):
    delivery_id: str
    webhook_id: str
    event_id: str
    event_type: str
    status: str
    attempts: int
    last_status_code: int | None = None
    last_error: str | None = None
    last_attempt_at: dt.datetime | None = None
    created_at: dt.datetime
    delivered_at: dt.datetime | None = None
    next_attempt_at: dt.datetime | None = None
